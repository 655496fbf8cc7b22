"""Registered versions are MLflow models: `mlflow.pyfunc.load_model("models:/NAME@challenger").predict(batch)`
runs the .tflite with LiteRT; versions carry measured tags; a byte-identical file adds no version."""

import gzip
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from edgeopt.components._shared.keras_bootstrap import tf
from edgeopt.components._shared.tflite_runtime import TfliteRunner
from edgeopt.components.tracking import mlflow_tracking as tracking
from edgeopt.components.tracking import tflite_flavor
from edgeopt.components.tracking.config import TrackingConfig

FEATURES, CLASSES = 8, 3


def tiny_tflite(path: Path, seed: int) -> Path:
    """A real 8 -> 16 -> 3 Keras model converted to .tflite (different weights per seed)."""
    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((FEATURES,)),
            tf.keras.layers.Dense(16, activation="relu"),
            tf.keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


@pytest.fixture(scope="module")
def tflites(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tflite")
    return [tiny_tflite(folder / f"model_{seed}.tflite", seed) for seed in (0, 1)]


def batch(rows: int = 5) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(rows, FEATURES)).astype(np.float32)


def report_with(tflite: Path, recipe: str = "ptq_int8") -> dict:
    """The report.json fields the tracker reads, for one passing candidate measured on the given file."""
    data = tflite.read_bytes()
    measured = {"tflite_bytes": len(data), "gzip_bytes": len(gzip.compress(data)), "latency_ms": {"p50": 0.02}}
    return {
        "baseline": {"model_digest": "0" * 64, "accuracy": 0.9, **measured},
        "evaluation": {"timed_runs": 5},
        "calibration": {},
        "candidates": [
            {
                "recipe": recipe,
                "steps": ["quantize"],
                "config": {"name": recipe, "description": "test candidate"},
                "tflite_path": str(tflite),
                "accuracy": 0.89,
                "accuracy_drop": 1.0,
                "gzip_ratio": 1.0,
                "gate": {"passed": True, "reasons": []},
                **measured,
            }
        ],
    }


def log(report: dict, uri: str, out: Path, model: str = "digits"):
    config = TrackingConfig(tracking_uri=uri, registered_model_name=model)
    with tracking.tracked_job(config, orchestrator="cli", output_dir=out, verbose=0) as job:
        job.log_report(report)
    assert not job.offline, job.offline_reason
    return job


def test_saved_model_loads_and_predicts_like_litert(tflites, tmp_path):
    folder = tflite_flavor.save_model(tflites[0], tmp_path / "model")
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    assert mlmodel["metadata"]["tflite_sha256"] == tflite_flavor.sha256_of(tflites[0])
    assert "python_function" in mlmodel["flavors"]
    inputs = yaml.safe_load(mlmodel["signature"]["inputs"])
    assert inputs[0]["tensor-spec"] == {"dtype": "float32", "shape": [-1, FEATURES]}
    assert (folder / mlmodel["saved_input_example_info"]["artifact_path"]).is_file()
    loaded = mlflow.pyfunc.load_model(str(folder))
    expected = TfliteRunner(tflites[0]).predict(batch())
    np.testing.assert_allclose(loaded.predict(batch()), expected, rtol=0, atol=0)
    assert expected.shape == (5, CLASSES)


def test_challenger_loads_from_the_registry_and_identical_files_add_no_version(tflites, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = log(report_with(tflites[0]), uri, tmp_path / "job1")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("digits", tracking.CHALLENGER_ALIAS)
    assert str(version.version) == first.challenger_version == "1"
    assert version.tags["edgeopt.recipe"] == "ptq_int8" and version.tags["edgeopt.gate"] == "passed"
    assert version.tags["tflite_bytes"] == str(tflites[0].stat().st_size)
    assert version.tags["latency_p50_ms"] == "0.02" and version.tags["accuracy"] == "0.89"
    assert version.tags[tflite_flavor.TAG_TFLITE_SHA256] == tflite_flavor.sha256_of(tflites[0])
    assert "ptq_int8" in version.description and "LiteRT" in version.description
    parent = client.get_run(first.parent_run_id)
    assert parent.info.run_name.startswith("digits-20") and parent.info.run_name.endswith(first.job_id[:4])

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)  # not mlflow.set_registry_uri: that would outlive the test
    loaded = mlflow.pyfunc.load_model("models:/digits@challenger")
    np.testing.assert_allclose(loaded.predict(batch()), TfliteRunner(tflites[0]).predict(batch()), rtol=0, atol=0)

    # The same bytes under another recipe name: no new version, the existing one keeps (gets) the alias.
    again = log(report_with(tflites[0], recipe="same_bytes"), uri, tmp_path / "job2")
    assert again.challenger_version == "1"
    assert [str(v.version) for v in client.search_model_versions("name = 'digits'")] == ["1"]
    other = log(report_with(tflites[1]), uri, tmp_path / "job3")
    assert other.challenger_version == "2"
    assert str(client.get_model_version_by_alias("digits", tracking.CHALLENGER_ALIAS).version) == "2"
    log(report_with(tflites[0]), uri, tmp_path / "job4")
    assert str(client.get_model_version_by_alias("digits", tracking.CHALLENGER_ALIAS).version) == "1"
    assert sorted(str(v.version) for v in client.search_model_versions("name = 'digits'")) == ["1", "2"]


def test_a_copied_output_folder_keeps_working_after_the_original_is_gone(tflites, tmp_path, monkeypatch):
    import shutil

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first, copy = tmp_path / "first", tmp_path / "copy"
    config = TrackingConfig(registered_model_name="digits")  # default store: OUT/mlflow.db + OUT/mlartifacts
    with tracking.tracked_job(config, orchestrator="cli", output_dir=first, verbose=0) as job:
        job.log_report(report_with(tflites[0]))
    shutil.copytree(first, copy)
    shutil.rmtree(first)
    with tracking.tracked_job(config, orchestrator="cli", output_dir=copy, verbose=0) as job:
        job.log_report(report_with(tflites[1]))
    assert not first.exists(), "the copy wrote into the original folder"
    uri = f"sqlite:///{copy / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("edgeopt")
    assert experiment.artifact_location == (copy / "mlartifacts").resolve().as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)  # not mlflow.set_registry_uri: that would outlive the test
    for version, tflite in (("1", tflites[0]), ("2", tflites[1])):
        loaded = mlflow.pyfunc.load_model(f"models:/digits/{version}")
        np.testing.assert_allclose(loaded.predict(batch()), TfliteRunner(tflite).predict(batch()), rtol=0, atol=0)


def test_artifact_location_is_configurable(tflites, tmp_path):
    elsewhere = (tmp_path / "artifact-store").resolve().as_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = TrackingConfig(tracking_uri=uri, experiment_name="moved", artifact_location=elsewhere)
    with tracking.tracked_job(config, orchestrator="cli", output_dir=tmp_path / "out", verbose=0) as job:
        job.log_report(report_with(tflites[0]))
    run = MlflowClient(tracking_uri=uri).get_run(job.parent_run_id)
    assert run.info.artifact_uri.startswith(elsewhere + "/")
    assert list((tmp_path / "artifact-store").rglob("MLmodel"))
