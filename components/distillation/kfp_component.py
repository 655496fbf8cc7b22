"""KFP face of distillation: `distill` (teacher Model + Dataset -> trained student Keras Model)."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from edgeopt.components._shared.kfp_component import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def distill(
    model: Input[Model],
    examples: Input[Dataset],
    student_model: Output[Model],
    metrics: Output[Metrics],
    config: Optional[dict] = None,
    data_spec: Optional[dict] = None,
    module_file: str = "",
):
    """Distills the teacher into a smaller student (config: DistillationConfig, components/distillation/README.md)."""
    from edgeopt.components._shared.kfp_runtime import artifact_metadata, training_data
    from edgeopt.components.distillation.config import DistillationConfig
    from edgeopt.components.distillation.core import distill as run_distill

    settings = DistillationConfig.from_dict(config)
    data = training_data(examples.path, data_spec, module_file)
    result = run_distill(model.path, settings, student_model.path, data=data, module_file=module_file or None)
    student_model.metadata.update(artifact_metadata(settings, result.to_dict()))
    for name in ("student_params", "param_ratio", "train_accuracy"):
        if getattr(result, name) is not None:  # a regressor has no train_accuracy
            metrics.log_metric(name, getattr(result, name))
