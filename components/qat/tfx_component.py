"""TFX face of QAT: `QuantizationAwareTrainer` (Model + Examples -> quantization-aware trained Keras Model)."""

from tfx.dsl.components.base import executor_spec

from edgeopt.components._shared import tfx_component as face
from edgeopt.components.qat.config import QatConfig
from edgeopt.components.qat.core import quantization_aware_train


class QuantizationAwareTrainerSpec(face.ModelStepSpecBase):
    pass


class QuantizationAwareTrainerExecutor(face.ModelStepExecutor):
    CONFIG_CLASS = QatConfig

    def run_core(self, model_path, config, output_dir, data, input_dict):
        return quantization_aware_train(model_path, config, output_dir, data=data)


class QuantizationAwareTrainer(face.ModelStepComponent):
    """Fine-tunes with fake quantization; follow it with a `Quantizer` (see components/qat/README.md)."""

    SPEC_CLASS = QuantizationAwareTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(QuantizationAwareTrainerExecutor)
    CONFIG_CLASS = QatConfig
