"""The README's TFX example, run for real: appended after a CsvExampleGen and a Trainer, with LocalDagRunner."""

import re
from pathlib import Path

from tfx import v1 as tfx

import edgeopt.components._shared.keras_bootstrap  # noqa: F401
from edgeopt.components.demo.digits import write_digits_examples
from edgeopt.pipelines.tfx_pipeline import TRAINER_MODULE
from tests.helpers import kernels

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert match, f"README.md lost its {marker} block"
    return match.group(1)


def test_readme_tfx_example_adds_a_working_optimize_step(tmp_path):
    write_digits_examples(tmp_path / "data")
    example_gen = tfx.components.CsvExampleGen(input_base=str(tmp_path / "data" / "csv"))
    trainer = tfx.components.Trainer(
        run_fn=f"{TRAINER_MODULE}.run_fn",
        examples=example_gen.outputs["examples"],
        train_args=tfx.proto.TrainArgs(num_steps=1),
        eval_args=tfx.proto.EvalArgs(num_steps=1),
        custom_config={"epochs": 3},
    )
    namespace = {
        "example_gen": example_gen,
        "trainer": trainer,
        "module_file": TRAINER_MODULE,
        "serving_dir": str(tmp_path / "serving"),
        "components": [example_gen, trainer],
    }
    exec(readme_block("tested-tfx-example"), namespace)
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="readme",
        pipeline_root=str(tmp_path / "root"),
        components=namespace["components"],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(tmp_path / "metadata.sqlite")
        ),
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    (pushed,) = (tmp_path / "serving").glob("*/model.tflite")
    assert {tensor.type_name for tensor in kernels(pushed)} == {"INT8"}


def test_readme_kfp_example_compiles_with_the_yaml_components(tmp_path, monkeypatch):
    from kfp import compiler, dsl

    @dsl.component(base_image="python:3.13")
    def my_training_step(examples: dsl.Input[dsl.Dataset], model: dsl.Output[dsl.Model]):
        pass

    @dsl.component(base_image="python:3.13")
    def my_deploy_step(model: dsl.Input[dsl.Model]):
        pass

    monkeypatch.chdir(README.parent)
    namespace = {"my_training_step": my_training_step, "my_deploy_step": my_deploy_step}
    exec(readme_block("tested-kfp-example"), namespace)
    compiler.Compiler().compile(namespace["my_pipeline"], str(tmp_path / "my.yaml"))
    compiled = (tmp_path / "my.yaml").read_text()
    assert "optimize-recipe" in compiled and "evaluate-and-gate" in compiled and "condition-1" in compiled
