"""The model registry (champion download, promotion) and the comparison of candidates across jobs."""

import os
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from edgeopt.components._shared.atomic import atomic_output_dir
from edgeopt.components._shared.errors import TrackingError
from edgeopt.components.tracking import records
from edgeopt.components.tracking.config import TrackingConfig
from edgeopt.components.tracking.retry import _as_tracking_error, _Caller, _client, _required_uri, _warn

CHALLENGER_ALIAS = "challenger"
CHAMPION_ALIAS = "champion"
MODEL_ARTIFACT_PATH = "model"


@dataclass(frozen=True)
class ChampionModel:
    version: str
    path: Path
    run_id: str | None


def _download_champion(client: MlflowClient, model_name: str, dst_dir: Path, call: _Caller) -> ChampionModel | None:
    try:
        version = call("get champion", client.get_model_version_by_alias, model_name, CHAMPION_ALIAS)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None  # no such model, or no champion alias yet
        raise
    with atomic_output_dir(dst_dir) as staging:
        call(
            "download champion",
            mlflow.artifacts.download_artifacts,
            artifact_uri=version.source,
            dst_path=str(staging),
            tracking_uri=client.tracking_uri,
        )
        found = sorted(path.relative_to(staging) for path in staging.rglob("*.tflite"))
        if len(found) != 1:
            raise TrackingError(
                f"'{model_name}' version {version.version} (alias {CHAMPION_ALIAS}) holds {len(found)} .tflite files "
                f"at {version.source}, expected one; move the alias to a version edgeopt registered"
            )
    return ChampionModel(str(version.version), dst_dir / found[0], version.run_id)


def download_champion_tflite(
    model_name: str,
    dst_dir: str | os.PathLike,
    *,
    tracking_uri: str | None = None,
    config: TrackingConfig | None = None,
) -> ChampionModel | None:
    """Downloads the .tflite of `model_name`'s `champion` version into `dst_dir`; None if there is no champion.

    Raises:
      TrackingError: no tracking URI given or set, or the champion version holds no single .tflite.
    """
    uri = _required_uri(tracking_uri)
    call = _Caller(config or TrackingConfig(), _warn)
    with _as_tracking_error(uri):
        return _download_champion(_client(uri), model_name, Path(dst_dir), call)


def promote_challenger(model_name: str, *, tracking_uri: str | None = None, config: TrackingConfig | None = None):
    """Moves alias `champion` of `model_name` to its current `challenger` version; returns (old, new) versions.

    Raises:
      TrackingError: the model does not exist or has no challenger.
    """
    uri = _required_uri(tracking_uri)
    with _as_tracking_error(uri):
        return _promote(_client(uri), model_name, _Caller(config or TrackingConfig(), _warn))


def _promote(client: MlflowClient, model_name: str, call: _Caller) -> tuple[str | None, str]:
    try:
        challenger = call("get challenger", client.get_model_version_by_alias, model_name, CHALLENGER_ALIAS)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise TrackingError(
                f"registered model '{model_name}' at {client.tracking_uri} has no '{CHALLENGER_ALIAS}' version; run "
                f"`edgeopt optimize ... --register-model {model_name}` first (a candidate must pass its gate)"
            ) from err
        raise
    try:
        old = call("get champion", client.get_model_version_by_alias, model_name, CHAMPION_ALIAS).version
    except MlflowException:
        old = None
    call("set champion", client.set_registered_model_alias, model_name, CHAMPION_ALIAS, challenger.version)
    return (None if old is None else str(old)), str(challenger.version)


# --- Comparing candidates across jobs. ---


def compare_candidates(
    experiment_name: str, *, tracking_uri: str | None = None, config: TrackingConfig | None = None
) -> list[dict]:
    """Every candidate run of `experiment_name`, as rows for `records.render_comparison` (unsorted).

    Raises:
      TrackingError: no tracking URI, or no such experiment.
    """
    uri = _required_uri(tracking_uri)
    with _as_tracking_error(uri):
        return _compare(_client(uri), experiment_name, _Caller(config or TrackingConfig(), _warn))


def _compare(client: MlflowClient, experiment_name: str, call: _Caller) -> list[dict]:
    experiment = call("get experiment", client.get_experiment_by_name, experiment_name)
    if experiment is None:
        raise TrackingError(
            f"no experiment '{experiment_name}' at {client.tracking_uri}; check --experiment and --tracking-uri"
        )
    rows, token = [], None
    while True:
        page = call(
            "search runs",
            client.search_runs,
            [experiment.experiment_id],
            filter_string=f"tags.`{records.TAG_RUN_KIND}` = '{records.RUN_KIND_CANDIDATE}'",
            max_results=1000,
            page_token=token,
        )
        for run in page:
            tags = run.data.tags
            rows.append(
                {
                    "job_run_id": tags.get("mlflow.parentRunId", ""),
                    "run_id": run.info.run_id,
                    "start_time": run.info.start_time,
                    "status": run.info.status,
                    "recipe": tags.get(records.TAG_RECIPE, run.info.run_name),
                    "steps": tags.get(records.TAG_TECHNIQUE_CHAIN, ""),
                    "gate": tags.get(records.TAG_GATE, ""),
                    "metrics": dict(run.data.metrics),
                }
            )
        token = page.token
        if not token:
            return rows
