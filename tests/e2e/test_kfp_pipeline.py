"""The KFP pipeline end to end through kfp.local (SubprocessRunner, this environment): both gate branches, the
MLflow runs and the registered challenger."""

import subprocess

import pytest
import yaml
from mlflow import MlflowClient

MODEL_NAME = "digits-kfp"


def run_pipeline(root, config_file):
    result = subprocess.run(
        ["edgeopt", "pipeline", "run", "--engine", "kfp", "--root", str(root), "--config", str(config_file),
         "--register-model", MODEL_NAME],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def write_config(path, recipes):
    path.write_text(
        yaml.safe_dump(
            {"recipes": recipes, "trainer_epochs": 2, "evaluation": {"timed_runs": 5, "warmup_runs": 1},
             "calibration": {"size": 100, "label_key": "label"}}
        )
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("kfp")
    failing = root / "fp16_strict.yaml"
    failing.write_text(
        yaml.safe_dump(
            {"name": "fp16_strict", "steps": [{"technique": "quantize", "config": {"mode": "float16"}}],
             "gate": {"min_size_ratio": 10.0}}
        )
    )  # fmt: skip
    passing_log = run_pipeline(root, write_config(root / "passing.yaml", ["ptq_int8"]))
    failing_log = run_pipeline(root, write_config(root / "failing.yaml", [str(failing)]))
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    return client, passing_log.stderr + passing_log.stdout, failing_log.stderr + failing_log.stdout


def parent_runs(client):
    experiment = client.get_experiment_by_name("edgeopt")
    runs = client.search_runs(
        [experiment.experiment_id], "tags.`edgeopt.orchestrator` = 'kfp'", order_by=["start_time"]
    )
    return runs


def test_each_pipeline_run_is_one_parent_run_tagged_with_its_kfp_run(runs):
    client, _, _ = runs
    parents = parent_runs(client)
    assert len(parents) == 2
    assert all(run.info.status == "FINISHED" for run in parents)
    assert all(
        run.data.tags["edgeopt.orchestrator_run_id"].startswith("edgeopt-retrain-and-compress") for run in parents
    )


def test_passing_branch_registers_the_challenger(runs):
    client, _, _ = runs
    version = client.get_model_version_by_alias(MODEL_NAME, "challenger")
    assert version.tags["edgeopt.recipe"] == "ptq_int8"
    child = client.get_run(version.run_id)
    assert child.data.tags["edgeopt.gate"] == "passed"
    assert child.data.metrics["size_ratio"] > 3.5


def test_failing_branch_logs_but_registers_nothing(runs):
    client, _, _ = runs
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == 1
    experiment = client.get_experiment_by_name("edgeopt")
    (child,) = client.search_runs([experiment.experiment_id], "tags.`edgeopt.recipe` = 'fp16_strict'")
    assert child.data.tags["edgeopt.gate"] != "passed"
    assert "min_size_ratio" in child.data.tags["edgeopt.gate_reasons"]
