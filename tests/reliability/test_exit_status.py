"""A job in which a recipe errored exits 3 and ends its parent run FAILED; gate failures are results unless
--fail-on-gate (exit 4); no traceback reaches the terminal without -v (issue 12.3, issue 11.5)."""

import json

import pytest

from edgeopt.components._shared.model_io import model_digest
from edgeopt.components.cli_jobs import EXIT_GATE_FAILED, EXIT_RECIPE_FAILED
from tests.reliability.conftest import PTQ_DYNAMIC, failing_recipe, job_runs, optimize_args, write_recipe


@pytest.mark.slow
def test_a_failed_recipe_fails_the_job_and_its_parent_run(cli, tiny_model, digits_examples, tmp_path):
    digest = model_digest(tiny_model)
    out = tmp_path / "out"
    code, _, err = cli(
        *optimize_args(tiny_model, digits_examples, out, PTQ_DYNAMIC, failing_recipe(tmp_path / "r.json"))
    )
    assert code == EXIT_RECIPE_FAILED
    assert "prune_nothing failed in step 00_prune" in err and "Traceback" not in err
    report = json.loads((out / "report.json").read_text())
    by_name = {candidate["recipe"]: candidate for candidate in report["candidates"]}
    failed = by_name["prune_nothing"]
    assert failed["failed_step"] == "00_prune"
    assert failed["error_type"] == "OptimizationNotAchievedError"
    assert "skip_layers" in failed["error_message"]
    assert by_name["ptq_dynamic"]["gate"]["passed"] is True  # the other recipe still ran
    ((status, tags),) = job_runs(out)
    assert status == "FAILED"
    assert "1 of 2 recipes failed: prune_nothing" in tags["edgeopt.failure_reason"]
    assert model_digest(tiny_model) == digest


def test_fail_on_gate_turns_a_missed_gate_into_exit_4(cli, tiny_model, digits_examples, tmp_path):
    strict = write_recipe(
        tmp_path / "strict.json",
        name="dynamic_strict",
        steps=[{"technique": "quantize", "config": {"mode": "dynamic_range"}}],
        gate={"min_size_ratio": 50},
    )
    out = tmp_path / "out"  # without the flag the same job exits 0: tests/test_cli.py's fp16_strict
    code, _, _ = cli(*optimize_args(tiny_model, digits_examples, out, strict, extra=["--fail-on-gate"]))
    assert code == EXIT_GATE_FAILED
    assert json.loads((out / "report.json").read_text())["candidates"][0]["gate"]["passed"] is False
    ((status, tags),) = job_runs(out)
    assert status == "FAILED" and "missed their gate: dynamic_strict" in tags["edgeopt.failure_reason"]


def test_validate_refuses_two_clusters_with_sparsity_preservation(cli, tmp_path):
    recipe = tmp_path / "pcqat2.yaml"
    recipe.write_text(
        "name: pcqat2\nsteps:\n  - technique: prune\n  - technique: cluster\n"
        "    config: {number_of_clusters: 2, preserve_sparsity: true}\n  - technique: quantize\n"
    )
    code, _, err = cli("validate", recipe)
    assert code == 2
    assert "pcqat2.yaml" in err and "number_of_clusters >= 3" in err
