"""TFX face of post-training quantization: `Quantizer` (Model [+ CalibrationData] -> .tflite Model)."""

from tfx.dsl.components.base import executor_spec

from edgeopt.components._shared import tfx_component as face
from edgeopt.components.calibration.core import load_calibration_inputs
from edgeopt.components.quantization.config import QuantizationConfig
from edgeopt.components.quantization.core import quantize


class QuantizerSpec(face.ModelStepSpecBase):
    pass


class QuantizerExecutor(face.ModelStepExecutor):
    CONFIG_CLASS = QuantizationConfig
    OUTPUT_FORMAT = face.TFLITE_FORMAT

    def run_core(self, model_path, config, output_dir, data, input_dict):
        calibration = None
        if input_dict.get(face.CALIBRATION_KEY):
            calibration = load_calibration_inputs(face.single_uri(input_dict, face.CALIBRATION_KEY), data)
        return quantize(model_path, config, output_dir, data=data, calibration_inputs=calibration)


class Quantizer(face.ModelStepComponent):
    """Converts a Keras model to a quantized .tflite, calibrated from a `CalibrationSampler` output when given.

    Example:
      quantizer = Quantizer(model=trainer.outputs["model"], examples=example_gen.outputs["examples"],
                            calibration=sampler.outputs["calibration"], config={"mode": "full_integer"},
                            module_file="trainer_module.py")
    """

    SPEC_CLASS = QuantizerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(QuantizerExecutor)
    CONFIG_CLASS = QuantizationConfig
