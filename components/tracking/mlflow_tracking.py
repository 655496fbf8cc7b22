"""The MLflow adapter: logs a finished optimize report as one parent run per job with one child run per candidate,
registers the best candidate that passed its gate, and keeps in a local spool whatever MLflow could not take.

The only edgeopt module that imports mlflow. The core returns results; this module logs them:

    with tracked_job(TrackingConfig(), orchestrator="cli", output_dir=out) as job:
        report = optimize(model, recipes, out, data=data, champion_tflite=job.champion_tflite())
        job.log_report(report, examples=examples)

Everything a job sends is first written down as plain data (the job's state: runs, batches, artifacts, the registry
step, each marked done once MLflow confirmed it). The same `_apply` sends it live and, after an outage, from the
spool in `edgeopt sync`, so a synced run holds exactly what a live run would have.
"""

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import mlflow
import requests
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from edgeopt.components import __version__
from edgeopt.components._shared.atomic import atomic_output_dir, atomic_output_file
from edgeopt.components._shared.errors import TrackingError
from edgeopt.components.tracking import records
from edgeopt.components.tracking.config import (
    TRACKING_URI_ENV,
    Orchestrator,
    TrackingConfig,
    default_artifact_location,
)
from edgeopt.components.tracking.pareto import plot_pareto

CHALLENGER_ALIAS = "challenger"
CHAMPION_ALIAS = "champion"
MODEL_ARTIFACT_PATH = "model"
SENSITIVITY_ARTIFACT_PATH = "sensitivity"
SENSITIVITY_FILES = ("layer_sensitivity.json", "layer_sensitivity.png")
CALIBRATION_ARTIFACT_PATH = "calibration"
CHAMPION_FOLDER = "champion"
PARETO_PNG = "pareto.png"
RECIPE_JSON = "recipe.json"
REPORT_FILES = ("report.json", "report.md")
SPOOL_RECORD = "record.json"
SPOOL_FILES = "files"
SPOOL_FORMAT = 1
PARENT = 0  # the parent run's index in a job's list of runs
PARENT_KEY = "job"

# Worth retrying: the server or its database did not answer. Anything else (a rejected value, a missing resource)
# fails the same way on every try.
TRANSIENT_ERROR_CODES = {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "IO_ERROR"}
# log_batch limits (mlflow/utils/validation.py).
MAX_PARAMS_OR_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000


def _now_ms() -> int:
    return int(time.time() * 1000)


def _short(err: BaseException, limit: int = 300) -> str:
    text = f"{type(err).__name__}: {err}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_transient(err: BaseException) -> bool:
    """True for failures another try may cure: no connection, a timeout, a 5xx, a busy database."""
    if isinstance(err, requests.exceptions.RequestException | ConnectionError | TimeoutError):
        return True
    return isinstance(err, MlflowException) and err.error_code in TRANSIENT_ERROR_CODES


@contextlib.contextmanager
def _mlflow_settings(config: TrackingConfig):
    """MLflow reads its HTTP retry and timeout settings from the environment on every request; set ours for the
    duration of one call unless the user set them. Its default (7 retries, exponential backoff) would wait minutes
    per call on a dead server, multiplying our own bounded retries. Progress bars and a printed URL per ended run
    would bury the CLI's table; the job prints its parent run once instead."""
    wanted = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(config.http_request_max_retries),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(config.http_request_timeout_seconds),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    }
    added = [name for name in wanted if name not in os.environ]
    os.environ.update({name: wanted[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


class _Caller:
    """Calls MLflow with a bounded number of tries and a doubling backoff; raises the last error when out of tries."""

    def __init__(self, config: TrackingConfig, say):
        self.config = config
        self.say = say

    def __call__(self, what: str, function, *args, **kwargs):
        delay = self.config.backoff_seconds
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                with _mlflow_settings(self.config):
                    return function(*args, **kwargs)
            except Exception as err:
                if attempt == self.config.max_attempts or not is_transient(err):
                    raise
                self.say(f"MLflow {what} failed ({_short(err, 160)}), try {attempt}/{self.config.max_attempts}")
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # the loop either returns or raises


def _client(tracking_uri: str) -> MlflowClient:
    # The registry follows the tracking URI; left unset, MLflow 3 would use ./mlflow.db in the current folder.
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _required_uri(tracking_uri: str | None) -> str:
    uri = tracking_uri or os.environ.get(TRACKING_URI_ENV)
    if not uri:
        raise TrackingError(
            f"no MLflow tracking URI: pass --tracking-uri (e.g. sqlite:///demo-output/mlflow.db or "
            f"http://host:5000) or set {TRACKING_URI_ENV}"
        )
    return uri


@contextlib.contextmanager
def _as_tracking_error(uri: str):
    """For the registry and compare commands: MLflow's failures as one typed error naming the server."""
    try:
        yield
    except TrackingError:
        raise
    except (MlflowException, requests.exceptions.RequestException, OSError) as err:
        raise TrackingError(f"MLflow at {uri} failed: {_short(err)}; check the tracking URI and the server") from err


def _say(message: str, *, verbose: int = 1, problem: bool = False):
    if verbose or problem:
        print(f"[edgeopt] {message}", file=sys.stderr if problem else sys.stdout, flush=True)


def _warn(message: str):
    _say(message, problem=True)


# --- The job's state: plain JSON-able data, so it can be spooled and replayed unchanged. ---


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


# --- Sending the state to MLflow. ---


def _ensure_experiment(client: MlflowClient, state: dict, call: _Caller) -> str:
    name = state["experiment_name"]
    experiment = call("get experiment", client.get_experiment_by_name, name)
    if experiment is None:
        try:
            return call("create experiment", client.create_experiment, name, state["artifact_location"])
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":  # another job created it meanwhile
                raise
            experiment = call("get experiment", client.get_experiment_by_name, name)
    if experiment.lifecycle_stage == "deleted":
        raise TrackingError(
            f"experiment '{name}' at {state['tracking_uri']} is deleted; restore it "
            f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or use another experiment name"
        )
    return experiment.experiment_id


def _log_batch(client: MlflowClient, run_id: str, batch: dict, call: _Caller):
    """One log_batch call for a candidate's params, metrics and tags; split only past MLflow's per-call limits."""
    metrics = [Metric(k, v, batch["timestamp"], 0) for k, v in sorted(batch["metrics"].items())]
    params = [Param(k, v) for k, v in sorted(batch["params"].items())]
    tags = [RunTag(k, v) for k, v in sorted(batch["tags"].items())]
    while metrics or params or tags:
        some_params, params = params[:MAX_PARAMS_OR_TAGS_PER_BATCH], params[MAX_PARAMS_OR_TAGS_PER_BATCH:]
        some_tags, tags = tags[:MAX_PARAMS_OR_TAGS_PER_BATCH], tags[MAX_PARAMS_OR_TAGS_PER_BATCH:]
        room = MAX_ENTITIES_PER_BATCH - len(some_params) - len(some_tags)
        some_metrics, metrics = metrics[:room], metrics[room:]
        call("log_batch", client.log_batch, run_id, metrics=some_metrics, params=some_params, tags=some_tags)


def _apply_run(client, run: dict, experiment_id, call: _Caller, *, parent_run_id=None, terminate: bool):
    if run["run_id"] is None:
        tags = dict(run["create_tags"])
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id  # what nests the child under the job in the MLflow UI
        created = call(
            "create run",
            client.create_run,
            experiment_id(),
            start_time=run["start_time"],
            tags=tags,
            run_name=run["run_name"],
        )
        run["run_id"], run["artifact_uri"] = created.info.run_id, created.info.artifact_uri
    for batch in run["batches"]:
        if not batch["done"]:
            _log_batch(client, run["run_id"], batch, call)
            batch["done"] = True
    for artifact in run["artifacts"]:
        if not artifact["done"]:
            call("log artifact", client.log_artifact, run["run_id"], artifact["path"], artifact["artifact_path"])
            artifact["done"] = True
    if terminate and run["status"] and not run["terminated"]:
        call("end run", client.set_terminated, run["run_id"], run["status"], run["end_time"])
        run["terminated"] = True


def _apply_registration(client: MlflowClient, state: dict, call: _Caller):
    register = state["register"]
    name = register["model_name"]
    run = next(run for run in state["runs"] if run["key"] == register["run_key"])
    if register["version"] is None:
        try:
            call("get registered model", client.get_registered_model, name)
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            with contextlib.suppress(MlflowException):  # RESOURCE_ALREADY_EXISTS when another job raced us
                call("create registered model", client.create_registered_model, name)
        version = call(
            "create model version",
            client.create_model_version,
            name,
            source=f"{run['artifact_uri']}/{MODEL_ARTIFACT_PATH}",
            run_id=run["run_id"],
            tags=register["tags"],
            description=register["description"],
        )
        register["version"] = str(version.version)
    if not register["alias_done"]:
        call("set alias", client.set_registered_model_alias, name, CHALLENGER_ALIAS, register["version"])
        parent_id = state["runs"][PARENT]["run_id"]
        call("tag job", client.set_tag, parent_id, records.TAG_CHALLENGER_VERSION, register["version"])
        register["alias_done"] = True


def _apply(client: MlflowClient, state: dict, call: _Caller):
    """Sends whatever of `state` MLflow has not confirmed yet, marking each piece as it lands; safe to repeat."""
    experiment_ids = []

    def experiment_id():
        if not experiment_ids:
            experiment_ids.append(_ensure_experiment(client, state, call))
        return experiment_ids[0]

    parent, children = state["runs"][PARENT], state["runs"][1:]
    _apply_run(client, parent, experiment_id, call, terminate=False)
    for child in children:
        _apply_run(client, child, experiment_id, call, parent_run_id=parent["run_id"], terminate=True)
    if state.get("register"):
        _apply_registration(client, state, call)
    _apply_run(client, parent, experiment_id, call, terminate=True)  # the job ends last, after its children


def _reconcile(client: MlflowClient, state: dict, call: _Caller):
    """Before a sync: runs the target store does not hold (a different server than the job's) are sent whole."""
    for run in state["runs"]:
        if run["run_id"] is None:
            continue
        try:
            call("get run", client.get_run, run["run_id"])
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            _forget(run)
            register = state.get("register")
            if register and register["run_key"] == run["key"]:
                register.update(version=None, alias_done=False)


# --- The spool: what MLflow did not take, with copies of its files, in a folder per job. ---


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
                shutil.copy2(source, target)  # a copy, not a link: OUT may be cleaned before the sync
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
        }
        self.state = {
            "format": SPOOL_FORMAT,
            "job_id": self.job_id,
            "tracking_uri": self.tracking_uri,
            "experiment_name": config.experiment_name,
            "artifact_location": config.artifact_location or default_artifact_location(self.tracking_uri),
            "runs": [_new_run(PARENT_KEY, f"{orchestrator.value}-{self.job_id[:8]}", _now_ms(), start_tags)],
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

    def __enter__(self) -> "TrackedJob":
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._staging = Path(tempfile.mkdtemp(prefix="edgeopt-tracking-"))
        self._say(f"MLflow: experiment '{self.config.experiment_name}' at {self.tracking_uri}")
        self._flush()
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        parent = self.state["runs"][PARENT]
        parent["end_time"] = _now_ms()
        if exc is None:
            parent["status"] = "FINISHED"
        else:
            parent["status"] = "FAILED" if isinstance(exc, Exception) else "KILLED"
            _add_batch(parent, tags={records.TAG_FAILURE_REASON: _short(exc, records.MAX_TAG_VALUE)})
        try:
            self._flush()
        except Exception as err:
            if exc is None:
                raise
            self._say(f"MLflow: could not spool the failed job's runs ({_short(err)})", problem=True)
        finally:
            shutil.rmtree(self._staging, ignore_errors=True)
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
                _add_artifact(run, candidate["tflite_path"], MODEL_ARTIFACT_PATH)
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
                "tags": {
                    records.TAG_RECIPE: best["recipe"],
                    records.TAG_JOB_ID: self.job_id,
                    records.TAG_GATE: records.GATE_PASSED,
                    "accuracy": str(best["accuracy"]),
                    "gzip_bytes": str(best["gzip_bytes"]),
                },
                "description": f"edgeopt recipe {best['recipe']} ({'+'.join(best['steps'])})",
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


# --- The registry. ---


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


# --- Sync. ---


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
