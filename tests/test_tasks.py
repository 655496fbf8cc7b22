"""Tasks and metrics: each metric's value on known predictions, its direction in deltas and gates, the data spec
and module declarations, and the winner rule. No model: these run in well under a second."""

import itertools

import numpy as np
import pytest

from edgeopt.components._shared.data import DataSpec, load_training_data
from edgeopt.components._shared.errors import ConfigError
from edgeopt.components._shared.tasks import (
    Metric,
    Task,
    binary_auc,
    compute_metric,
    make_task_spec,
    match_output_name,
    metric_delta,
    metric_score,
)
from edgeopt.components.evaluation.config import GateConfig
from edgeopt.components.evaluation.core import Evaluation, apply_gate
from edgeopt.components.tracking.records import best_candidate


def test_auc_equals_the_pairwise_count_with_ties_as_half():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 60)
    scores = np.round(rng.normal(labels, 1.0), 1)  # rounding makes ties
    pairs = [
        1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(scores[labels == 1], scores[labels == 0])
    ]
    assert binary_auc(labels, scores) == pytest.approx(np.mean(pairs))


def test_classification_metrics_read_integer_and_one_hot_labels_alike():
    predictions = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    labels = np.array([1, 1, 2, 0])
    for given in (labels, np.eye(3)[labels]):
        assert compute_metric(Metric.ACCURACY, Task.CLASSIFICATION, given, predictions) == 0.75
        assert compute_metric(Metric.TOP_K_ACCURACY, Task.CLASSIFICATION, given, predictions, top_k=2) == 1.0


def test_binary_accuracy_splits_sigmoid_at_half_and_logits_at_zero():
    labels = np.array([1, 0, 1, 0])
    sigmoid = np.array([[0.9], [0.4], [0.6], [0.7]])
    logits = np.array([[2.0], [-0.5], [0.3], [0.8]])
    assert compute_metric(Metric.ACCURACY, Task.BINARY, labels, sigmoid) == 0.75
    assert compute_metric(Metric.ACCURACY, Task.BINARY, labels, logits) == 0.75
    assert compute_metric(Metric.AUC, Task.BINARY, labels, sigmoid) == 0.75


def test_regression_errors_in_the_targets_units():
    targets = np.array([1.0, 2.0, 3.0, 4.0])
    predictions = np.array([[1.5], [2.0], [2.0], [4.0]])  # a [n, 1] head against [n] targets
    assert compute_metric(Metric.MAE, Task.REGRESSION, targets, predictions) == pytest.approx(0.375)
    assert compute_metric(Metric.RMSE, Task.REGRESSION, targets, predictions) == pytest.approx(np.sqrt(1.25 / 4))


def _metric(name, value):
    return make_task_spec("regression" if name in ("mae", "rmse") else "classification", name).describe(value)


def test_delta_is_positive_when_worse_whatever_the_direction():
    assert metric_delta(_metric("mae", 0.40), _metric("mae", 0.43)) == pytest.approx(0.03)
    assert metric_delta(_metric("mae", 0.40), _metric("mae", 0.35)) == pytest.approx(-0.05)
    assert metric_delta(_metric("accuracy", 0.95), _metric("accuracy", 0.93)) == pytest.approx(2.0)  # points


def _evaluation(metric, accuracy=None, gzip_bytes=100):
    return Evaluation("m.tflite", 400, gzip_bytes, accuracy, 100, {"p50": 1.0, "p90": 1.2}, 1, metric)


def test_mae_gate_fails_a_rising_error_and_passes_a_falling_one():
    baseline = _evaluation(_metric("mae", 0.40))
    gate = GateConfig(max_metric_drop=0.02)
    worse = apply_gate(_evaluation(_metric("mae", 0.43)), baseline, gate)
    assert not worse.passed and worse.reasons == ["mae degradation 0.03 > max_metric_drop 0.02"]
    assert apply_gate(_evaluation(_metric("mae", 0.30)), baseline, gate).passed


def test_max_accuracy_drop_reads_accuracy_and_is_relative_for_other_metrics():
    # A built-in recipe's gate (max_accuracy_drop: 1.0, no metric gate) on a regressor: 1 % of the baseline MAE.
    baseline = _evaluation(_metric("mae", 0.400))
    gate = GateConfig(max_accuracy_drop=1.0)
    assert apply_gate(_evaluation(_metric("mae", 0.403)), baseline, gate).passed
    verdict = apply_gate(_evaluation(_metric("mae", 0.410)), baseline, gate)
    assert not verdict.passed and verdict.reasons[0].startswith("mae degradation 2.50 % > 1.0 % (max_accuracy_drop")
    # With a metric gate set, max_accuracy_drop does not apply to a regressor at all.
    assert apply_gate(_evaluation(_metric("mae", 0.410)), baseline, GateConfig(max_metric_drop=0.05)).passed
    # On accuracy it keeps its meaning: points.
    accuracy = _evaluation(_metric("accuracy", 0.95), 0.95)
    verdict = apply_gate(_evaluation(_metric("accuracy", 0.93), 0.93), accuracy, gate)
    assert verdict.reasons == ["accuracy drop 2.00 pt > max_accuracy_drop 1.0"]


def test_relative_metric_gate_and_champion_on_auc():
    baseline = _evaluation(_metric("auc", 0.90))
    gate = GateConfig(max_metric_drop_relative=2.0, champion_max_accuracy_drop=0.5)
    assert apply_gate(_evaluation(_metric("auc", 0.885)), baseline, gate).passed  # 1.67 % worse
    champion = _evaluation(_metric("auc", 0.895))
    verdict = apply_gate(_evaluation(_metric("auc", 0.885)), baseline, gate, champion)
    assert verdict.reasons == ["auc degradation vs champion 1.12 % > champion_max_accuracy_drop 0.5"]


def test_winner_by_metric_is_the_best_in_its_direction_and_by_default_the_smallest():
    def candidate(name, mae, gzip_bytes):
        return {"recipe": name, "metric": _metric("mae", mae), "gzip_bytes": gzip_bytes, "gate": {"passed": True}}

    candidates = [candidate("a", 0.41, 100), candidate("b", 0.39, 300), candidate("c", 0.39, 200)]
    by_metric = {"candidates": candidates, "selection": {"rule": {"objective": "metric"}}}
    assert best_candidate(by_metric)["recipe"] == "c"  # lowest MAE, then the smaller file
    assert best_candidate({"candidates": candidates})["recipe"] == "a"  # default: smallest gzip among passed
    old_style = {"recipe": "old", "accuracy": 0.9, "gzip_bytes": 1, "gate": {"passed": True}}
    assert metric_score(old_style) == 0.9


def test_tfmot_renamed_outputs_still_match():
    assert match_output_name(["quant_species", "quant_alcohol"], "species") == "quant_species"
    assert match_output_name(["species", "alcohol"], "species") == "species"
    assert match_output_name(["head"], "species") is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"task": "regression", "metric": "accuracy"}, "does not fit task 'regression'"),
        ({"metric": "mae"}, "does not fit task 'classification'"),
        ({"features": [{"key": "a", "shape": [2], "input": "a"}, {"key": "b", "shape": [2]}]}, "have no `input`"),
        (
            {"features": [{"key": "a", "shape": [4], "input": "a"}], "input_shape": [2, 2]},
            "with named inputs, give each feature its shape",
        ),
    ],
)
def test_data_spec_rejects_what_cannot_work(fields, message):
    spec = {"features": [{"key": "x", "shape": [4]}], "label_key": "label", **fields}
    with pytest.raises(ConfigError, match=message):
        DataSpec(**spec)


def test_data_spec_defaults_keep_the_classifier_contract():
    task = DataSpec(features=[{"key": "x", "shape": [4]}], label_key="y").task_spec()
    assert (task.task, task.metric, task.higher_is_better, task.declared) == ("classification", "accuracy", True, False)
    regression = DataSpec(features=[{"key": "x", "shape": [4]}], label_key="y", task="regression").task_spec()
    assert (regression.metric, regression.higher_is_better) == ("mae", False)


def test_module_metric_fn_must_say_its_direction(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("def input_fn(files, batch_size):\n    pass\n\ndef metric_fn(y_true, y_pred):\n    return 0.0\n")
    with pytest.raises(ConfigError, match="METRIC_HIGHER_IS_BETTER"):
        load_training_data(tmp_path, module_file=module)
    module.write_text(module.read_text() + "\nMETRIC_HIGHER_IS_BETTER = False\nTASK = 'regression'\n")
    task = load_training_data(tmp_path, module_file=module).task
    assert (task.metric, task.higher_is_better, task.task) == ("metric_fn", False, Task.REGRESSION)


def test_multilabel_scores_each_label():
    labels = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    probabilities = np.array([[0.8, 0.3], [0.4, 0.9], [0.7, 0.2], [0.1, 0.6]])
    assert compute_metric(Metric.ACCURACY, Task.MULTILABEL, labels, probabilities) == 0.75  # 6 of 8 labels
    # Label 0 is ranked perfectly; label 1 has one of two positives above both negatives.
    assert compute_metric(Metric.AUC, Task.MULTILABEL, labels, probabilities) == pytest.approx((1.0 + 0.5) / 2)


def test_pareto_plot_takes_a_regressor_report(tmp_path):
    from edgeopt.components.tracking.pareto import plot_pareto

    def measured(name, mae, gzip_bytes):
        return {"recipe": name, "metric": _metric("mae", mae), "accuracy": None, "gzip_bytes": gzip_bytes,
                "latency_ms": {"p50": 0.01}, "gate": {"passed": True}}  # fmt: skip

    failed = {"recipe": "broken", "metric": None, "accuracy": None, "gate": {"passed": False}, "error": "x"}
    report = {"baseline": measured("baseline", 0.40, 4000), "candidates": [measured("int8", 0.41, 1500), failed]}
    path = plot_pareto(report, tmp_path / "pareto.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_child_run_metrics_carry_the_metric_under_its_name():
    from edgeopt.components.tracking.records import candidate_metrics, sort_rows

    candidate = {"recipe": "int8", "metric": _metric("auc", 0.93), "metric_delta": 0.5, "gate": {"passed": True}}
    metrics = candidate_metrics(candidate)
    assert metrics["auc"] == 0.93 and metrics["metric.value"] == 0.93 and metrics["metric_delta"] == 0.5
    rows = [{"metrics": {"auc": 0.91}}, {"metrics": {"auc": 0.95}}, {"metrics": {}}]
    assert [row["metrics"].get("auc") for row in sort_rows(rows, "auc")] == [0.95, 0.91, None]


def test_module_metric_fn_scores_and_sets_the_direction():
    def median_error(y_true, y_pred):
        return float(np.median(np.abs(y_true - y_pred.reshape(-1))))

    task = make_task_spec("regression", metric_fn=median_error, higher_is_better=False)
    assert task.score(np.array([1.0, 2.0, 3.0]), np.array([[1.5], [2.0], [5.0]])) == 0.5
    assert task.describe(0.5) == {"name": "median_error", "higher_is_better": False, "value": 0.5, "output": None}
