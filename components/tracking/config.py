"""TrackingConfig: where a job's runs go in MLflow, how hard to try, and where results wait when MLflow is away."""

import enum
import os
from pathlib import Path

import pydantic

from edgeopt.components._shared.config_base import StrictConfig

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
DEFAULT_DB_FILE = "mlflow.db"
DEFAULT_ARTIFACT_FOLDER = "mlartifacts"
DEFAULT_SPOOL_FOLDER = "mlflow-spool"
SQLITE_PREFIX = "sqlite:///"


class Orchestrator(enum.StrEnum):
    """What started the job; recorded on the parent run with the orchestrator's own run id."""

    CLI = "cli"
    TFX = "tfx"
    KFP = "kfp"


class TrackingConfig(StrictConfig):
    """How an optimize job is logged to MLflow: one parent run per job, one child run per candidate."""

    tracking_uri: str | None = pydantic.Field(
        None,
        description=(
            "MLflow tracking URI (http://host:port, sqlite:///path.db, postgresql://...). Unset: "
            "MLFLOW_TRACKING_URI, else a SQLite database `mlflow.db` in the job's output folder. The model registry "
            "uses the same URI."
        ),
    )
    experiment_name: str = pydantic.Field(
        "edgeopt", min_length=1, max_length=500, description="Experiment that holds the parent and child runs."
    )
    artifact_location: str | None = pydantic.Field(
        None,
        description=(
            "Artifact root of the experiment when edgeopt creates it. Unset: `mlartifacts/` beside a SQLite "
            "database; for a server, the server's own artifact root."
        ),
    )
    registered_model_name: str | None = pydantic.Field(
        None,
        min_length=1,
        description=(
            "Registry model that receives the best candidate that passed its gate as a new version with alias "
            "`challenger`; its `champion` version, if any, is downloaded and gated against. Unset: no registry."
        ),
    )
    max_attempts: int = pydantic.Field(
        3, ge=1, le=10, description="Tries per MLflow call before the job gives up on the server and spools."
    )
    backoff_seconds: float = pydantic.Field(
        1.0, ge=0, le=60, description="Wait after the first failed try; doubles after each further failure."
    )
    http_request_max_retries: int = pydantic.Field(
        0,
        ge=0,
        le=10,
        description=(
            "MLflow's own HTTP retries inside one call (MLFLOW_HTTP_REQUEST_MAX_RETRIES, which wins when set). "
            "MLflow's default of 7 with exponential backoff waits minutes per call on a dead server."
        ),
    )
    http_request_timeout_seconds: int = pydantic.Field(
        30,
        ge=1,
        le=600,
        description="Timeout of one HTTP request to the server (MLFLOW_HTTP_REQUEST_TIMEOUT, which wins when set).",
    )
    spool_dir: str | None = pydantic.Field(
        None,
        description=(
            "Folder that keeps what could not be logged (runs, metrics, artifacts) for `edgeopt sync`. "
            "Unset: `mlflow-spool/` in the job's output folder."
        ),
    )

    def resolved_tracking_uri(self, output_dir: str | os.PathLike) -> str:
        """The URI a job in `output_dir` logs to: the field, else MLFLOW_TRACKING_URI, else OUT/mlflow.db."""
        return self.tracking_uri or os.environ.get(TRACKING_URI_ENV) or default_tracking_uri(output_dir)

    def resolved_spool_dir(self, output_dir: str | os.PathLike) -> Path:
        return Path(self.spool_dir) if self.spool_dir else Path(output_dir) / DEFAULT_SPOOL_FOLDER


def default_tracking_uri(output_dir: str | os.PathLike) -> str:
    return f"{SQLITE_PREFIX}{Path(output_dir).resolve() / DEFAULT_DB_FILE}"


def default_artifact_location(tracking_uri: str) -> str | None:
    """`mlartifacts/` beside a SQLite database; None (the server decides) for anything else.

    MLflow's own default for a SQL store is `./mlruns` relative to the current folder, which would scatter
    artifacts wherever the command happened to run.
    """
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return None
    database = Path(tracking_uri.removeprefix(SQLITE_PREFIX))
    return (database.parent / DEFAULT_ARTIFACT_FOLDER).resolve().as_uri()
