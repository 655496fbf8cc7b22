"""KFP face of the calibration sampler: `sample_calibration_data` (Examples Dataset -> calibration Dataset)."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from edgeopt.components._shared.kfp_component import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def sample_calibration_data(
    examples: Input[Dataset],
    calibration: Output[Dataset],
    metrics: Output[Metrics],
    config: Optional[dict] = None,
    beam_pipeline_args: Optional[list] = None,
):
    """Samples the representative dataset with Apache Beam (config: CalibrationConfig,
    components/calibration/README.md); the folder holds data.tfrecord.gz and manifest.json. Without
    `beam_pipeline_args`, Beam's in-process FnApiRunner runs it: the default DirectRunner first tries the Prism
    runner, which downloads a binary at run time (no network in most clusters). With a Dataflow, Flink or Spark
    runner's options (README, "Runners") the workers read the Examples at the artifact's URI."""
    from edgeopt.components.calibration.beam_options import sampler_options
    from edgeopt.components.calibration.config import CalibrationConfig
    from edgeopt.components.calibration.core import sample_calibration_data as run_sampler

    settings = CalibrationConfig.from_dict(config)
    beam_args = beam_pipeline_args if beam_pipeline_args is not None else ["--runner=FnApiRunner"]
    source = sampler_options(beam_args).input_location(examples.path, examples.uri)
    result = run_sampler(source, settings, calibration.path, beam_pipeline_args=beam_args)
    calibration.metadata.update({key: result.manifest[key] for key in ("count", "data_sha256", "source_fingerprint")})
    metrics.log_metric("count", result.count)
    metrics.log_metric("dropped_non_finite", result.manifest["dropped_non_finite"])
