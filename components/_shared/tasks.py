"""What a model predicts and how it is scored: tasks, metrics with a known direction, and the direction-aware
comparisons gates and the winner rule use. Pure numpy, so tracking code can import it without TensorFlow."""

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgeopt.components._shared.errors import ConfigError


class Task(enum.StrEnum):
    CLASSIFICATION = "classification"  # one class of many: integer or one-hot labels
    BINARY = "binary"  # 0/1 labels; one sigmoid (or logit) output, or two softmax columns
    MULTILABEL = "multilabel"  # several independent 0/1 labels per example
    REGRESSION = "regression"  # float targets


class Metric(enum.StrEnum):
    ACCURACY = "accuracy"
    TOP_K_ACCURACY = "top_k_accuracy"
    AUC = "auc"
    MAE = "mae"
    RMSE = "rmse"


HIGHER_IS_BETTER = {Metric.ACCURACY: True, Metric.TOP_K_ACCURACY: True, Metric.AUC: True, Metric.MAE: False,
                    Metric.RMSE: False}  # fmt: skip
# Metrics that are fractions: their deltas are reported in percentage points, like accuracy always was.
FRACTION_METRICS = {Metric.ACCURACY.value, Metric.TOP_K_ACCURACY.value, Metric.AUC.value}
DEFAULT_METRIC = {Task.CLASSIFICATION: Metric.ACCURACY, Task.BINARY: Metric.ACCURACY, Task.MULTILABEL: Metric.AUC,
                  Task.REGRESSION: Metric.MAE}  # fmt: skip
METRICS_OF_TASK = {
    Task.CLASSIFICATION: (Metric.ACCURACY, Metric.TOP_K_ACCURACY, Metric.AUC),
    Task.BINARY: (Metric.ACCURACY, Metric.AUC),
    Task.MULTILABEL: (Metric.ACCURACY, Metric.AUC),
    Task.REGRESSION: (Metric.MAE, Metric.RMSE),
}


@dataclass(frozen=True)
class TaskSpec:
    """The task, the metric that scores it, and the model output the metric reads.

    `declared` is False for the default (integer-label classification scored by accuracy, today's behaviour), so
    fine-tuning may fall back to the model's own compiled loss. A module file may give `metric_fn(y_true, y_pred)`
    (numpy in, float out) with its direction, and `loss_fn` for fine-tuning.
    """

    task: Task = Task.CLASSIFICATION
    metric: str = Metric.ACCURACY.value
    higher_is_better: bool = True
    output: str | None = None
    top_k: int = 5
    declared: bool = False
    metric_fn: Callable | None = None
    loss_fn: Callable | None = None

    def score(self, labels: np.ndarray, predictions: np.ndarray) -> float:
        """The metric on one output's predictions (dequantized, as the model emits them)."""
        if self.metric_fn is not None:
            return float(self.metric_fn(labels, predictions))
        return compute_metric(Metric(self.metric), self.task, labels, predictions, self.top_k)

    def accuracy(self, labels: np.ndarray, predictions: np.ndarray) -> float | None:
        """Top-1 accuracy for classification and binary tasks; None where accuracy has no single meaning."""
        if self.task not in (Task.CLASSIFICATION, Task.BINARY):
            return None
        return compute_metric(Metric.ACCURACY, self.task, labels, predictions, self.top_k)

    def describe(self, value: float | None) -> dict:
        """The `metric` entry of report.json."""
        return {"name": self.metric, "higher_is_better": self.higher_is_better, "value": value, "output": self.output}


def make_task_spec(
    task: str | None = None,
    metric: str | None = None,
    *,
    output: str | None = None,
    top_k: int = 5,
    metric_fn: Callable | None = None,
    higher_is_better: bool | None = None,
    loss_fn: Callable | None = None,
    source: str = "the data spec",
) -> TaskSpec:
    """Validates a task/metric declaration and fills in defaults; `source` names where it came from in errors.

    Raises:
      ConfigError: unknown task or metric, a metric that does not fit the task, or a metric_fn without direction.
    """
    try:
        task_value = Task(task) if task is not None else Task.CLASSIFICATION
    except ValueError as err:
        raise ConfigError(f"{source}: task '{task}' is not one of {[t.value for t in Task]}") from err
    if metric_fn is not None:
        if higher_is_better is None:
            raise ConfigError(
                f"{source}: metric_fn needs its direction; set METRIC_HIGHER_IS_BETTER = True (or False for errors)"
            )
        name = metric if metric is not None else getattr(metric_fn, "__name__", "metric_fn")
        return TaskSpec(task_value, name, bool(higher_is_better), output, top_k, task is not None, metric_fn, loss_fn)
    try:
        metric_value = Metric(metric) if metric is not None else DEFAULT_METRIC[task_value]
    except ValueError as err:
        raise ConfigError(
            f"{source}: metric '{metric}' is not one of {[m.value for m in Metric]}; or define metric_fn"
        ) from err
    if metric_value not in METRICS_OF_TASK[task_value]:
        allowed = [m.value for m in METRICS_OF_TASK[task_value]]
        raise ConfigError(f"{source}: metric '{metric_value}' does not fit task '{task_value}'; use one of {allowed}")
    declared = task is not None or metric is not None
    return TaskSpec(task_value, metric_value.value, HIGHER_IS_BETTER[metric_value], output, top_k, declared, None,
                    loss_fn)  # fmt: skip


# Prefixes tfmot gives the layers it wraps; a wrapped output layer keeps the user's name after the prefix.
WRAPPER_PREFIXES = ("prune_low_magnitude_", "cluster_", "quant_")


def match_output_name(names: list[str], wanted: str) -> str | None:
    """`wanted` among `names`, also when tfmot renamed the output layer (`quant_head` for `head`); None if absent."""
    if wanted in names:
        return wanted
    wrapped = [name for name in names if any(name == prefix + wanted for prefix in WRAPPER_PREFIXES)]
    return wrapped[0] if len(wrapped) == 1 else None


def _scores(predictions: np.ndarray) -> np.ndarray:
    """One positive-class score per example from a binary head: one column (sigmoid or logit) or two (softmax)."""
    predictions = np.asarray(predictions, dtype=np.float64)
    if predictions.ndim == 2 and predictions.shape[1] == 2:
        return predictions[:, 1] - predictions[:, 0]  # logit difference: positive means class 1, either way
    return predictions.reshape(len(predictions), -1)[:, 0] if predictions.ndim > 1 else predictions


def _threshold(scores: np.ndarray, two_columns: bool) -> float:
    # A sigmoid output lies in [0, 1] and splits at 0.5; logits (and softmax differences) split at 0.
    return 0.5 if not two_columns and scores.min() >= 0.0 and scores.max() <= 1.0 else 0.0


def _class_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    return labels.argmax(-1) if labels.ndim > 1 and labels.shape[-1] > 1 else labels.reshape(-1).astype(np.int64)


def binary_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the rank statistic (Mann-Whitney U), ties counted half."""
    labels = np.asarray(labels).reshape(-1) > 0.5
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = np.asarray(scores)[order]
    # Average ranks over ties so equal scores contribute one half.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def compute_metric(metric: Metric, task: Task, labels: np.ndarray, predictions: np.ndarray, top_k: int = 5) -> float:
    """One built-in metric of `predictions` (one output, as the model emits it) against `labels`."""
    predictions = np.asarray(predictions, dtype=np.float64)
    labels = np.asarray(labels)
    if task == Task.REGRESSION:
        errors = predictions.reshape(len(predictions), -1) - labels.reshape(len(labels), -1).astype(np.float64)
        return float(np.abs(errors).mean() if metric == Metric.MAE else np.sqrt(np.mean(errors**2)))
    if task == Task.BINARY:
        scores = _scores(predictions)
        truth = labels.reshape(-1) > 0.5
        if metric == Metric.AUC:
            return binary_auc(truth, scores)
        two_columns = predictions.ndim == 2 and predictions.shape[1] == 2
        return float(np.mean((scores > _threshold(scores, two_columns)) == truth))
    if task == Task.MULTILABEL:
        truth = labels.reshape(predictions.shape) > 0.5
        if metric == Metric.AUC:
            return float(np.nanmean([binary_auc(truth[:, j], predictions[:, j]) for j in range(truth.shape[1])]))
        return float(np.mean((predictions > _threshold(predictions, False)) == truth))
    classes = _class_labels(labels)
    if metric == Metric.ACCURACY:
        return float(np.mean(predictions.argmax(-1) == classes))
    if metric == Metric.TOP_K_ACCURACY:
        top = np.argsort(-predictions, axis=-1)[:, :top_k]
        return float(np.mean(np.any(top == classes[:, None], axis=-1)))
    present = np.unique(classes)  # one-vs-rest, macro over the classes the eval split holds
    return float(np.nanmean([binary_auc(classes == c, predictions[:, c]) for c in present]))


def metric_delta(reference: dict, candidate: dict) -> float:
    """How much worse `candidate`'s metric is than `reference`'s (both report.json `metric` entries): positive is
    worse whatever the direction, in percentage points for fractions (accuracy, AUC) and in the metric's units
    otherwise (MAE rising by 0.3 gives +0.3)."""
    difference = reference["value"] - candidate["value"]
    if not reference["higher_is_better"]:
        difference = -difference
    return difference * 100.0 if reference["name"] in FRACTION_METRICS else difference


def relative_metric_delta(reference: dict, candidate: dict) -> float:
    """The degradation as a percentage of the reference value (positive is worse)."""
    difference = reference["value"] - candidate["value"]
    if not reference["higher_is_better"]:
        difference = -difference
    scale = abs(reference["value"])
    if scale == 0:
        return 0.0 if difference <= 0 else math.inf
    return difference / scale * 100.0


def metric_score(candidate: dict) -> float:
    """A report.json candidate's metric signed so larger is better, for sorting; reports written before metrics
    existed fall back to accuracy. Missing values sort last."""
    metric = candidate.get("metric")
    if metric is None:
        value = candidate.get("accuracy")
        return -math.inf if value is None else float(value)
    if metric.get("value") is None or math.isnan(metric["value"]):
        return -math.inf
    return float(metric["value"]) if metric["higher_is_better"] else -float(metric["value"])


class MetricStream:
    """The task's metric, and top-1 accuracy where it applies, over batches of (labels, predictions), equal to
    `TaskSpec.score` / `TaskSpec.accuracy` on the whole split.

    Accuracy and top-k accuracy of a classifier and a regressor's MAE and RMSE are running sums: memory stays
    constant however long the split. AUC, binary and multilabel accuracy (whose threshold depends on the range of
    every score) and a module's metric_fn need every prediction of the metric's output, which is kept; the inputs
    never are.
    """

    def __init__(self, task: TaskSpec):
        self.task = task
        self.summed = task.metric_fn is None and (
            (task.task == Task.CLASSIFICATION and task.metric in (Metric.ACCURACY, Metric.TOP_K_ACCURACY))
            or task.task == Task.REGRESSION
        )
        self.examples = 0
        self._metric_sum = 0.0
        self._correct = 0
        self._values = 0
        self._kept: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, labels: np.ndarray, predictions: np.ndarray) -> None:
        self.examples += len(labels)
        if not self.summed:
            self._kept.append((np.asarray(labels), np.asarray(predictions)))
            return
        predictions = np.asarray(predictions, dtype=np.float64)
        if self.task.task == Task.REGRESSION:
            errors = predictions.reshape(len(predictions), -1) - np.asarray(labels).reshape(len(labels), -1)
            self._values += errors.size
            self._metric_sum += float(np.abs(errors).sum() if self.task.metric == Metric.MAE else (errors**2).sum())
            return
        classes = _class_labels(labels)
        self._correct += int(np.sum(predictions.argmax(-1) == classes))
        if self.task.metric == Metric.TOP_K_ACCURACY:
            top = np.argsort(-predictions, axis=-1)[:, : self.task.top_k]
            self._metric_sum += float(np.sum(np.any(top == classes[:, None], axis=-1)))

    def result(self) -> tuple[float, float | None]:
        """(the metric's value, top-1 accuracy or None where it has no single meaning)."""
        if not self.examples:
            return math.nan, None
        if not self.summed:
            labels = np.concatenate([labels for labels, _ in self._kept])
            predictions = np.concatenate([predictions for _, predictions in self._kept])
            return self.task.score(labels, predictions), self.task.accuracy(labels, predictions)
        if self.task.task == Task.REGRESSION:
            mean = self._metric_sum / self._values
            return (mean if self.task.metric == Metric.MAE else math.sqrt(mean)), None
        accuracy = self._correct / self.examples
        if self.task.metric == Metric.TOP_K_ACCURACY:
            return self._metric_sum / self.examples, accuracy
        return accuracy, accuracy
