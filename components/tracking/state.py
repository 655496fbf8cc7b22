"""A job's state as plain JSON-able data (runs, batches, artifacts, each marked done once MLflow confirmed it),
and the spool that keeps it, with copies of its files, while MLflow is away."""

import json
import os
import shutil
from pathlib import Path

from edgeopt.components._shared.atomic import atomic_output_file
from edgeopt.components._shared.errors import TrackingError
from edgeopt.components.tracking.retry import _now_ms

SPOOL_RECORD = "record.json"
SPOOL_FILES = "files"
SPOOL_FORMAT = 1
PARENT = 0  # the parent run's index in a job's list of runs
PARENT_KEY = "job"


def _new_run(key: str, run_name: str, start_time: int, create_tags: dict[str, str] | None = None) -> dict:
    return {
        "key": key,
        "run_name": run_name,
        "run_id": None,
        "artifact_uri": None,
        "start_time": start_time,
        "end_time": None,
        "status": None,
        "terminated": False,
        "create_tags": create_tags or {},
        "batches": [],
        "artifacts": [],
    }


def _add_batch(run: dict, *, tags=None, params=None, metrics=None, timestamp: int | None = None):
    run["batches"].append(
        {
            "tags": dict(tags or {}),
            "params": dict(params or {}),
            "metrics": dict(metrics or {}),
            "timestamp": timestamp or _now_ms(),
            "done": False,
        }
    )


def _add_artifact(run: dict, path: str | os.PathLike, artifact_path: str | None = None):
    run["artifacts"].append({"path": str(Path(path).resolve()), "artifact_path": artifact_path, "done": False})


def _forget(run: dict):
    """The target store has never seen this run: send all of it again."""
    run.update(run_id=None, artifact_uri=None, terminated=False)
    for item in run["batches"] + run["artifacts"]:
        item["done"] = False


def _pending(state: dict) -> bool:
    for run in state["runs"]:
        if run["run_id"] is None or (run["status"] and not run["terminated"]):
            return True
        if any(not item["done"] for item in run["batches"] + run["artifacts"]):
            return True
    register = state.get("register")
    return bool(register and not register["alias_done"])


def _write_spool(state: dict, spool_dir: Path) -> Path:
    folder = spool_dir / state["job_id"]
    files = folder / SPOOL_FILES
    files.mkdir(parents=True, exist_ok=True)
    saved = json.loads(json.dumps(state))
    for run_index, run in enumerate(saved["runs"]):
        for artifact_index, artifact in enumerate(run["artifacts"]):
            if artifact["done"]:
                continue
            source = Path(artifact["path"])
            # One folder per file keeps its name, which becomes the artifact's name in MLflow.
            target = files / f"{run_index}-{artifact_index}" / source.name
            if source.resolve() != target.resolve():
                target.parent.mkdir(exist_ok=True)
                # A copy, not a link (OUT may be cleaned before the sync), renamed into place when complete, so a
                # full disk never leaves a truncated file in the spool.
                with atomic_output_file(target) as staging:
                    shutil.copy2(source, staging)
            artifact["path"] = target.relative_to(folder).as_posix()
    with atomic_output_file(folder / SPOOL_RECORD) as staging:
        staging.write_text(json.dumps(saved, indent=2))
    return folder


def _read_spool(folder: Path) -> dict:
    state = json.loads((folder / SPOOL_RECORD).read_text())
    if state.get("format") != SPOOL_FORMAT:
        raise TrackingError(
            f"{folder / SPOOL_RECORD} has spool format {state.get('format')}, this edgeopt reads {SPOOL_FORMAT}; "
            "sync it with the edgeopt version that wrote it"
        )
    for run in state["runs"]:
        for artifact in run["artifacts"]:
            if not Path(artifact["path"]).is_absolute():
                artifact["path"] = str(folder / artifact["path"])
    return state
