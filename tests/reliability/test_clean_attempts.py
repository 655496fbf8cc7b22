"""Each attempt starts clean: a rerun into the same --out keeps no candidate of an earlier recipe list (the tracking
store stays), and a retried KFP-style attempt into the same folder keeps no old model.tflite (issue 12.6)."""

import json

import pytest

from edgeopt.components._shared.errors import OptimizationNotAchievedError
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.recipes.core import run_recipe_to_folder
from tests.reliability.conftest import PTQ_DYNAMIC, failing_recipe, job_runs, optimize_args


@pytest.mark.slow
def test_a_rerun_replaces_the_earlier_candidates_and_keeps_the_store(cli, tiny_model, digits_examples, tmp_path):
    out = tmp_path / "out"
    assert cli(*optimize_args(tiny_model, digits_examples, out, PTQ_DYNAMIC))[0] == 0
    assert (out / "candidates" / "ptq_dynamic").is_dir()
    (out / ".report.json.partial-x").write_text("left by a killed job")

    assert cli(*optimize_args(tiny_model, digits_examples, out, "configs/recipes/ptq_fp16.yaml"))[0] == 0
    assert sorted(path.name for path in (out / "candidates").iterdir()) == ["ptq_fp16"]
    report = json.loads((out / "report.json").read_text())
    assert [candidate["recipe"] for candidate in report["candidates"]] == ["ptq_fp16"]
    assert not list(out.glob(".*.partial-*"))
    assert [status for status, _ in job_runs(out)] == ["FINISHED", "FINISHED"]  # the store survived the cleanup


def test_a_failed_retry_leaves_no_model_of_the_earlier_attempt(tiny_model, digits_data, tmp_path):
    model_dir = tmp_path / "optimized_model"
    run_recipe_to_folder(
        tiny_model, RecipeConfig.builtin("ptq_dynamic"), model_dir / "steps", model_dir, data=digits_data
    )
    assert (model_dir / "model.tflite").is_file()
    retry = RecipeConfig.from_yaml(failing_recipe(tmp_path / "failing.json"))
    with pytest.raises(OptimizationNotAchievedError):
        run_recipe_to_folder(tiny_model, retry, model_dir / "steps", model_dir, data=digits_data)
    assert not (model_dir / "model.tflite").exists()
    assert not (model_dir / "edgeopt_recipe.json").exists() and not (model_dir / "steps").exists()


def test_an_input_inside_what_a_rerun_replaces_is_refused(cli, tiny_model, digits_examples, tmp_path):
    out = tmp_path / "out"
    assert cli(*optimize_args(tiny_model, digits_examples, out, extra=["--no-tracking"]))[0] == 0
    earlier = out / "candidates" / "ptq_dynamic"
    before = sorted(path.name for path in earlier.rglob("*"))
    code, _, err = cli(*optimize_args(earlier, digits_examples, out, extra=["--no-tracking"]))
    assert code == 2 and f"--model {earlier}" in err and "copy it elsewhere or pass another --out" in err
    assert sorted(path.name for path in earlier.rglob("*")) == before  # nothing was deleted


def test_the_demo_records_the_data_and_baseline_it_reused(cli, tiny_model, digits_examples, tmp_path):
    import shutil

    from edgeopt.components._shared.model_io import model_digest

    out = tmp_path / "demo"
    shutil.copytree(digits_examples, out / "data")
    shutil.copytree(tiny_model, out / "baseline_model")
    (out / "candidates" / "stale_recipe").mkdir(parents=True)
    digest = model_digest(out / "baseline_model")
    code, _, err = cli(
        "demo", "--out", out, "--recipe", PTQ_DYNAMIC, "--sweep-sizes", "", "--timed-runs", 3, "--warmup-runs", 1,
        "--quiet", "--no-tracking",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["reused"] == [str(out / "data"), str(out / "baseline_model")]
    assert sorted(path.name for path in (out / "candidates").iterdir()) == ["ptq_dynamic"]
    assert model_digest(out / "baseline_model") == digest
