"""Splits are streamed, never held whole (issue 13): a split of a billion examples prunes, quantizes and evaluates
in a bounded number of reads; the stream helpers keep what they promise (seeded samples independent of batching,
exact streamed metrics, NaN/Inf handling in graph and in numpy)."""

import ast
import pathlib

import numpy as np
import pytest

from edgeopt.components._shared.data import TrainingData, load_training_data
from edgeopt.components._shared.errors import DataError
from edgeopt.components._shared.keras_bootstrap import keras
from edgeopt.components._shared.streaming import FiniteBatches, first_examples, uniform_sample
from edgeopt.components._shared.tasks import Metric, MetricStream, Task, make_task_spec
from edgeopt.components._shared.training import fine_tune
from edgeopt.components.evaluation.config import EvaluationConfig
from edgeopt.components.evaluation.core import evaluate_tflite
from edgeopt.components.pruning.config import PruningConfig
from edgeopt.components.pruning.core import prune
from edgeopt.components.quantization.config import QuantizationConfig
from edgeopt.components.quantization.core import quantize
from tests import generated_split_module
from tests.helpers import kernels, overall_sparsity

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]


def _generated_examples(tmp_path) -> pathlib.Path:
    """An Examples folder whose splits hold one placeholder file each: the module's input_fn makes the examples."""
    examples = tmp_path / "examples"
    for split in ("train", "eval"):
        (examples / f"Split-{split}").mkdir(parents=True)
        (examples / f"Split-{split}" / "generated").write_bytes(b"")
    return examples


def test_a_billion_example_split_prunes_quantizes_and_evaluates_in_bounded_reads(tiny_model, tmp_path):
    data = load_training_data(_generated_examples(tmp_path), module_file="tests.generated_split_module")
    generated_split_module.pulled["examples"] = 0

    config = PruningConfig(target_sparsity=0.5, epochs=2, steps_per_epoch=5, batch_size=32, shuffle_buffer=128)
    prune(tiny_model, config, tmp_path / "pruned", data=data)
    int8 = quantize(tmp_path / "pruned", QuantizationConfig(calibration_examples=64), tmp_path / "int8", data=data)
    evaluation = evaluate_tflite(
        int8.tflite_path, data, EvaluationConfig(max_eval_examples=300, timed_runs=2, warmup_runs=1)
    )

    assert evaluation.num_eval_examples == 300
    assert overall_sparsity(kernels(int8.tflite_path, "INT8")) > 0.45
    # Fine-tuning (2 x 5 x 32 plus the shuffle buffer and read-ahead), the calibration scan (20,000), validation
    # (128) and evaluation (300): a bounded read of a split that could never fit in memory.
    assert generated_split_module.pulled["examples"] < 30_000


def test_no_code_path_reads_a_whole_split():
    """The whole-split readers are gone and stay gone: no `TrainingData.arrays`, and nothing in the product calls
    one, or lists a stream of batches into memory."""
    assert not hasattr(TrainingData, "arrays") and not hasattr(TrainingData, "arrays_from_files")
    offenders = []
    for folder in ("components", "pipelines"):
        for path in (REPOSITORY / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Attribute) and node.attr in ("arrays", "arrays_from_files"):
                    offenders.append(f"{path.relative_to(REPOSITORY)}:{node.lineno} .{node.attr}")
                is_call = isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                if is_call and node.func.id == "list" and node.args and isinstance(node.args[0], ast.Call):
                    called = node.args[0].func
                    if isinstance(called, ast.Attribute) and called.attr in ("batches", "file_batches"):
                        offenders.append(f"{path.relative_to(REPOSITORY)}:{node.lineno} list(...{called.attr}())")
    assert not offenders, offenders


def _stream(values: np.ndarray, batch: int):
    for start in range(0, len(values), batch):
        yield values[start : start + batch], values[start : start + batch]


def test_uniform_sample_is_seeded_uniform_and_independent_of_batching():
    values = np.arange(100_000, dtype=np.float32)
    sample = uniform_sample(_stream(values, 256), 2_000, seed=3)
    assert len(np.unique(sample)) == 2_000
    np.testing.assert_array_equal(np.sort(sample), np.sort(uniform_sample(_stream(values, 999), 2_000, seed=3)))
    assert not np.array_equal(np.sort(sample), np.sort(uniform_sample(_stream(values, 256), 2_000, seed=4)))
    # Uniform over the whole stream, not its head: every tenth of it holds about a tenth of the sample.
    per_tenth = np.bincount((sample // 10_000).astype(int), minlength=10)
    assert per_tenth.min() > 150 and per_tenth.max() < 250
    # A dict of named inputs is sampled row-aligned.
    named = uniform_sample(((({"a": v, "b": -v}), v) for v, _ in _stream(values, 500)), 100, seed=0)
    np.testing.assert_array_equal(named["a"], -named["b"])


def test_first_examples_reads_no_further_than_it_needs():
    read = []

    def counted():
        for inputs, labels in _stream(np.arange(10_000, dtype=np.float32), 100):
            read.append(len(labels))
            yield inputs, labels

    inputs, labels = first_examples(counted(), 250)
    assert inputs.tolist() == list(range(250)) and len(labels) == 250 and sum(read) == 300


def test_finite_batches_drop_count_or_refuse():
    values = np.arange(12, dtype=np.float32).reshape(6, 2)
    values[[1, 4], 0] = [np.nan, np.inf]
    batches = [(values[:3], np.arange(3)), (values[3:], np.arange(3, 6))]
    kept = FiniteBatches(batches, policy="drop", what="split 'x'")
    labels = np.concatenate([labels for _, labels in kept])
    assert labels.tolist() == [0, 2, 3, 5] and kept.dropped == 2 and kept.examples == 4
    with pytest.raises(DataError, match=r"^1 of a batch of 3 examples of split 'x' hold NaN or Inf"):
        list(FiniteBatches(batches, policy="fail", what="split 'x'"))
    with pytest.raises(DataError, match=r"^2 of 6 examples of split 'x' hold NaN or Inf; clean the data"):
        list(FiniteBatches(batches, policy="fail", what="split 'x'", fail_at_end=True))
    with pytest.raises(DataError, match="every example holds NaN or Inf"):
        list(FiniteBatches([(values[[1, 4]], np.arange(2))], policy="drop", what="split 'x'"))


@pytest.mark.parametrize(
    ("task", "metric"),
    [
        (Task.CLASSIFICATION, Metric.ACCURACY),
        (Task.CLASSIFICATION, Metric.TOP_K_ACCURACY),
        (Task.CLASSIFICATION, Metric.AUC),
        (Task.BINARY, Metric.ACCURACY),
        (Task.MULTILABEL, Metric.AUC),
        (Task.REGRESSION, Metric.MAE),
        (Task.REGRESSION, Metric.RMSE),
    ],
)
def test_streamed_metrics_equal_the_whole_split_scores(task, metric):
    rng = np.random.default_rng(0)
    n = 1_000
    if task == Task.CLASSIFICATION:
        labels, predictions = rng.integers(0, 10, n), rng.normal(size=(n, 10))
    elif task == Task.BINARY:
        labels, predictions = rng.integers(0, 2, n), rng.uniform(size=(n, 1))
    elif task == Task.MULTILABEL:
        labels, predictions = rng.integers(0, 2, (n, 4)), rng.uniform(size=(n, 4))
    else:
        labels, predictions = rng.normal(size=n), rng.normal(size=(n, 1))
    spec = make_task_spec(task.value, metric.value, top_k=3)
    stream = MetricStream(spec)
    for start in range(0, n, 77):
        stream.add(labels[start : start + 77], predictions[start : start + 77])
    value, accuracy = stream.result()
    assert stream.examples == n
    assert value == pytest.approx(spec.score(labels, predictions), rel=1e-9)
    expected_accuracy = spec.accuracy(labels, predictions)
    assert accuracy == (None if expected_accuracy is None else pytest.approx(expected_accuracy, rel=1e-9))
    # Summed metrics keep no predictions: memory does not grow with the split.
    summed = task == Task.REGRESSION or (task == Task.CLASSIFICATION and metric != Metric.AUC)
    assert stream.summed == summed


def test_training_stream_is_seeded_drops_non_finite_and_fails_under_policy_fail(tmp_path):
    from tests.reliability.test_non_finite import _digits_with

    examples, bad = _digits_with(tmp_path, np.nan)
    data = load_training_data(examples, data_spec="configs/data/digits.yaml")

    def first_labels(seed):
        dataset = data.training_dataset(64, seed=seed, shuffle_buffer=512)
        return np.concatenate([labels.numpy() for _, labels in dataset.take(4)])

    assert first_labels(1).tolist() == first_labels(1).tolist() != first_labels(2).tolist()
    seen = np.concatenate(
        [images.numpy() for images, _ in data.training_dataset(200, seed=0, shuffle_buffer=64).take(7)]
    )
    assert np.isfinite(seen).all() and len(seen) == 1400  # past the end of an epoch (1,400 - bad): it repeats
    assert data.split_size("train") == 1400 - bad and data.dropped_non_finite["train"] == bad

    import dataclasses

    strict = dataclasses.replace(data, non_finite="fail", _split_sizes={}, dropped_non_finite={})
    model = keras.Sequential([keras.layers.Input(shape=(8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    with pytest.raises(DataError, match="NaN or Inf .*non_finite policy: fail"):
        fine_tune(model, strict, PruningConfig(epochs=1, steps_per_epoch=30), from_logits=True)
