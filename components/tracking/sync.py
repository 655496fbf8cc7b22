"""`edgeopt sync`: uploads the jobs a spool holds, completing runs the target already has."""

import os
import shutil
from pathlib import Path

from edgeopt.components.tracking.config import TrackingConfig, default_artifact_location
from edgeopt.components.tracking.replay import _apply, _reconcile
from edgeopt.components.tracking.retry import _Caller, _client, _say, _short
from edgeopt.components.tracking.state import PARENT, SPOOL_RECORD, _read_spool, _write_spool


def sync_spool(
    spool_dir: str | os.PathLike,
    *,
    tracking_uri: str | None = None,
    config: TrackingConfig | None = None,
    verbose: int = 1,
) -> list[dict]:
    """Uploads every spooled job in `spool_dir` and deletes each job's folder once all of it landed.

    A job goes to `tracking_uri` if given, else to the URI it was meant for. Runs the target already holds (the
    parent run a job created before the server died) are completed, not duplicated.

    Returns:
      One dict per spooled job: job_id, synced (bool), parent_run_id, error (when not synced).
    """
    config = config or TrackingConfig()
    call = _Caller(config, lambda message: _say(message, verbose=verbose))
    results = []
    for record in sorted(Path(spool_dir).glob(f"*/{SPOOL_RECORD}")):
        folder = record.parent
        state = _read_spool(folder)
        target = tracking_uri or state["tracking_uri"]
        if target != state["tracking_uri"]:
            state["artifact_location"] = default_artifact_location(target)
            state["tracking_uri"] = target
        try:
            client = _client(target)
            _reconcile(client, state, call)
            _apply(client, state, call)
        except Exception as err:
            _write_spool(state, folder.parent)  # keeps what did land, so the next sync resumes from there
            results.append({"job_id": state["job_id"], "synced": False, "parent_run_id": None, "error": _short(err)})
            continue
        shutil.rmtree(folder)
        results.append(
            {"job_id": state["job_id"], "synced": True, "parent_run_id": state["runs"][PARENT]["run_id"], "error": None}
        )
    return results
