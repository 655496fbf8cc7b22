"""The one winner rule (components/evaluation/selection.py) and every face that uses it: records.best_candidate
(CLI and MLflow registration), pipelines.steps.pick_winner / bundle_candidates (KFP) and the report's record."""

import json

import pytest

from edgeopt.components._shared.errors import ConfigError
from edgeopt.components.evaluation.selection import SelectionConfig, select_winner, selection_record
from edgeopt.components.tracking import records
from edgeopt.pipelines.steps import bundle_candidates, pick_winner


def candidate(recipe, accuracy, gzip_bytes, *, tflite_bytes=None, p50=1.0, passed=True, error=None):
    record = {
        "recipe": recipe,
        "accuracy": accuracy,
        "gzip_bytes": gzip_bytes,
        "tflite_bytes": tflite_bytes or gzip_bytes * 2,
        "gzip_ratio": 100_000 / gzip_bytes,
        "latency_ms": {"p50": p50},
        "gate": {"passed": passed, "reasons": []},
    }
    return record | ({"error": error} if error else {})


# The benchmark case from issue 14: ptq_int8 4.18x, prune80_int8 13.66x at 0.165 pt (one image) less accuracy.
CANDIDATES = [
    candidate("ptq_int8", 0.9721, 23_923, tflite_bytes=30_000, p50=0.05),
    candidate("prune80_int8", 0.97045, 7_321, tflite_bytes=31_000, p50=0.09),
    candidate("cluster_failed_gate", 0.99, 1_000, passed=False),
    {"recipe": "broken", "gate": {"passed": False, "reasons": []}, "error": "ConversionError: x"},
]


def test_default_rule_picks_the_smallest_passing_payload():
    assert select_winner(CANDIDATES) == 1
    assert records.best_candidate({"candidates": CANDIDATES})["recipe"] == "prune80_int8"
    assert pick_winner(CANDIDATES) == 1


@pytest.mark.parametrize(
    ("objective", "winner"), [("metric", "ptq_int8"), ("tflite_bytes", "ptq_int8"), ("latency_p50", "ptq_int8")]
)
def test_each_objective(objective, winner):
    index = select_winner(CANDIDATES, {"objective": objective})
    assert CANDIDATES[index]["recipe"] == winner


def test_ties_fall_to_the_higher_metric_then_the_smaller_payload_then_the_name():
    tied = [candidate("b", 0.9, 500), candidate("a", 0.9, 500), candidate("c", 0.95, 500)]
    assert select_winner(tied) == 2
    assert select_winner(tied[:2]) == 1
    assert select_winner([candidate("x", 0.9, 900), candidate("y", 0.9, 500)], {"objective": "metric"}) == 1


def test_nothing_wins_when_nothing_passed():
    assert select_winner(CANDIDATES[2:]) is None
    assert records.best_candidate({"candidates": CANDIDATES[2:]}) is None
    assert selection_record(CANDIDATES[2:]) == {"rule": {"objective": "gzip_bytes", "among": "passed"}, "winner": None}


def test_a_bad_rule_is_a_config_error():
    with pytest.raises(ConfigError, match="SelectionConfig.objective"):
        SelectionConfig(objective="accuracy")
    with pytest.raises(ConfigError, match="SelectionConfig.among"):
        select_winner(CANDIDATES, {"among": "all"})


def test_the_report_carries_the_rule_every_face_follows():
    report = {"candidates": CANDIDATES, "selection": selection_record(CANDIDATES, {"objective": "metric"})}
    assert report["selection"] == {"rule": {"objective": "metric", "among": "passed"}, "winner": "ptq_int8"}
    assert records.best_candidate(report)["recipe"] == "ptq_int8"


def test_kfp_bundle_records_the_rule_and_the_winner(tmp_path):
    evaluations = []
    for index, record in enumerate(CANDIDATES[:3]):
        path = tmp_path / f"evaluation_{index}.json"
        path.write_text(json.dumps(record | {"baseline": {"tflite_bytes": 100_000, "gzip_bytes": 90_000}}))
        evaluations.append(str(path))
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "saved_model.pb").write_bytes(b"model")
    winner, markdown = bundle_candidates(evaluations, {}, tmp_path / "bundle", model_dir, rule={"objective": "metric"})
    report = json.loads((tmp_path / "bundle" / "report.json").read_text())
    assert winner == "ptq_int8" and markdown.startswith("winner: ptq_int8")
    assert report["selection"] == {"rule": {"objective": "metric", "among": "passed"}, "winner": "ptq_int8"}
    winner, _ = bundle_candidates(evaluations, {}, tmp_path / "bundle2", model_dir)
    assert winner == "prune80_int8"
