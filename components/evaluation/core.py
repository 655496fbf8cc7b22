"""Measure a .tflite (bytes, gzip bytes, accuracy, latency) and gate it against the float baseline."""

import gzip
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgeopt.components._shared.data import TrainingData
from edgeopt.components._shared.tflite_runtime import TfliteRunner
from edgeopt.components.evaluation.config import EvaluationConfig, GateConfig


@dataclass(frozen=True)
class Evaluation:
    """What a .tflite costs and how well it does."""

    tflite_path: str
    tflite_bytes: int
    gzip_bytes: int
    accuracy: float
    num_eval_examples: int
    latency_ms: dict[str, float]
    num_threads: int

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


def measure_latency(runner: TfliteRunner, example: np.ndarray, config: EvaluationConfig) -> dict[str, float]:
    """Median and 90th percentile of single-example invocations after warm-up, in milliseconds."""
    runner.predict(example[np.newaxis])  # sizes the interpreter for batch 1
    prepared = runner.quantize_input(example[np.newaxis])
    for _ in range(config.warmup_runs):
        runner.invoke_prepared(prepared)
    timings = np.empty(config.timed_runs)
    for index in range(config.timed_runs):
        start = time.perf_counter()
        runner.invoke_prepared(prepared)
        timings[index] = time.perf_counter() - start
    return {"p50": float(np.percentile(timings, 50) * 1e3), "p90": float(np.percentile(timings, 90) * 1e3)}


def evaluate_tflite(tflite_path: str | os.PathLike, data: TrainingData, config: EvaluationConfig) -> Evaluation:
    """Size, gzip size, top-1 accuracy on the eval split, and latency through the LiteRT interpreter.

    Example:
      >>> evaluate_tflite("int8/model.tflite", data, EvaluationConfig(num_threads=1)).accuracy
    """
    inputs, labels = data.arrays(data.eval_split)
    if config.max_eval_examples is not None:
        inputs, labels = inputs[: config.max_eval_examples], labels[: config.max_eval_examples]
    runner = TfliteRunner(tflite_path, num_threads=config.num_threads)
    predictions = runner.predict(inputs).argmax(-1)
    return Evaluation(
        tflite_path=str(tflite_path),
        tflite_bytes=Path(tflite_path).stat().st_size,
        gzip_bytes=gzip_size(tflite_path),
        accuracy=float(np.mean(predictions == labels)),
        num_eval_examples=len(labels),
        latency_ms=measure_latency(runner, inputs[0], config),
        num_threads=config.num_threads,
    )


@dataclass(frozen=True)
class Comparison:
    """A candidate against a reference (the float baseline, or the registered champion)."""

    size_ratio: float
    gzip_ratio: float
    accuracy_drop: float  # percentage points
    speedup: float

    def to_dict(self) -> dict:
        return asdict(self)


def compare(candidate: Evaluation, reference: Evaluation) -> Comparison:
    return Comparison(
        size_ratio=reference.tflite_bytes / candidate.tflite_bytes,
        gzip_ratio=reference.gzip_bytes / candidate.gzip_bytes,
        accuracy_drop=(reference.accuracy - candidate.accuracy) * 100.0,
        speedup=reference.latency_ms["p50"] / candidate.latency_ms["p50"],
    )


def apply_gate(
    candidate: Evaluation, baseline: Evaluation, gate: GateConfig, champion: Evaluation | None = None
) -> GateResult:
    """Passes a candidate only if it meets every set threshold; each miss is one reason.

    Thresholds are against the float baseline; with a `champion` (the model in production, measured on the same
    data), the candidate must also not lose more than `champion_max_accuracy_drop` points against it.
    """
    comparison = compare(candidate, baseline)
    reasons = []
    if gate.max_accuracy_drop is not None and comparison.accuracy_drop > gate.max_accuracy_drop:
        reasons.append(f"accuracy drop {comparison.accuracy_drop:.2f} pt > max_accuracy_drop {gate.max_accuracy_drop}")
    if gate.min_size_ratio is not None and comparison.size_ratio < gate.min_size_ratio:
        reasons.append(f"size ratio {comparison.size_ratio:.2f} < min_size_ratio {gate.min_size_ratio}")
    if gate.min_gzip_ratio is not None and comparison.gzip_ratio < gate.min_gzip_ratio:
        reasons.append(f"gzip ratio {comparison.gzip_ratio:.2f} < min_gzip_ratio {gate.min_gzip_ratio}")
    if gate.max_latency_ms is not None and candidate.latency_ms["p50"] > gate.max_latency_ms:
        reasons.append(f"p50 latency {candidate.latency_ms['p50']:.3f} ms > max_latency_ms {gate.max_latency_ms}")
    if champion is not None and gate.champion_max_accuracy_drop is not None:
        drop = (champion.accuracy - candidate.accuracy) * 100.0
        if drop > gate.champion_max_accuracy_drop:
            limit = gate.champion_max_accuracy_drop
            reasons.append(f"accuracy drop vs champion {drop:.2f} pt > champion_max_accuracy_drop {limit}")
    return GateResult(passed=not reasons, reasons=reasons)


def measure_candidate(
    evaluation: Evaluation,
    baseline: Evaluation,
    gate: GateConfig,
    champion: Evaluation | None = None,
    conversion: dict | None = None,
) -> dict:
    """A candidate's numbers as report.json holds them: sizes, ratios, accuracy, latency, gate verdict."""
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
        "latency_ms": evaluation.latency_ms,
        "speedup": comparison.speedup,
        "max_abs_diff": conversion.get("max_abs_diff"),
        "top1_agreement": conversion.get("top1_agreement"),
        "gate": apply_gate(evaluation, baseline, gate, champion).to_dict(),
    }
