"""Sending a job's state to MLflow: whatever it has not confirmed yet, each piece marked as it lands; safe to
repeat, so a live job and `edgeopt sync` send exactly the same runs."""

import contextlib

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from edgeopt.components._shared.errors import TrackingError
from edgeopt.components.tracking import records, tflite_flavor
from edgeopt.components.tracking.registry import CHALLENGER_ALIAS, MODEL_ARTIFACT_PATH
from edgeopt.components.tracking.retry import _Caller
from edgeopt.components.tracking.state import PARENT, _forget

MAX_PARAMS_OR_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000


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
        # A byte-identical .tflite is already a version: it gets the alias, no new version.
        sha256 = register["tags"].get(tflite_flavor.TAG_TFLITE_SHA256)
        version = call("find identical version", tflite_flavor.identical_version, client, name, sha256) or call(
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
