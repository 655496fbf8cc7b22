"""KFP face of export: `export_tflite` (Keras Model -> float32 .tflite Model, checked against Keras)."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from edgeopt.components._shared.kfp_component import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def export_tflite(
    model: Input[Model],
    examples: Input[Dataset],
    tflite_model: Output[Model],
    metrics: Output[Metrics],
    config: Optional[dict] = None,
    data_spec: Optional[dict] = None,
    module_file: str = "",
):
    """Exports a float32 .tflite (the baseline `evaluate_and_gate` compares against); the folder holds model.tflite."""
    from edgeopt.components._shared.kfp_runtime import artifact_metadata, training_data
    from edgeopt.components.export.config import ExportConfig
    from edgeopt.components.export.core import export_tflite as run_export

    settings = ExportConfig.from_dict(config)
    data = training_data(examples.path, data_spec, module_file)
    result = run_export(model.path, settings, tflite_model.path, data=data)
    tflite_model.metadata.update(artifact_metadata(settings, result.to_dict()) | {"model_format": "tflite"})
    metrics.log_metric("tflite_bytes", result.tflite_bytes)
    metrics.log_metric("max_abs_diff", result.max_abs_diff)
