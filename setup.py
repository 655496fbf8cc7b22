"""edgeopt: TFX and Kubeflow components that shrink trained Keras models with tfmot and LiteRT."""

import os

from setuptools import find_packages, setup

VERSION = "0.1.0"

# `edgeopt` is a namespace whose two halves live in the top-level folders the design card fixes, so nothing installs
# a bare `components` or `pipelines` package.
NAMESPACE_ROOTS = {"edgeopt.components": "components", "edgeopt.pipelines": "pipelines"}

packages = []
package_dir = {}
for namespace, folder in NAMESPACE_ROOTS.items():
    package_dir[namespace] = folder
    packages.append(namespace)
    packages += [f"{namespace}.{sub}" for sub in find_packages(where=folder)]

# Recipe and data-spec YAML ship inside the package (edgeopt.configs), so an installed edgeopt finds its defaults.
package_dir["edgeopt.configs"] = "configs"
for folder, _, _ in os.walk("configs"):
    packages.append("edgeopt." + folder.replace(os.sep, "."))

setup(
    name="edgeopt",
    version=VERSION,
    description="Compress trained Keras models (PTQ, QAT, pruning, clustering) in TFX and Kubeflow pipelines.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=packages,
    package_dir=package_dir,
    package_data={"": ["*.yaml", "*.json", "*.md"]},
    include_package_data=True,
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tf-keras>=2.21,<2.22",
        "tensorflow-model-optimization==0.8.1",
        "ai-edge-litert",
        "pydantic>=2,<3",
        "pyyaml",
        "numpy",
        "scikit-learn",
    ],
    extras_require={
        "tfx": ["tfx==1.21.0"],
        "kfp": ["kfp>=2.17,<2.18"],
        "mlflow": ["mlflow>=3,<4"],
        "beam": ["apache-beam[gcp]>=2.77,<2.78"],
        "search": ["optuna>=5,<6", "ai-edge-quantizer>=0.10,<0.11"],
        "test": ["pytest", "ruff"],
    },
    entry_points={"console_scripts": ["edgeopt=edgeopt.components.cli:main"]},
)
