"""Opening a tracking store safely, and closing the runs that earlier attempts of a job left RUNNING.

Two jobs that open a new SQLite store at once race MLflow's schema migration and can corrupt the store for good
("table _alembic_tmp_params already exists"); the store is therefore created and migrated under a file lock.
"""

import logging
from pathlib import Path

from mlflow import MlflowClient

from edgeopt.components._shared.job_lock import setup_lock
from edgeopt.components.tracking import records
from edgeopt.components.tracking.config import SQLITE_PREFIX

STORE_LOCK_SUFFIX = ".lock"
ORPHAN_STATUS = "KILLED"

logger = logging.getLogger(__name__)


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI, else None."""
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return None
    return Path(tracking_uri[len(SQLITE_PREFIX) :].split("?", 1)[0])


def open_client(tracking_uri: str) -> MlflowClient:
    """An MlflowClient whose tracking store exists and is migrated; a SQLite store is set up under a file lock beside
    the database, so concurrent jobs wait for each other instead of racing the migration."""
    database = sqlite_path(tracking_uri)
    if database is None:
        return _new_client(tracking_uri)
    # The client may create the store as soon as it is built, so building it happens under the lock too.
    with setup_lock(database.with_name(database.name + STORE_LOCK_SUFFIX)):
        client = _new_client(tracking_uri)
        client.search_experiments(max_results=1)  # creating the store runs (and finishes) the schema migration
        client.search_registered_models(max_results=1)  # the registry's store checks the same schema
    return client


def _new_client(tracking_uri: str) -> MlflowClient:
    # The registry follows the tracking URI; left unset, MLflow 3 would use ./mlflow.db in the current folder.
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _quoted(value: str) -> str | None:
    """A value usable inside a search filter's single quotes, or None when it cannot be quoted safely."""
    return None if "'" in value or "\\" in value else value


def close_orphaned_runs(
    client: MlflowClient, experiment_id: str, *, own_run_id: str, output_dir: str, orchestrator_run_id: str | None, call
) -> list[str]:
    """Ends as KILLED every RUNNING job run of an earlier attempt (same output folder, or same orchestrator run id)
    and its RUNNING children; such a job died without ending its run (SIGKILL, OOM kill, node loss). The lock on the
    output folder guarantees no live job still writes into it. Returns the closed run ids."""
    filters = []
    if _quoted(output_dir):
        filters.append(f"tags.`{records.TAG_OUTPUT_DIR}` = '{output_dir}'")
    if orchestrator_run_id and _quoted(orchestrator_run_id):
        filters.append(f"tags.`{records.TAG_ORCHESTRATOR_RUN_ID}` = '{orchestrator_run_id}'")
    orphans = {}
    for condition in filters:
        runs = call(
            "search runs",
            client.search_runs,
            [experiment_id],
            filter_string=f"{condition} and attributes.status = 'RUNNING'",
            max_results=1000,
        )
        orphans.update({run.info.run_id: run for run in runs if run.info.run_id != own_run_id})
    for run_id in list(orphans):
        children = call(
            "search runs",
            client.search_runs,
            [experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{run_id}' and attributes.status = 'RUNNING'",
            max_results=1000,
        )
        orphans.update({child.info.run_id: child for child in children})
    reason = f"orphaned: its job ended without closing the run; closed by the next attempt (run {own_run_id})"
    for run_id in orphans:
        call("tag orphan", client.set_tag, run_id, records.TAG_FAILURE_REASON, reason)
        call("end orphan", client.set_terminated, run_id, ORPHAN_STATUS)
        logger.info("closed orphaned run %s as %s", run_id, ORPHAN_STATUS)
    return sorted(orphans)
