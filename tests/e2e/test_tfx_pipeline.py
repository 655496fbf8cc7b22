"""The TFX pipeline end to end with LocalDagRunner: MLMD states, blessings, pushes, caching, partial re-runs, and
the Kubeflow compile."""

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from mlflow import MlflowClient

from edgeopt.pipelines.config import PipelineConfig
from edgeopt.pipelines.tfx_pipeline import compile_for_kubeflow, run_local
from tests.helpers import kernels

COMPLETE = metadata_store_pb2.Execution.COMPLETE
CACHED = metadata_store_pb2.Execution.CACHED
# fp16 can never be 10x smaller than float: this recipe fails its gate on purpose.
FAILING_RECIPE = {
    "name": "fp16_strict",
    "steps": [{"technique": "quantize", "config": {"mode": "float16"}}],
    "gate": {"min_size_ratio": 10.0},
}


def open_store(path) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    return metadata_store.MetadataStore(config)


def executions_by_node(store, run_index: int) -> dict:
    """{node id: execution state} for the run_index-th pipeline run (0 = first)."""
    runs = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda context: context.create_time_since_epoch)
    states = {}
    for execution in store.get_executions_by_context(runs[run_index].id):
        node = [c.name for c in store.get_contexts_by_execution(execution.id) if c.type_id == _node_type(store)]
        states[node[0].split(".", 1)[1]] = execution.last_known_state
    return states


def _node_type(store) -> int:
    return store.get_context_type("node").id


def artifacts_of(store, node: str, type_name: str, run_index: int = -1):
    runs = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda context: context.create_time_since_epoch)
    node_context = store.get_context_by_type_and_name("node", f"edgeopt-digits.{node}")
    in_run = {a.id for a in store.get_artifacts_by_context(runs[run_index].id)}
    type_id = store.get_artifact_type(type_name).id
    return [a for a in store.get_artifacts_by_context(node_context.id) if a.type_id == type_id and a.id in in_run]


@pytest.fixture(scope="module")
def pipeline_runs(tmp_path_factory):
    """Runs the pipeline three times: fresh (through the CLI, from a config file with a relative recipe path),
    unchanged (cached), and with one recipe's step config changed."""
    root = tmp_path_factory.mktemp("tfx")
    recipe_file = root / "fp16_strict.yaml"
    recipe_file.write_text(yaml.safe_dump(FAILING_RECIPE))
    settings = {
        "recipes": ["ptq_int8", "fp16_strict.yaml"],
        "trainer_epochs": 3,
        "evaluation": {"timed_runs": 5, "warmup_runs": 1},
    }
    (root / "pipeline.yaml").write_text(yaml.safe_dump(settings))
    result = subprocess.run(
        ["edgeopt", "pipeline", "run", "--engine", "tfx", "--root", str(root), "--config", str(root / "pipeline.yaml")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    config = PipelineConfig(**{**settings, "recipes": ["ptq_int8", str(recipe_file)]})
    paths = run_local(config, root)
    changed = dict(
        FAILING_RECIPE, steps=[{"technique": "quantize", "config": {"mode": "float16", "calibration_seed": 1}}]
    )
    recipe_file.write_text(yaml.safe_dump(changed))
    run_local(config, root)
    return paths, open_store(paths["metadata_path"])


SHARED_NODES = {"CsvExampleGen", "StatisticsGen", "SchemaGen", "Trainer", "CalibrationSampler", "BaselineExporter"}


def recipe_nodes(*recipes) -> set:
    return {f"{step}_{recipe}" for recipe in recipes for step in ("Optimize", "Evaluate", "Push")}


EXPECTED_NODES = SHARED_NODES | recipe_nodes("ptq_int8", "fp16_strict") | {"MlflowReporter"}


def test_first_run_completes_every_execution(pipeline_runs):
    _, store = pipeline_runs
    states = executions_by_node(store, 0)
    assert set(states) == EXPECTED_NODES
    assert set(states.values()) == {COMPLETE}


def test_only_the_blessed_candidate_is_pushed(pipeline_runs):
    paths, store = pipeline_runs
    (blessed,) = artifacts_of(store, "Evaluate_ptq_int8", "ModelBlessing", run_index=0)
    (refused,) = artifacts_of(store, "Evaluate_fp16_strict", "ModelBlessing", run_index=0)
    assert blessed.custom_properties["blessed"].int_value == 1
    assert refused.custom_properties["blessed"].int_value == 0
    assert "min_size_ratio 10.0" in refused.custom_properties["gate_reasons"].string_value

    pushed = list(Path(paths["serving_root"], "ptq_int8").glob("*/model.tflite"))
    assert len(pushed) == 1
    assert {t.type_name for t in kernels(pushed[0])} == {"INT8"}
    assert not list(Path(paths["serving_root"]).glob("fp16_strict/*/model.tflite"))
    (not_pushed,) = artifacts_of(store, "Push_fp16_strict", "PushedModel", run_index=0)
    assert not_pushed.custom_properties["pushed"].int_value == 0


def test_evaluation_numbers_are_recorded_in_the_artifact(pipeline_runs):
    _, store = pipeline_runs
    (evaluation,) = artifacts_of(store, "Evaluate_ptq_int8", "ModelEvaluation", run_index=0)
    metrics = json.loads(Path(evaluation.uri, "metrics.json").read_text())
    assert metrics["size_ratio"] == pytest.approx(evaluation.custom_properties["size_ratio"].double_value)
    assert metrics["size_ratio"] > 3.5 and metrics["gate"]["passed"] is True


def test_second_run_is_fully_cached(pipeline_runs):
    _, store = pipeline_runs
    states = executions_by_node(store, 1)
    assert set(states) == EXPECTED_NODES
    assert set(states.values()) == {CACHED}


def test_changing_one_step_reruns_it_and_what_follows_only(pipeline_runs):
    _, store = pipeline_runs
    states = executions_by_node(store, 2)
    rerun = {node for node, state in states.items() if state == COMPLETE}
    assert rerun == {"Optimize_fp16_strict", "Evaluate_fp16_strict", "Push_fp16_strict", "MlflowReporter"}
    assert {states[node] for node in EXPECTED_NODES - rerun} == {CACHED}


def test_kubeflow_compile_lists_every_component_and_the_image(tmp_path):
    config = PipelineConfig(recipes=["ptq_int8", "prune80_int8"], image="registry.example/edgeopt:9.9")
    compiled = json.loads(Path(compile_for_kubeflow(config, tmp_path / "pipeline.json")).read_text())
    tasks = set(compiled["pipelineSpec"]["root"]["dag"]["tasks"])
    assert tasks == SHARED_NODES | recipe_nodes("ptq_int8", "prune80_int8") | {"MlflowReporter"}
    executors = compiled["pipelineSpec"]["deploymentSpec"]["executors"]
    images = {executor["container"]["image"] for executor in executors.values()}
    assert images == {"registry.example/edgeopt:9.9"}


def test_mlflow_holds_one_parent_run_per_executed_pipeline_run(pipeline_runs):
    paths, store = pipeline_runs
    client = MlflowClient(paths["tracking_uri"])
    experiment = client.get_experiment_by_name("edgeopt")
    parents = client.search_runs(
        [experiment.experiment_id], "tags.`edgeopt.orchestrator` = 'tfx'", order_by=["start_time"]
    )
    runs = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda context: context.create_time_since_epoch)
    # The second run was cached end to end, MlflowReporter included: nothing new to log.
    assert [p.data.tags["edgeopt.orchestrator_run_id"] for p in parents] == [runs[0].name, runs[2].name]
    children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'")
    (evaluation,) = artifacts_of(store, "Evaluate_ptq_int8", "ModelEvaluation", run_index=0)
    metrics = json.loads(Path(evaluation.uri, "metrics.json").read_text())
    by_recipe = {child.data.tags["edgeopt.recipe"]: child for child in children}
    assert set(by_recipe) == {"ptq_int8", "fp16_strict"}
    assert by_recipe["ptq_int8"].data.metrics["gzip_ratio"] == pytest.approx(metrics["gzip_ratio"])
    assert client.get_model_version_by_alias("edgeopt-digits", "challenger").tags["edgeopt.recipe"] == "ptq_int8"
