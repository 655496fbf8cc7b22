"""Evaluation numbers and the gate's verdicts."""

import gzip

import pytest

from edgeopt.components._shared.model_io import load_keras_model
from edgeopt.components.evaluation.config import EvaluationConfig, GateConfig
from edgeopt.components.evaluation.core import Evaluation, apply_gate, evaluate_tflite
from edgeopt.components.export.config import ExportConfig
from edgeopt.components.export.core import export_tflite
from tests.helpers import keras_accuracy


def _evaluation(bytes_, gzip_bytes, accuracy, p50):
    return Evaluation("m.tflite", bytes_, gzip_bytes, accuracy, 100, {"p50": p50, "p90": p50 * 1.2}, 1)


def test_evaluation_measures_the_real_file(tiny_model, digits_data, tmp_path):
    exported = export_tflite(tiny_model, ExportConfig(), tmp_path / "float", data=digits_data)
    result = evaluate_tflite(exported.tflite_path, digits_data, EvaluationConfig(timed_runs=30, warmup_runs=3))
    raw = (tmp_path / "float" / "model.tflite").read_bytes()
    assert result.tflite_bytes == len(raw)
    assert gzip.decompress(gzip.compress(raw)) == raw and result.gzip_bytes < len(raw)
    assert result.accuracy == pytest.approx(keras_accuracy(load_keras_model(tiny_model), digits_data), abs=1 / 359)
    assert 0 < result.latency_ms["p50"] <= result.latency_ms["p90"]
    assert result.num_eval_examples == 359


def test_gate_passes_a_good_candidate():
    baseline = _evaluation(1000, 900, 0.95, 1.0)
    assert apply_gate(_evaluation(250, 200, 0.945, 0.5), baseline, GateConfig(min_size_ratio=3.9)).passed


def test_gate_lists_every_reason():
    baseline = _evaluation(1000, 900, 0.95, 1.0)
    gate = GateConfig(max_accuracy_drop=0.5, min_size_ratio=4.0, min_gzip_ratio=5.0, max_latency_ms=0.1)
    verdict = apply_gate(_evaluation(500, 450, 0.90, 2.0), baseline, gate)
    assert not verdict.passed
    assert len(verdict.reasons) == 4
    assert verdict.reasons[0] == "accuracy drop 5.00 pt > max_accuracy_drop 0.5"
    assert verdict.reasons[1] == "size ratio 2.00 < min_size_ratio 4.0"


def test_gate_checks_the_champion_only_when_one_is_given():
    baseline = _evaluation(1000, 900, 0.95, 1.0)
    candidate = _evaluation(250, 200, 0.94, 0.5)
    gate = GateConfig(max_accuracy_drop=2.0, champion_max_accuracy_drop=0.5)
    assert apply_gate(candidate, baseline, gate).passed
    verdict = apply_gate(candidate, baseline, gate, champion=_evaluation(250, 200, 0.96, 0.5))
    assert verdict.reasons == ["accuracy drop vs champion 2.00 pt > champion_max_accuracy_drop 0.5"]
    assert apply_gate(candidate, baseline, gate, champion=_evaluation(250, 200, 0.942, 0.5)).passed
