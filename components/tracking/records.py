"""What a job logs, derived from report.json alone: pure functions without MLflow, so every face (CLI, TFX, KFP) and
`edgeopt sync` log exactly the same params, metrics and tags for the same report."""

import csv
import io
import json
import math
import os
import re
from datetime import UTC, datetime

from edgeopt.components._shared.fingerprint import dataset_fingerprint
from edgeopt.components.evaluation.selection import rule_of, select_winner

TAG_RUN_KIND = "edgeopt.run_kind"
RUN_KIND_JOB = "job"
RUN_KIND_CANDIDATE = "candidate"
TAG_JOB_ID = "edgeopt.job_id"
TAG_ORCHESTRATOR = "edgeopt.orchestrator"
TAG_ORCHESTRATOR_RUN_ID = "edgeopt.orchestrator_run_id"
TAG_VERSION = "edgeopt.version"
TAG_DATASET_FINGERPRINT = "edgeopt.dataset_fingerprint"
TAG_BASELINE_DIGEST = "edgeopt.baseline_model_digest"
TAG_CALIBRATION_DIGEST = "edgeopt.calibration_data_sha256"
TAG_BEST_CANDIDATE = "edgeopt.best_candidate"
TAG_CHAMPION_VERSION = "edgeopt.champion_version"
TAG_CHALLENGER_VERSION = "edgeopt.challenger_version"
TAG_RECIPE = "edgeopt.recipe"
TAG_TECHNIQUE_CHAIN = "edgeopt.technique_chain"
TAG_GATE = "edgeopt.gate"
TAG_GATE_REASONS = "edgeopt.gate_reasons"
TAG_FAILURE_REASON = "edgeopt.failure_reason"
TAG_OUTPUT_DIR = "edgeopt.output_dir"  # host:path; the next attempt into the same folder closes this job's orphans
TAG_NOTE = "mlflow.note.content"  # shown as the run's description in the MLflow UI

GATE_PASSED, GATE_FAILED, GATE_ERROR = "passed", "failed", "error"

# The candidate fields report.json documents as numbers, under the names they get as MLflow metrics.
CANDIDATE_METRICS = (
    "tflite_bytes", "gzip_bytes", "size_ratio", "gzip_ratio", "accuracy", "accuracy_drop",
    "latency_p50_ms", "latency_p90_ms", "speedup", "max_abs_diff",
)  # fmt: skip
# Candidate fields that are not metrics: `config` becomes params, `gate` tags, `step_records` per-step metrics.
_NOT_METRICS = {"config", "gate", "step_records", "latency_ms"}
# Metrics where a larger value is better; every other metric (bytes, latency, drop, difference) is better smaller.
HIGHER_IS_BETTER = {"size_ratio", "gzip_ratio", "accuracy", "speedup", "top1_agreement", "top_k_accuracy", "auc"}

# MLflow's limits (mlflow/utils/validation.py); values past them are truncated rather than failing the whole batch.
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
_METRIC_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /:]")


def flatten_params(value, prefix: str = "") -> dict[str, str]:
    """Nested config -> `{"steps.0.config.mode": "full_integer", ...}`; the same input always gives the same params.

    Strings stay as they are; every other leaf is JSON (`null`, `true`, `0.0005`), so types survive the round trip
    through MLflow's string params.
    """
    if isinstance(value, dict | list | tuple) and not value:
        return {prefix: json.dumps(value)} if prefix else {}
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return {prefix: _truncate(text, MAX_PARAM_VALUE)}
    flat: dict[str, str] = {}
    for key, item in items:
        flat.update(flatten_params(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _numbers(value, prefix: str) -> dict[str, float]:
    """Every number under `value` (dicts and lists walked), keyed by its dotted path; booleans and None skipped."""
    if isinstance(value, bool) or value is None:
        return {}
    if isinstance(value, int | float):
        return {_metric_key(prefix): float(value)}
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return {}
    found: dict[str, float] = {}
    for key, item in items:
        found.update(_numbers(item, f"{prefix}.{key}"))
    return found


def _metric_key(key: str) -> str:
    # Layer names inside step results may hold characters MLflow refuses in metric names.
    return _METRIC_KEY_UNSAFE.sub("_", key)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def latency_metrics(latency_ms: dict | None, prefix: str = "") -> dict[str, float]:
    return {
        f"{prefix}latency_{quantile}_ms": float(value)
        for quantile, value in (latency_ms or {}).items()
        if value is not None
    }


def candidate_metrics(candidate: dict) -> dict[str, float]:
    """Every number of one candidate in report.json: its top-level fields (latency as latency_p50_ms, ...) and each
    step's numbers as `steps.INDEX.TECHNIQUE.NAME`. A failed candidate has only what it measured before failing."""
    metrics = latency_metrics(candidate.get("latency_ms"))
    for key, value in candidate.items():
        if key not in _NOT_METRICS:
            metrics.update(_numbers(value, key))
    metric = candidate.get("metric") or {}
    if metric.get("value") is not None:  # also under its own name (`mae`, `auc`), for `edgeopt compare --metric`
        metrics[_metric_key(metric["name"])] = float(metric["value"])
    for index, record in enumerate(candidate.get("step_records") or []):
        prefix = f"steps.{index}.{record.get('technique', 'step')}"
        metrics.update(_numbers(record.get("seconds"), f"{prefix}.seconds"))
        metrics.update(_numbers(record.get("result"), prefix))
    return metrics


def candidate_params(candidate: dict) -> dict[str, str]:
    """The resolved recipe config, flattened (params identify what made the candidate; metrics what it achieved)."""
    return flatten_params(candidate.get("config") or {})


def gate_verdict(candidate: dict) -> str:
    if candidate.get("error"):
        return GATE_ERROR
    return GATE_PASSED if candidate["gate"]["passed"] else GATE_FAILED


def candidate_tags(candidate: dict, job_id: str) -> dict[str, str]:
    gate = candidate.get("gate") or {"passed": False, "reasons": []}
    tags = {
        TAG_RUN_KIND: RUN_KIND_CANDIDATE,
        TAG_JOB_ID: job_id,
        TAG_RECIPE: candidate["recipe"],
        TAG_TECHNIQUE_CHAIN: "+".join(candidate.get("steps") or []),
        TAG_GATE: gate_verdict(candidate),
        TAG_GATE_REASONS: _truncate("; ".join(gate.get("reasons") or []), MAX_TAG_VALUE),
    }
    if candidate.get("error"):
        tags[TAG_FAILURE_REASON] = _truncate(candidate["error"], MAX_TAG_VALUE)
    description = (candidate.get("config") or {}).get("description")
    if description:
        tags[TAG_NOTE] = _truncate(description, MAX_TAG_VALUE)
    return tags


def job_metrics(report: dict) -> dict[str, float]:
    """The parent run's numbers: the float baseline's, the champion's (when gated against one), the calibration
    sample's (count, per class) and candidate counts."""
    baseline = dict(report["baseline"])
    metrics = latency_metrics(baseline.pop("latency_ms", None), "baseline.")
    metrics.update(_numbers(baseline, "baseline"))
    if report.get("champion"):
        champion = dict(report["champion"])
        metrics.update(latency_metrics(champion.pop("latency_ms", None), "champion."))
        metrics.update(_numbers(champion, "champion"))
    metrics.update(_numbers(report.get("calibration"), "calibration"))
    candidates = report["candidates"]
    metrics["candidates.total"] = float(len(candidates))
    metrics["candidates.passed"] = float(sum(1 for c in candidates if gate_verdict(c) == GATE_PASSED))
    metrics["candidates.errors"] = float(sum(1 for c in candidates if gate_verdict(c) == GATE_ERROR))
    return metrics


def job_params(report: dict) -> dict[str, str]:
    params = flatten_params(report.get("evaluation") or {}, "evaluation")
    params["recipes"] = _truncate(",".join(c["recipe"] for c in report["candidates"]), MAX_PARAM_VALUE)
    return params


def job_tags(report: dict, *, examples: str | os.PathLike | None = None) -> dict[str, str]:
    tags = {TAG_BASELINE_DIGEST: report["baseline"]["model_digest"]}
    calibration_digest = (report.get("calibration") or {}).get("data_sha256")
    if calibration_digest:
        tags[TAG_CALIBRATION_DIGEST] = calibration_digest
    if examples is not None:
        tags[TAG_DATASET_FINGERPRINT] = dataset_fingerprint(examples)
    best = best_candidate(report)
    if best is not None:
        tags[TAG_BEST_CANDIDATE] = best["recipe"]
    tags.update(hardware_tags(report.get("hardware")))
    return tags


def hardware_tags(hardware: dict | None) -> dict[str, str]:
    """What measured the latencies, as parent-run tags: CPU, ISA flags, threads, LiteRT version."""
    if not hardware:
        return {}
    return {
        "edgeopt.hardware.cpu": str(hardware.get("cpu_model")),
        "edgeopt.hardware.isa": ",".join(hardware.get("isa") or []),
        "edgeopt.hardware.threads": str(hardware.get("num_threads")),
        "edgeopt.hardware.litert": str((hardware.get("versions") or {}).get("ai-edge-litert")),
    }


def best_candidate(report: dict) -> dict | None:
    """The candidate to register under the report's selection rule (components/evaluation/selection.py; default:
    smallest gzip size among those that passed their gate); None if none may win."""
    index = select_winner(report["candidates"], rule_of(report))
    return None if index is None else report["candidates"][index]


def sort_rows(rows: list[dict], metric: str) -> list[dict]:
    """Best first by `metric` (larger first for ratios, accuracy and speedup; smaller first otherwise); rows
    without the metric (failed candidates) last, in their original order."""
    sign = -1.0 if metric in HIGHER_IS_BETTER else 1.0

    def key(row):
        value = row["metrics"].get(metric)
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        return (missing, 0.0 if missing else sign * value)

    return sorted(rows, key=key)


COMPARE_METRICS = ("gzip_ratio", "size_ratio", "accuracy", "accuracy_drop", "latency_p50_ms", "speedup")


def render_comparison(rows: list[dict], metric: str, fmt: str = "md") -> str:
    """A table of candidate runs (dicts with job_run_id, run_id, start_time ms, recipe, steps, gate, metrics)."""
    columns = [metric, *[name for name in COMPARE_METRICS if name != metric]]
    header = ["job", "started (UTC)", "recipe", "steps", "gate", *columns, "run"]
    table = []
    for row in sort_rows(rows, metric):
        started = datetime.fromtimestamp(row["start_time"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        values = [row["metrics"].get(name) for name in columns]
        table.append([row["job_run_id"], started, row["recipe"], row["steps"], row["gate"], *values, row["run_id"]])
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([["" if v is None else v for v in line] for line in table])
        return buffer.getvalue()
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 5 + "---:|" * len(columns) + "---|"]
    for line in table:
        cells = [line[0][:8], *line[1:5], *(_md_number(v) for v in line[5:-1]), line[-1][:8]]
        lines.append("| " + " | ".join(str(cell).replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _md_number(value) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() and abs(value) >= 100 else f"{value:.4g}"
