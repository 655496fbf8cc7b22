"""KFP face of post-training quantization: `quantize` (Model [+ calibration Dataset] -> .tflite Model)."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from edgeopt.components._shared.kfp_component import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def quantize(
    model: Input[Model],
    examples: Input[Dataset],
    quantized_model: Output[Model],
    metrics: Output[Metrics],
    calibration: Optional[Input[Dataset]] = None,
    config: Optional[dict] = None,
    data_spec: Optional[dict] = None,
    module_file: str = "",
):
    """Converts to a quantized .tflite, calibrated from a `sample_calibration_data` output when given
    (config: QuantizationConfig, components/quantization/README.md). The output folder holds model.tflite."""
    from edgeopt.components._shared.kfp_runtime import artifact_metadata, training_data
    from edgeopt.components.calibration.core import load_calibration_inputs
    from edgeopt.components.quantization.config import QuantizationConfig
    from edgeopt.components.quantization.core import quantize as run_quantize

    settings = QuantizationConfig.from_dict(config)
    data = training_data(examples.path, data_spec, module_file)
    inputs = load_calibration_inputs(calibration.path, data) if calibration is not None else None
    result = run_quantize(model.path, settings, quantized_model.path, data=data, calibration_inputs=inputs)
    quantized_model.metadata.update(artifact_metadata(settings, result.to_dict()) | {"model_format": "tflite"})
    metrics.log_metric("tflite_bytes", result.tflite_bytes)
    metrics.log_metric("max_abs_diff", result.max_abs_diff)
