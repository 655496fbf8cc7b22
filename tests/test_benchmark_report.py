"""BENCHMARKS.md is rendered from benchmarks/results/latest.json: the committed file must be what the renderer
makes of the committed results, and the targets' verdicts must follow the thresholds."""

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def report_module():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import report

        yield report
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture
def results(report_module):
    results = json.loads((BENCHMARKS / "results" / "latest.json").read_text())
    results["targets"] = report_module.evaluate_targets(results)
    return results


def test_committed_benchmarks_md_is_what_the_renderer_makes_of_latest_json(report_module, results):
    rendered = report_module.render(results, plot_path="benchmarks/results/pareto.png")
    assert rendered == (BENCHMARKS.parent / "BENCHMARKS.md").read_text()


def test_a_target_measured_past_its_threshold_is_missed_and_explained(report_module, results):
    ptq = next(c for c in results["models"]["digits_cnn"]["candidates"] if c["recipe"] == "ptq_int8")
    ptq["size_ratio"] = 3.0
    results["targets"] = report_module.evaluate_targets(results)
    verdict = next(t for t in results["targets"] if t["id"] == "ptq_int8_size")
    assert verdict["measured"] == 3.0 and verdict["met"] is False
    rendered = report_module.render(results)
    assert "**missed**" in rendered
    assert "**full-int8 PTQ (ptq_int8): size ratio** (3.00): the int8 file still carries" in rendered


def test_pareto_front_keeps_the_points_no_other_beats(report_module):
    from report_plots import front_indices

    points = [(1.0, 0.0), (4.0, 0.0), (13.0, 0.3), (8.0, 0.5), (15.0, 1.2)]
    assert front_indices(points) == [1, 2, 4]
