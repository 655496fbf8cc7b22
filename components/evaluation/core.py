"""Measure a .tflite (bytes, gzip bytes, the task's metric, latency) and gate it against the float baseline."""

import gzip
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgeopt.components._shared.data import TrainingData
from edgeopt.components._shared.errors import DataError
from edgeopt.components._shared.streaming import Inputs, select
from edgeopt.components._shared.tasks import MetricStream, metric_delta, metric_score, relative_metric_delta
from edgeopt.components._shared.tflite_runtime import TfliteRunner
from edgeopt.components.evaluation.config import EvaluationConfig, GateConfig


@dataclass(frozen=True)
class Evaluation:
    """What a .tflite costs and how well it does.

    `metric` is report.json's `{name, higher_is_better, value, output}`; `accuracy` is None for tasks without a
    top-1 accuracy (regression, multilabel). Without `metric`, accuracy is the metric (the classifier default).
    """

    tflite_path: str
    tflite_bytes: int
    gzip_bytes: int
    accuracy: float | None
    num_eval_examples: int
    latency_ms: dict[str, float]
    num_threads: int
    metric: dict | None = None

    def __post_init__(self):
        if self.metric is None:
            entry = {"name": "accuracy", "higher_is_better": True, "value": self.accuracy, "output": None}
            object.__setattr__(self, "metric", entry)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def gzip_size(path: str | os.PathLike) -> int:
    """Bytes of the file gzipped at level 9: the over-the-air payload. mtime=0 keeps it deterministic."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0))


def measure_latency(runner: TfliteRunner, example: Inputs, config: EvaluationConfig) -> dict[str, float]:
    """Median and 90th percentile of single-example invocations after warm-up, in milliseconds. `example` holds
    one example (batch 1) of every input."""
    runner.predict_all(example)  # sizes the interpreter for batch 1
    prepared = runner.quantize_inputs(example)
    for _ in range(config.warmup_runs):
        runner.invoke_prepared(prepared)
    timings = np.empty(config.timed_runs)
    for index in range(config.timed_runs):
        start = time.perf_counter()
        runner.invoke_prepared(prepared)
        timings[index] = time.perf_counter() - start
    return {"p50": float(np.percentile(timings, 50) * 1e3), "p90": float(np.percentile(timings, 90) * 1e3)}


def metric_output(runner: TfliteRunner, output: str | None) -> str:
    """The output the metric reads: the named one, or the only one; a model with several must name it."""
    if output is None and len(runner.output_names) > 1:
        raise DataError(
            f"{runner.path} has outputs {runner.output_names}; name the one the metric reads as `output` in the data "
            "spec (or OUTPUT in the module file)"
        )
    return runner.output_name(output)


def evaluate_tflite(tflite_path: str | os.PathLike, data: TrainingData, config: EvaluationConfig) -> Evaluation:
    """Size, gzip size, the task's metric (and top-1 accuracy for classifiers) on the eval split, and latency
    through the LiteRT interpreter. The split streams through the interpreter in batches (see `MetricStream` for
    what is kept); `max_eval_examples` caps it.

    Raises:
      DataError: the data does not feed the model's inputs, or the metric's output is ambiguous or missing.

    Example:
      >>> evaluate_tflite("int8/model.tflite", data, EvaluationConfig(num_threads=1)).metric["value"]
    """
    runner = TfliteRunner(tflite_path, num_threads=config.num_threads)
    output = metric_output(runner, data.task.output)
    task = data.task
    scores = MetricStream(task)
    first = None
    for inputs, labels in data.batches(data.eval_split, limit=config.max_eval_examples):
        if config.max_eval_examples is not None:
            keep = min(len(labels), config.max_eval_examples - scores.examples)
            inputs, labels = select(inputs, slice(0, keep)), labels[:keep]
        first = first if first is not None else select(inputs, slice(0, 1))
        scores.add(labels, runner.predict(inputs, output))
    value, accuracy = scores.result()
    return Evaluation(
        tflite_path=str(tflite_path),
        tflite_bytes=Path(tflite_path).stat().st_size,
        gzip_bytes=gzip_size(tflite_path),
        accuracy=accuracy,
        num_eval_examples=scores.examples,
        latency_ms=measure_latency(runner, first, config),
        num_threads=config.num_threads,
        metric={**task.describe(value), "output": output},
    )


@dataclass(frozen=True)
class Comparison:
    """A candidate against a reference (the float baseline, or the registered champion)."""

    size_ratio: float
    gzip_ratio: float
    accuracy_drop: float | None  # percentage points; None without accuracy
    speedup: float
    metric_delta: float  # positive is worse: percentage points for fractions, the metric's units otherwise
    metric_delta_relative: float  # positive is worse, in % of the reference value

    def to_dict(self) -> dict:
        return asdict(self)


def compare(candidate: Evaluation, reference: Evaluation) -> Comparison:
    accuracy_drop = None
    if candidate.accuracy is not None and reference.accuracy is not None:
        accuracy_drop = (reference.accuracy - candidate.accuracy) * 100.0
    return Comparison(
        size_ratio=reference.tflite_bytes / candidate.tflite_bytes,
        gzip_ratio=reference.gzip_bytes / candidate.gzip_bytes,
        accuracy_drop=accuracy_drop,
        speedup=reference.latency_ms["p50"] / candidate.latency_ms["p50"],
        metric_delta=metric_delta(reference.metric, candidate.metric),
        metric_delta_relative=relative_metric_delta(reference.metric, candidate.metric),
    )


def _metric_reasons(comparison: Comparison, metric: dict, gate: GateConfig) -> list[str]:
    """Degradation gates on the task's metric. `max_accuracy_drop` reads accuracy only; for any other metric with
    no metric gate set, its number applies as a relative degradation in %, so every built-in recipe also gates a
    regressor or an AUC-scored model (1.0 pt of accuracy ~ 1 % of a classifier's accuracy)."""
    name, reasons = metric["name"], []
    max_absolute, max_relative = gate.max_metric_drop, gate.max_metric_drop_relative
    if name == "accuracy":
        if gate.max_accuracy_drop is not None and comparison.metric_delta > gate.max_accuracy_drop:
            reasons.append(
                f"accuracy drop {comparison.metric_delta:.2f} pt > max_accuracy_drop {gate.max_accuracy_drop}"
            )
    elif max_absolute is None and max_relative is None and gate.max_accuracy_drop is not None:
        if comparison.metric_delta_relative > gate.max_accuracy_drop:
            reasons.append(
                f"{name} degradation {comparison.metric_delta_relative:.2f} % > {gate.max_accuracy_drop} % "
                "(max_accuracy_drop, applied relative to the baseline's value as no metric gate is set)"
            )
    if max_absolute is not None and comparison.metric_delta > max_absolute:
        reasons.append(f"{name} degradation {comparison.metric_delta:.4g} > max_metric_drop {max_absolute}")
    if max_relative is not None and comparison.metric_delta_relative > max_relative:
        reasons.append(
            f"{name} degradation {comparison.metric_delta_relative:.2f} % > max_metric_drop_relative {max_relative}"
        )
    return reasons


def apply_gate(
    candidate: Evaluation, baseline: Evaluation, gate: GateConfig, champion: Evaluation | None = None
) -> GateResult:
    """Passes a candidate only if it meets every set threshold; each miss is one reason.

    Thresholds are against the float baseline; with a `champion` (the model in production, measured on the same
    data), the candidate must also not lose more than `champion_max_accuracy_drop` against it (points of
    accuracy; % of the champion's value for any other metric).
    """
    comparison = compare(candidate, baseline)
    reasons = _metric_reasons(comparison, baseline.metric, gate)
    if gate.min_size_ratio is not None and comparison.size_ratio < gate.min_size_ratio:
        reasons.append(f"size ratio {comparison.size_ratio:.2f} < min_size_ratio {gate.min_size_ratio}")
    if gate.min_gzip_ratio is not None and comparison.gzip_ratio < gate.min_gzip_ratio:
        reasons.append(f"gzip ratio {comparison.gzip_ratio:.2f} < min_gzip_ratio {gate.min_gzip_ratio}")
    if gate.max_latency_ms is not None and candidate.latency_ms["p50"] > gate.max_latency_ms:
        reasons.append(f"p50 latency {candidate.latency_ms['p50']:.3f} ms > max_latency_ms {gate.max_latency_ms}")
    if champion is not None and gate.champion_max_accuracy_drop is not None:
        limit = gate.champion_max_accuracy_drop
        against = compare(candidate, champion)
        if champion.metric["name"] == "accuracy":
            if against.metric_delta > limit:
                reasons.append(
                    f"accuracy drop vs champion {against.metric_delta:.2f} pt > champion_max_accuracy_drop {limit}"
                )
        elif against.metric_delta_relative > limit:
            reasons.append(
                f"{champion.metric['name']} degradation vs champion {against.metric_delta_relative:.2f} % > "
                f"champion_max_accuracy_drop {limit}"
            )
    return GateResult(passed=not reasons, reasons=reasons)


def better(candidate: dict, other: dict) -> bool:
    """True when report.json candidate `candidate` scores strictly better on its metric than `other`."""
    return metric_score(candidate) > metric_score(other)


def measure_candidate(
    evaluation: Evaluation,
    baseline: Evaluation,
    gate: GateConfig,
    champion: Evaluation | None = None,
    conversion: dict | None = None,
) -> dict:
    """A candidate's numbers as report.json holds them: sizes, ratios, metric (and accuracy), latency, gate verdict."""
    comparison = compare(evaluation, baseline)
    conversion = conversion or {}
    return {
        "tflite_path": evaluation.tflite_path,
        "tflite_bytes": evaluation.tflite_bytes,
        "gzip_bytes": evaluation.gzip_bytes,
        "size_ratio": comparison.size_ratio,
        "gzip_ratio": comparison.gzip_ratio,
        "accuracy": evaluation.accuracy,
        "accuracy_drop": comparison.accuracy_drop,
        "metric": evaluation.metric,
        "metric_delta": comparison.metric_delta,
        "metric_delta_relative": comparison.metric_delta_relative,
        "latency_ms": evaluation.latency_ms,
        "speedup": comparison.speedup,
        "max_abs_diff": conversion.get("max_abs_diff"),
        "top1_agreement": conversion.get("top1_agreement"),
        "gate": apply_gate(evaluation, baseline, gate, champion).to_dict(),
    }
