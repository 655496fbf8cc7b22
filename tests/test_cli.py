"""The command line end to end: `edgeopt optimize` on a user's model and `edgeopt demo` on the embedded default."""

import json
import subprocess

import pytest

from edgeopt.components._shared.model_io import model_digest
from edgeopt.components.recipes.config import RecipeConfig

CANDIDATE_FIELDS = {
    "recipe", "steps", "tflite_path", "tflite_bytes", "gzip_bytes", "size_ratio", "gzip_ratio",
    "accuracy", "accuracy_drop", "latency_ms", "speedup", "max_abs_diff", "gate",
}  # fmt: skip


def edgeopt(*args, check=True):
    result = subprocess.run(["edgeopt", *map(str, args)], capture_output=True, text=True, timeout=900)
    if check:
        assert result.returncode == 0, result.stderr[-4000:]
    return result


def _write_recipe(path, **fields):
    path.write_text(RecipeConfig(**fields).to_json())
    return path


@pytest.mark.slow
def test_optimize_writes_the_report_contract(tiny_model, digits_examples, tmp_path):
    int8 = _write_recipe(
        tmp_path / "int8.json", name="int8", steps=[{"technique": "quantize", "config": {"mode": "full_integer"}}]
    )
    # An impossible gate: the report must say the candidate failed and why.
    strict = _write_recipe(
        tmp_path / "strict.json",
        name="fp16_strict",
        steps=[{"technique": "quantize", "config": {"mode": "float16"}}],
        gate={"min_size_ratio": 10},
    )
    digest = model_digest(tiny_model)
    out = tmp_path / "out"
    result = edgeopt(
        "optimize", "--model", tiny_model, "--examples", digits_examples, "--data-spec",
        "configs/data/digits.yaml", "--recipe", int8, "--recipe", strict, "--out", out, "--timed-runs", 20,
    )  # fmt: skip
    assert "| int8 |" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert model_digest(tiny_model) == digest
    baseline = report["baseline"]
    assert baseline["tflite_bytes"] == (out / "baseline" / "model.tflite").stat().st_size
    assert set(baseline["latency_ms"]) == {"p50", "p90"}
    by_name = {candidate["recipe"]: candidate for candidate in report["candidates"]}
    assert set(by_name) == {"int8", "fp16_strict"}
    for candidate in by_name.values():
        assert CANDIDATE_FIELDS <= set(candidate)
        assert candidate["size_ratio"] == baseline["tflite_bytes"] / candidate["tflite_bytes"]
        assert candidate["gzip_ratio"] == baseline["gzip_bytes"] / candidate["gzip_bytes"]
        assert candidate["speedup"] == baseline["latency_ms"]["p50"] / candidate["latency_ms"]["p50"]
        assert abs(candidate["accuracy_drop"] - (baseline["accuracy"] - candidate["accuracy"]) * 100) < 1e-9
    assert by_name["int8"]["gate"]["passed"] is True
    assert by_name["fp16_strict"]["gate"] == {
        "passed": False,
        "reasons": [f"size ratio {by_name['fp16_strict']['size_ratio']:.2f} < min_size_ratio 10.0"],
    }
    assert "fp16_strict" in (out / "report.md").read_text()


@pytest.mark.slow
def test_optimize_refuses_h5_without_opt_in(tmp_path, digits_examples):
    from edgeopt.components._shared.keras_bootstrap import keras

    model = keras.Sequential([keras.layers.Input(shape=(8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.save(tmp_path / "model.h5")
    result = edgeopt(
        "optimize", "--model", tmp_path / "model.h5", "--examples", digits_examples, "--data-spec",
        "configs/data/digits.yaml", "--recipe", "configs/recipes/ptq_int8.yaml", "--out", tmp_path / "out", check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "HDF5" in result.stderr and "--allow-unsafe-model" in result.stderr
    assert not (tmp_path / "out" / "report.json").exists()


def test_bad_recipe_file_is_named_in_the_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - technique: prune\n    config: {target_sparsity: 2}\n")
    result = edgeopt("validate", bad, check=False)
    assert result.returncode == 2
    assert "bad.yaml" in result.stderr and "target_sparsity" in result.stderr


@pytest.mark.slow
def test_demo_trains_the_baseline_and_reports(tmp_path):
    out = tmp_path / "demo"
    result = edgeopt("demo", "--out", out, "--recipe", "configs/recipes/ptq_int8.yaml", "--timed-runs", 20)
    assert "| ptq_int8 |" in result.stdout
    report = json.loads((out / "report.json").read_text())
    (candidate,) = report["candidates"]
    # The demo baseline's weights dominate its file, so int8 approaches the 4x limit.
    assert candidate["size_ratio"] > 3.7
    assert candidate["accuracy_drop"] <= 1.0
    assert report["baseline"]["non_weight_bytes_share"] < 0.02
