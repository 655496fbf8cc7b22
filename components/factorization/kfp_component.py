"""KFP face of factorization: `factorize` (Model + Dataset -> factorized Keras Model)."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from edgeopt.components._shared.kfp_component import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def factorize(
    model: Input[Model],
    examples: Input[Dataset],
    factorized_model: Output[Model],
    metrics: Output[Metrics],
    config: Optional[dict] = None,
    data_spec: Optional[dict] = None,
    module_file: str = "",
):
    """Splits Dense and 1x1 Conv2D kernels into low-rank pairs (config: FactorizationConfig, its README)."""
    from edgeopt.components._shared.kfp_runtime import artifact_metadata, training_data
    from edgeopt.components.factorization.config import FactorizationConfig
    from edgeopt.components.factorization.core import factorize as run_factorize

    settings = FactorizationConfig.from_dict(config)
    data = training_data(examples.path, data_spec, module_file)
    result = run_factorize(model.path, settings, factorized_model.path, data=data)
    factorized_model.metadata.update(artifact_metadata(settings, result.to_dict()))
    for name in ("params_before", "params_after", "max_output_diff"):
        metrics.log_metric(name, getattr(result, name))
