"""The MLflow adapter: logs a finished optimize report as one parent run per job with one child run per candidate,
registers the best candidate that passed its gate, and keeps in a local spool whatever MLflow could not take.

With tracking/ the only edgeopt code that imports mlflow. The core returns results; this module logs them:

    with tracked_job(TrackingConfig(), orchestrator="cli", output_dir=out) as job:
        report = optimize(model, recipes, out, data=data, champion_tflite=job.champion_tflite())
        job.log_report(report, examples=examples)

Everything a job sends is first written down as plain data (the job's state: runs, batches, artifacts, the registry
step, each marked done once MLflow confirmed it). The same `_apply` sends it live and, after an outage, from the
spool in `edgeopt sync`, so a synced run holds exactly what a live run would have.

Split by responsibility: retry.py (calling MLflow), state.py (the job's state and its spool), replay.py (sending the
state), registry.py (champion, promotion, comparison), sync.py (`edgeopt sync`), store.py (opening a store safely,
closing orphaned runs). Their public names stay importable from here.
"""

import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path

from mlflow import MlflowClient

from edgeopt.components import __version__
from edgeopt.components._shared.errors import TrackingError
from edgeopt.components._shared.signals import sigterm_raises
from edgeopt.components.tracking import local_store, records, tflite_flavor
from edgeopt.components.tracking.config import Orchestrator, TrackingConfig, default_artifact_location
from edgeopt.components.tracking.pareto import plot_pareto
from edgeopt.components.tracking.registry import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    MODEL_ARTIFACT_PATH,
    ChampionModel,
    _download_champion,
    compare_candidates,
    download_champion_tflite,
    promote_challenger,
)
from edgeopt.components.tracking.replay import _apply
from edgeopt.components.tracking.retry import _Caller, _client, _now_ms, _say, _short, is_transient
from edgeopt.components.tracking.state import (
    PARENT,
    PARENT_KEY,
    SPOOL_FORMAT,
    SPOOL_RECORD,
    _add_artifact,
    _add_batch,
    _new_run,
    _pending,
    _write_spool,
)
from edgeopt.components.tracking.store import close_orphaned_runs
from edgeopt.components.tracking.sync import sync_spool

__all__ = [  # the public names of the tracking package, importable from here as before the split
    "CHALLENGER_ALIAS",
    "CHAMPION_ALIAS",
    "MODEL_ARTIFACT_PATH",
    "SPOOL_FORMAT",
    "SPOOL_RECORD",
    "ChampionModel",
    "TrackedJob",
    "compare_candidates",
    "download_champion_tflite",
    "is_transient",
    "promote_challenger",
    "sync_spool",
    "tracked_job",
]

SENSITIVITY_ARTIFACT_PATH = "sensitivity"
SENSITIVITY_FILES = ("layer_sensitivity.json", "layer_sensitivity.png")
CALIBRATION_ARTIFACT_PATH = "calibration"
CHAMPION_FOLDER = "champion"
PARETO_PNG = "pareto.png"
RECIPE_JSON = "recipe.json"
REPORT_FILES = ("report.json", "report.md")


# --- A job. ---


class TrackedJob:
    """One optimize job as MLflow runs; a context manager (see `tracked_job`).

    Entering creates the parent run, so a failure in any step ends it FAILED with an `edgeopt.failure_reason` tag.
    When MLflow cannot be reached (at the start or mid-job), the job carries on and everything it would have logged
    is written to the spool folder at the end, for `edgeopt sync`.
    """

    def __init__(
        self,
        config: TrackingConfig,
        *,
        orchestrator: Orchestrator | str,
        output_dir: str | os.PathLike,
        orchestrator_run_id: str | None = None,
        verbose: int = 1,
    ):
        self.config = config
        self.output_dir = Path(output_dir)
        self.job_id = uuid.uuid4().hex
        # host:path, so jobs on other machines (or pods) with the same path never close each other's runs
        self._output_key = f"{socket.gethostname()}:{self.output_dir.resolve()}"
        self.tracking_uri = config.resolved_tracking_uri(output_dir)
        self.spool_dir = config.resolved_spool_dir(output_dir).resolve()
        self.spooled_to: Path | None = None
        self.champion_version: str | None = None
        self.offline_reason: str | None = None
        self._verbose = verbose
        self._call = _Caller(config, self._say)
        self._client: MlflowClient | None = None
        self._staging: Path | None = None
        self._report_logged = False
        orchestrator = Orchestrator(orchestrator)
        start_tags = {
            records.TAG_RUN_KIND: records.RUN_KIND_JOB,
            records.TAG_JOB_ID: self.job_id,
            records.TAG_ORCHESTRATOR: orchestrator.value,
            records.TAG_ORCHESTRATOR_RUN_ID: orchestrator_run_id or self.job_id,
            records.TAG_VERSION: __version__,
            records.TAG_OUTPUT_DIR: self._output_key,
        }
        self._orchestrator_run_id = orchestrator_run_id
        self.failure_reason: str | None = None
        self.closed_orphans: list[str] = []
        self.state = {
            "format": SPOOL_FORMAT,
            "job_id": self.job_id,
            "tracking_uri": self.tracking_uri,
            "experiment_name": config.experiment_name,
            "artifact_location": config.artifact_location or default_artifact_location(self.tracking_uri),
            "runs": [_new_run(PARENT_KEY, self._parent_run_name(orchestrator), _now_ms(), start_tags)],
            "register": None,
        }

    @property
    def parent_run_id(self) -> str | None:
        return self.state["runs"][PARENT]["run_id"]

    @property
    def offline(self) -> bool:
        return self.offline_reason is not None

    @property
    def challenger_version(self) -> str | None:
        register = self.state.get("register")
        return register["version"] if register and register["alias_done"] else None

    def _say(self, message: str, problem: bool = False):
        _say(message, verbose=self._verbose, problem=problem)

    def _parent_run_name(self, orchestrator: Orchestrator) -> str:
        """The model (registry name, else experiment) and the UTC date: `edgeopt-digits-2026-12-01-0530-kfp-1a2b`."""
        model = self.config.registered_model_name or self.config.experiment_name
        return f"{model}-{time.strftime('%Y-%m-%d-%H%M', time.gmtime())}-{orchestrator.value}-{self.job_id[:4]}"

    def __enter__(self) -> "TrackedJob":
        # Kubernetes and KFP stop a pod with SIGTERM: in every face, it ends the job's run KILLED like Ctrl-C does.
        self._signals = sigterm_raises()
        self._signals.__enter__()
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self._staging = Path(tempfile.mkdtemp(prefix="edgeopt-tracking-"))
            local_store.relocate_copied_store(self.tracking_uri)  # a copied OUT/ keeps its own mlartifacts/
            self._say(f"MLflow: experiment '{self.config.experiment_name}' at {self.tracking_uri}")
            self._flush()
            self._close_orphans()
        except BaseException:
            self._signals.__exit__(None, None, None)
            raise
        return self

    def _close_orphans(self):
        if self.offline or self.parent_run_id is None:
            return
        try:
            experiment_id = self._call("get run", self._client.get_run, self.parent_run_id).info.experiment_id
            self.closed_orphans = close_orphaned_runs(
                self._client,
                experiment_id,
                own_run_id=self.parent_run_id,
                output_dir=self._output_key,
                orchestrator_run_id=self._orchestrator_run_id,
                call=self._call,
            )
        except Exception as err:  # closing old runs is housekeeping: it never stops the job
            self._say(f"MLflow: could not close earlier attempts' runs ({_short(err)})", problem=True)
            return
        if self.closed_orphans:
            self._say(f"MLflow: closed {len(self.closed_orphans)} run(s) an earlier attempt left RUNNING, as KILLED")

    def mark_failed(self, reason: str):
        """Ends the parent run FAILED with `reason` although the job raised nothing (e.g. a recipe errored)."""
        self.failure_reason = reason

    def __exit__(self, exc_type, exc, traceback) -> bool:
        parent = self.state["runs"][PARENT]
        parent["end_time"] = _now_ms()
        if exc is None and self.failure_reason:
            parent["status"] = "FAILED"
            _add_batch(
                parent,
                tags={
                    records.TAG_FAILURE_REASON: self.failure_reason[: records.MAX_TAG_VALUE],
                    records.TAG_NOTE: self.failure_reason[: records.MAX_TAG_VALUE],
                },
            )
        elif exc is None:
            parent["status"] = "FINISHED"
        else:
            parent["status"] = "FAILED" if isinstance(exc, Exception) else "KILLED"
            reason = _short(exc, records.MAX_TAG_VALUE)
            _add_batch(parent, tags={records.TAG_FAILURE_REASON: reason, records.TAG_NOTE: reason})
        try:
            self._flush()
        except Exception as err:
            if exc is None:
                raise
            self._say(f"MLflow: could not spool the failed job's runs ({_short(err)})", problem=True)
        finally:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._signals.__exit__(None, None, None)
        if not self.offline:
            self._say(f"MLflow: parent run {self.parent_run_id} ({parent['status']}) at {self.tracking_uri}")
        if self.spooled_to:
            self._say(
                f"MLflow: the job's runs wait in {self.spooled_to}; upload them with "
                f"`edgeopt sync --spool {self.spool_dir}`",
                problem=True,
            )
        return False  # never swallow the job's own exception

    def _go_offline(self, err: BaseException):
        self.offline_reason = _short(err)
        self._say(
            f"MLflow at {self.tracking_uri} unavailable ({self.offline_reason}); the job goes on and keeps its runs "
            f"in {self.spool_dir}",
            problem=True,
        )

    def _flush(self):
        if not self.offline:
            try:
                self._client = self._client or _client(self.tracking_uri)
                _apply(self._client, self.state, self._call)
            except Exception as err:  # tracking never costs the job its results: they go to the spool instead
                self._go_offline(err)
        if self.offline and _pending(self.state):
            self.spooled_to = _write_spool(self.state, self.spool_dir)

    def champion_tflite(self) -> str | None:
        """The registry's current champion .tflite, downloaded into OUT/champion/, for `optimize(champion_tflite=)`.

        None when no registered model is configured, the model has no champion yet, or MLflow is unavailable (the
        candidates are then gated against the float baseline only, which is said on the console).
        """
        name = self.config.registered_model_name
        if not name:
            return None
        if not self.offline:
            try:
                champion = _download_champion(self._client, name, self.output_dir / CHAMPION_FOLDER, self._call)
            except TrackingError:
                raise
            except Exception as err:
                self._go_offline(err)
        if self.offline:
            self._say(f"no champion of '{name}' fetched: gating against the float baseline only", problem=True)
            return None
        if champion is None:
            self._say(f"registered model '{name}' has no '{CHAMPION_ALIAS}' yet: gating against the float baseline")
            return None
        self.champion_version = champion.version
        _add_batch(self.state["runs"][PARENT], tags={records.TAG_CHAMPION_VERSION: champion.version})
        self._say(f"champion: '{name}' version {champion.version} ({champion.path})")
        return str(champion.path)

    def log_report(
        self,
        report: dict,
        *,
        examples: str | os.PathLike | None = None,
        report_dir: str | os.PathLike | None = None,
        calibration_manifest: str | os.PathLike | None = None,
    ) -> None:
        """Logs a finished report: parent params/metrics/tags/artifacts, one child run per candidate, and the best
        candidate that passed its gate as the registry's `challenger`.

        Args:
          report: what `optimize()` returned (the content of report.json).
          examples: the Examples folder the job read; its fingerprint (file names and sizes) tags the parent run.
          report_dir: where report.json and report.md lie (default: the job's output folder).
          calibration_manifest: the calibration sampler's manifest.json, logged on the parent run when given.

        Raises:
          TrackingError: called twice, or `calibration_manifest` names no file.
        """
        if self._report_logged:
            raise TrackingError("log_report was already called for this job; one job logs one report")
        if calibration_manifest is not None and not Path(calibration_manifest).is_file():
            raise TrackingError(f"calibration manifest {calibration_manifest} is not a file; pass the manifest.json")
        self._report_logged = True
        report_dir = Path(report_dir) if report_dir else self.output_dir
        parent = self.state["runs"][PARENT]
        _add_batch(
            parent,
            tags=records.job_tags(report, examples=examples),
            params=records.job_params(report),
            metrics=records.job_metrics(report),
        )
        present = [report_dir / name for name in REPORT_FILES if (report_dir / name).is_file()]
        if not present:
            present = [self._staging / REPORT_FILES[0]]
            present[0].write_text(json.dumps(report, indent=2))
        for path in present:
            _add_artifact(parent, path)
        _add_artifact(parent, plot_pareto(report, self._staging / PARETO_PNG))
        if calibration_manifest is not None:
            _add_artifact(parent, calibration_manifest, CALIBRATION_ARTIFACT_PATH)

        now = _now_ms()
        for candidate in report["candidates"]:
            run = _new_run(f"candidate:{candidate['recipe']}", candidate["recipe"], now)
            _add_batch(
                run,
                tags=records.candidate_tags(candidate, self.job_id),
                params=records.candidate_params(candidate),
                metrics=records.candidate_metrics(candidate),
                timestamp=now,
            )
            recipe_json = self._staging / "candidates" / candidate["recipe"] / RECIPE_JSON
            recipe_json.parent.mkdir(parents=True)
            recipe_json.write_text(json.dumps(candidate.get("config"), indent=2, sort_keys=True))
            _add_artifact(run, recipe_json)
            if candidate.get("tflite_path") and Path(candidate["tflite_path"]).is_file():
                staging = self._staging / "models" / candidate["recipe"]  # an MLflow model (tflite_flavor.py)
                for path, folder in tflite_flavor.model_artifact_files(
                    candidate["tflite_path"], staging, MODEL_ARTIFACT_PATH
                ):
                    _add_artifact(run, path, folder)
            for step in candidate.get("step_records", []):  # selective quantization's layer ranking and plot
                for name in SENSITIVITY_FILES:
                    if (Path(step["output"]) / name).is_file():
                        _add_artifact(run, Path(step["output"]) / name, SENSITIVITY_ARTIFACT_PATH)
            run.update(status="FAILED" if candidate.get("error") else "FINISHED", end_time=now)
            self.state["runs"].append(run)

        name = self.config.registered_model_name
        best = records.best_candidate(report)
        if name and best is None:
            self._say(f"no candidate passed its gate: nothing registered under '{name}'")
        elif name:
            self.state["register"] = {
                "model_name": name,
                "run_key": f"candidate:{best['recipe']}",
                "version": None,
                "alias_done": False,
                "tags": tflite_flavor.version_tags(best, self.job_id),
                "description": tflite_flavor.version_description(best),
            }
        self._flush()
        if self.challenger_version:
            self._say(f"registered '{name}' version {self.challenger_version} ({best['recipe']}) as {CHALLENGER_ALIAS}")


def tracked_job(
    config: TrackingConfig | None = None,
    *,
    orchestrator: Orchestrator | str,
    output_dir: str | os.PathLike,
    orchestrator_run_id: str | None = None,
    verbose: int = 1,
) -> TrackedJob:
    """A context manager that makes one optimize job one MLflow parent run.

    Args:
      config: where and how to log (default `TrackingConfig()`: MLFLOW_TRACKING_URI, else OUT/mlflow.db).
      orchestrator: `cli`, `tfx` or `kfp`, tagged with `orchestrator_run_id` (default: the job's own id).
      output_dir: the job's output folder (default SQLite store and spool live there).

    Example:
      with tracked_job(TrackingConfig(registered_model_name="digits"), orchestrator="cli", output_dir=out) as job:
          report = optimize(model, recipes, out, data=data, champion_tflite=job.champion_tflite())
          job.log_report(report, examples=examples)
    """
    return TrackedJob(
        config or TrackingConfig(),
        orchestrator=orchestrator,
        output_dir=output_dir,
        orchestrator_run_id=orchestrator_run_id,
        verbose=verbose,
    )
