"""TFX face of export: `TFLiteExporter` (Keras Model -> float32 .tflite Model, checked against Keras).

Not named TFLiteConverter, which would collide with tf.lite.TFLiteConverter.
"""

from tfx.dsl.components.base import executor_spec

from edgeopt.components._shared import tfx_component as face
from edgeopt.components.export.config import ExportConfig
from edgeopt.components.export.core import export_tflite


class TFLiteExporterSpec(face.ModelStepSpecBase):
    pass


class TFLiteExporterExecutor(face.ModelStepExecutor):
    CONFIG_CLASS = ExportConfig
    OUTPUT_FORMAT = face.TFLITE_FORMAT

    def run_core(self, model_path, config, output_dir, data, input_dict):
        return export_tflite(model_path, config, output_dir, data=data)


class TFLiteExporter(face.ModelStepComponent):
    """Exports the float baseline (or any Keras model) as .tflite, e.g. the reference for `CompressionEvaluator`."""

    SPEC_CLASS = TFLiteExporterSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(TFLiteExporterExecutor)
    CONFIG_CLASS = ExportConfig
