"""The Beam pipeline options the calibration sampler runs with: one rule for every face, checked before any work.

Beam itself drops a misspelt option with a warning and lets a Flink or Dataflow job start with an SDK container
that lacks edgeopt, so the job fails on its workers minutes later. `sampler_options` refuses both up front, with a
`ConfigError` naming the option to add or fix (components/calibration/README.md, "Runners").
"""

import difflib
import logging
import re
from dataclasses import dataclass

logger = logging.getLogger(__name__)

README = "components/calibration/README.md, 'Runners'"
DATAFLOW_RUNNERS = ("DataflowRunner", "TestDataflowRunner")
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def has_scheme(path: str) -> bool:
    """gs://, s3://, hdfs://, ... : a location remote workers can reach (a plain path is only this machine's)."""
    return bool(_URI.match(str(path))) and not str(path).startswith("file://")


@dataclass(frozen=True)
class SamplerOptions:
    """Beam's parsed options and what they mean for where the sampler's files must live.

    Attributes:
      options: the PipelineOptions Beam runs with.
      runner: the runner's class name (`DirectRunner`, `FlinkRunner`, `DataflowRunner`, ...).
      distributed: the workers run outside this process (a cluster or a service); the sample is then written under
        `temp_location` by a worker and copied into the output folder by this process.
      needs_uris: the workers cannot see this machine's files at all (Dataflow, or SDK containers under DOCKER):
        the input must be a URI (gs://, s3://, hdfs://) and so must `temp_location`.
      temp_location: `--temp_location`, where a distributed run stages its sample.
    """

    options: object
    runner: str
    distributed: bool
    needs_uris: bool
    temp_location: str | None

    def input_location(self, local_path: str, uri: str) -> str:
        """Where the sampler reads an artifact: its URI when the workers run elsewhere, else its local path (a KFP
        launcher's download or FUSE mount, which only this pod sees)."""
        return uri if self.distributed and has_scheme(uri) else local_path


def sampler_options(beam_pipeline_args: list[str] | None = None) -> SamplerOptions:
    """Parses and checks `beam_pipeline_args` for the calibration sampler.

    Args:
      beam_pipeline_args: Beam's command-line options, e.g. ["--runner=FlinkRunner", "--flink_master=HOST:8081",
        "--environment_type=DOCKER", "--environment_config=REGISTRY/edgeopt:0.1.0",
        "--temp_location=s3://BUCKET/tmp"]. None or []: Beam's DirectRunner.

    Returns:
      SamplerOptions with Beam's PipelineOptions and where the sampler's inputs and staging must live.

    Raises:
      ConfigError: not a list of strings, an option Beam does not know (with the closest known one), an unknown
        runner, or a distributed runner without what it needs to run the sampler (its SDK container image, its
        endpoint or project, and a shared `temp_location`).

    Example:
      >>> sampler_options(["--runner=FnApiRunner"]).distributed
      False
    """
    from apache_beam.options.pipeline_options import (
        GoogleCloudOptions,
        PipelineOptions,
        PortableOptions,
        StandardOptions,
        WorkerOptions,
    )

    args = _as_list(beam_pipeline_args)
    options = PipelineOptions(args)
    _refuse_unknown(options, args)
    runner = _runner_class(options.view_as(StandardOptions).runner or StandardOptions.DEFAULT_RUNNER)
    portable = options.view_as(PortableOptions)
    environment = (portable.environment_type or _default_environment(runner, options)).upper()
    temp_location = options.view_as(GoogleCloudOptions).temp_location
    distributed = runner not in StandardOptions.LOCAL_RUNNERS and environment != "LOOPBACK"
    needs_uris = distributed and (runner in DATAFLOW_RUNNERS or environment == "DOCKER")
    missing = []
    if runner in DATAFLOW_RUNNERS:
        cloud = options.view_as(GoogleCloudOptions)
        if not cloud.project:
            missing.append("--project=PROJECT (the Google Cloud project the job runs in)")
        if not cloud.region:
            missing.append("--region=REGION (e.g. us-central1)")
        if not (temp_location or "").startswith("gs://"):
            missing.append("--temp_location=gs://BUCKET/tmp (Dataflow stages its files there, and so does the sampler)")
        if not options.view_as(WorkerOptions).sdk_container_image:
            missing.append(
                "--sdk_container_image=REGISTRY/edgeopt:VERSION (the workers import edgeopt and TensorFlow; "
                "Dataflow's default image has neither)"
            )
    elif distributed:
        if runner == "PortableRunner" and not portable.job_endpoint:
            missing.append("--job_endpoint=HOST:8099 (the Flink or Spark job server)")
        image = portable.lookup_environment_option("docker_container_image") or portable.environment_config
        if environment == "DOCKER" and not image:
            missing.append(
                "--environment_config=REGISTRY/edgeopt:VERSION (the SDK harness container: the workers import "
                "edgeopt and TensorFlow, which Beam's default apache/beam_python image lacks; portable runners "
                "ignore --sdk_container_image)"
            )
        if not temp_location:
            missing.append(
                "--temp_location=URI (a folder the workers and this process both reach, e.g. gs://BUCKET/tmp, "
                "s3://BUCKET/tmp, hdfs://HOST/tmp: a worker writes the sample there, this process collects it)"
            )
    if needs_uris and temp_location and not has_scheme(temp_location):
        missing.append(
            f"--temp_location as a URI the workers reach (gs://, s3://, hdfs://), not the local path {temp_location}"
        )
    if missing:
        raise _config_error(f"{runner} needs " + "; ".join(missing) + f" (see {README})")
    return SamplerOptions(options, runner, distributed, needs_uris, temp_location)


def _default_environment(runner: str, options) -> str:
    """Beam's own default: LOOPBACK (workers in this process) for a local Flink or Spark master, else DOCKER."""
    from apache_beam.options.pipeline_options import FlinkRunnerOptions, SparkRunnerOptions
    from apache_beam.runners.portability.flink_runner import MAGIC_HOST_NAMES
    from apache_beam.runners.portability.spark_runner import LOCAL_MASTER_PATTERN

    if runner == "FlinkRunner" and options.view_as(FlinkRunnerOptions).flink_master in MAGIC_HOST_NAMES:
        return "LOOPBACK"
    if runner == "SparkRunner" and re.match(LOCAL_MASTER_PATTERN, options.view_as(SparkRunnerOptions).spark_master_url):
        return "LOOPBACK"
    return "DOCKER"


def _as_list(beam_pipeline_args) -> list[str]:
    if beam_pipeline_args is None:
        return []
    if isinstance(beam_pipeline_args, str) or not isinstance(beam_pipeline_args, (list, tuple)):
        raise _config_error(
            f"beam_pipeline_args must be a list of strings such as ['--runner=FlinkRunner'], got "
            f"{type(beam_pipeline_args).__name__} {beam_pipeline_args!r}"
        )
    wrong = [arg for arg in beam_pipeline_args if not isinstance(arg, str)]
    if wrong:
        raise _config_error(f"beam_pipeline_args must hold strings only; {wrong!r} are not (write '--num_workers=4')")
    return list(beam_pipeline_args)


def _refuse_unknown(options, args: list[str]) -> None:
    """Beam discards options it does not know with a warning; a misspelt --flink_master would silently run locally."""
    captured = []
    options.get_all_options(add_extra_args_fn=captured.append)
    parser = captured[0]
    _, unknown = parser.parse_known_args(args)
    flags = [arg for arg in unknown if arg.startswith("-")]
    if not flags and not unknown:
        return
    known = [option for action in parser._actions for option in action.option_strings]
    described = []
    for flag in flags or unknown:
        name = flag.split("=", 1)[0]
        close = difflib.get_close_matches(name, known, n=1)
        described.append(f"{name} (did you mean {close[0]}?)" if close else name)
    raise _config_error(
        f"Beam does not know the pipeline option(s) {', '.join(described)}; fix the spelling, or write each option "
        f"as --name=value (see {README})"
    )


def _runner_class(name: str) -> str:
    from apache_beam.options.pipeline_options import StandardOptions
    from apache_beam.runners.runner import create_runner

    try:
        return type(create_runner(name)).__name__
    except (ValueError, ImportError, AttributeError) as err:
        raise _config_error(
            f"--runner={name} is not a Beam runner; use one of {', '.join(StandardOptions.KNOWN_RUNNER_NAMES)} "
            "or a runner class's full import path"
        ) from err


def _config_error(message: str):
    from edgeopt.components._shared.errors import ConfigError

    return ConfigError(message)
