"""Schedule the compiled retrain-and-compress pipeline as a Kubeflow recurring run through kfp.Client."""

from dataclasses import asdict, dataclass
from pathlib import Path

from edgeopt.components._shared.errors import ConfigError


@dataclass(frozen=True)
class RecurringRunRequest:
    """Everything a recurring run is made of, so it can be checked without a cluster."""

    experiment_name: str
    job_name: str
    cron_expression: str
    pipeline_package_path: str
    params: dict
    max_concurrency: int = 1
    enable_caching: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def recurring_run_request(
    cron: str, *, pipeline_package: str, params: dict, experiment: str = "edgeopt", job_name: str | None = None
) -> RecurringRunRequest:
    """Validates the schedule and builds the request.

    KFP cron expressions have six fields (seconds first): "0 0 3 * * *" runs daily at 03:00. Caching is off so each
    run retrains on the data present at that time.
    """
    fields = cron.split()
    if len(fields) != 6:
        raise ConfigError(
            f"cron '{cron}' has {len(fields)} fields; KFP needs six, seconds first (e.g. '0 0 3 * * *' for 03:00 daily)"
        )
    if not Path(pipeline_package).is_file():
        raise ConfigError(f"pipeline package {pipeline_package} does not exist; run `edgeopt pipeline compile` first")
    missing = {"source", "recipes"} - set(params)
    if missing:
        raise ConfigError(f"pipeline parameters {sorted(missing)} are required for a recurring run")
    return RecurringRunRequest(
        experiment_name=experiment,
        job_name=job_name or f"{experiment}-retrain-and-compress",
        cron_expression=cron,
        pipeline_package_path=str(pipeline_package),
        params=params,
    )


def submit(request: RecurringRunRequest, host: str):
    """Creates the recurring run on the Kubeflow Pipelines API at `host`."""
    import kfp

    client = kfp.Client(host=host)
    experiment = client.create_experiment(request.experiment_name)
    return client.create_recurring_run(
        experiment_id=experiment.experiment_id,
        job_name=request.job_name,
        cron_expression=request.cron_expression,
        pipeline_package_path=request.pipeline_package_path,
        params=request.params,
        max_concurrency=request.max_concurrency,
        enable_caching=request.enable_caching,
    )
