"""TFX face of the calibration sampler: `CalibrationSampler` (Examples -> CalibrationData)."""

from tfx import types
from tfx.dsl.components.base import base_beam_component, base_beam_executor, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from edgeopt.components import __version__
from edgeopt.components._shared import tfx_component as face
from edgeopt.components._shared.remote_files import local_artifacts
from edgeopt.components.calibration.beam_options import sampler_options
from edgeopt.components.calibration.config import CalibrationConfig
from edgeopt.components.calibration.core import sample_calibration_data


class CalibrationSamplerSpec(ComponentSpec):
    PARAMETERS = {
        face.CONFIG_KEY: ExecutionParameter(type=str),
        face.COMPONENT_VERSION_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {face.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}
    OUTPUTS = {face.CALIBRATION_KEY: ChannelParameter(type=face.CalibrationData)}


class CalibrationSamplerExecutor(base_beam_executor.BaseBeamExecutor):
    """Runs the Beam sampler with the pipeline's beam_pipeline_args (DirectRunner when there are none). On a
    distributed runner (Dataflow, Flink, Spark) the workers read the Examples at their URI; no local copy is made."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802
        settings = sampler_options(self._beam_pipeline_args)  # bad options fail before anything is copied
        with local_artifacts(input_dict, output_dict, stage_inputs=not settings.distributed):  # gs:// on Kubeflow
            self._do(input_dict, output_dict, exec_properties)

    def _do(self, input_dict, output_dict, exec_properties):
        self._log_startup(input_dict, output_dict, exec_properties)
        config = CalibrationConfig.from_json(exec_properties[face.CONFIG_KEY])
        output = face.single(output_dict, face.CALIBRATION_KEY)
        result = sample_calibration_data(
            face.single_uri(input_dict, face.EXAMPLES_KEY),
            config,
            output.uri,
            beam_pipeline_args=self._beam_pipeline_args,
        )
        for key in ("count", "data_sha256", "source_fingerprint", "dropped_non_finite"):
            value = result.manifest[key]
            if isinstance(value, int):
                output.set_int_custom_property(key, value)
            else:
                output.set_string_custom_property(key, value)


class CalibrationSampler(base_beam_component.BaseBeamComponent):
    """Samples the representative dataset for Quantizer / ModelOptimizer (see components/calibration/README.md).

    Example:
      sampler = CalibrationSampler(examples=example_gen.outputs["examples"], config={"size": 300, "label_key": "label"})
    """

    SPEC_CLASS = CalibrationSamplerSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(CalibrationSamplerExecutor)

    def __init__(self, examples, config=None):
        config = face.validated_config(CalibrationConfig, config)
        super().__init__(
            spec=CalibrationSamplerSpec(
                examples=examples,
                config=config.to_json(),
                component_version=__version__,
                calibration=types.Channel(type=face.CalibrationData),
            )
        )
