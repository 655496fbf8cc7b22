"""report.md and the CLI's table: report.json rendered for people (the metric column named after the task's metric,
`~` on a speedup below what the timing resolves, the hardware that measured the latencies)."""

from edgeopt.components._shared.hardware import hardware_summary
from edgeopt.components._shared.tasks import FRACTION_METRICS

__all__ = ["render_calibration", "render_markdown", "render_table"]


def _fmt(value, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def _metric_heading(report: dict) -> tuple[str, str]:
    """Column headings for the metric and its delta: `accuracy` / `drop (pt)`, `mae` / `worse by`, ... (the output
    the metric reads is in the report's preamble, so the digits table reads as it always did)."""
    metric = report["baseline"].get("metric") or {"name": "accuracy"}
    return metric["name"], "drop (pt)" if metric["name"] in FRACTION_METRICS else "worse by"


def _metric_value(record: dict):
    metric = record.get("metric")
    return record.get("accuracy") if metric is None and "metric" not in record else (metric or {}).get("value")


def _metric_delta(candidate: dict):
    return candidate.get("metric_delta", candidate.get("accuracy_drop"))


def _speedup_cell(candidate: dict) -> str:
    """The speedup, with `~` when it is below what the timing resolves (see `speedup_note` in report.json)."""
    text = _fmt(candidate["speedup"], ".2f")
    return f"~{text}" if candidate.get("speedup_significant") is False else text


def render_table(report: dict) -> str:
    """A Markdown table of the baseline and every candidate, also what the CLI prints; the metric column is named
    after the task's metric, its delta is positive when the candidate is worse."""
    baseline = report["baseline"]
    metric_name, delta_name = _metric_heading(report)
    delta_format = ".2f" if delta_name == "drop (pt)" else ".4f"
    rows = [
        f"| recipe | steps | bytes | gzip bytes | size x | gzip x | {metric_name} | {delta_name} | p50 ms | p90 ms "
        "| speedup | gate |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| float baseline | export | {baseline['tflite_bytes']} | {baseline['gzip_bytes']} | 1.00 | 1.00 | "
        f"{_fmt(_metric_value(baseline), '.4f')} | 0.00 | {baseline['latency_ms']['p50']:.3f} | "
        f"{baseline['latency_ms']['p90']:.3f} | 1.00 | - |",
    ]
    for candidate in report["candidates"]:
        gate = candidate["gate"]
        verdict = "pass" if gate["passed"] else "FAIL: " + "; ".join(gate["reasons"])
        rows.append(
            f"| {candidate['recipe']} | {'+'.join(candidate['steps'])} | {_fmt(candidate['tflite_bytes'], 'd')} | "
            f"{_fmt(candidate['gzip_bytes'], 'd')} | {_fmt(candidate['size_ratio'], '.2f')} | "
            f"{_fmt(candidate['gzip_ratio'], '.2f')} | {_fmt(_metric_value(candidate), '.4f')} | "
            f"{_fmt(_metric_delta(candidate), delta_format)} | {_fmt(candidate['latency_ms']['p50'], '.3f')} | "
            f"{_fmt(candidate['latency_ms']['p90'], '.3f')} | {_speedup_cell(candidate)} | "
            f"{verdict.replace('|', '/')} |"
        )
    return "\n".join(rows)


def render_markdown(report: dict) -> str:
    baseline = report["baseline"]
    evaluation = report["evaluation"]
    metric = baseline.get("metric") or {"name": "accuracy", "higher_is_better": True}
    if metric["name"] == "accuracy":
        scored = f"accuracy resolution {100 / baseline['num_eval_examples']:.2f} pt"
    else:
        direction = "higher" if metric["higher_is_better"] else "lower"
        scored = f"scored by {metric['name']}, {direction} is better; `worse by` is positive when a candidate is worse"
    if metric.get("output"):
        scored += f"; the metric reads output `{metric['output']}`"
    return (
        "# edgeopt report\n\n"
        f"Baseline `{baseline['model_path']}` (sha256 {baseline['model_digest'][:12]}), evaluated on "
        f"{baseline['num_eval_examples']} examples ({scored}). "
        f"Latency: {evaluation['timed_runs']} single-example runs after {evaluation['warmup_runs']} warm-up runs, "
        f"{evaluation['num_threads']} thread(s), LiteRT interpreter" + _hardware_clause(report) + ". Ratios are "
        "against the float TFLite baseline; speedup = baseline p50 / candidate p50 (`~` marks one below what the "
        "timing resolves or within the spread).\n\n" + render_table(report) + "\n" + render_calibration(report)
    )


def _hardware_clause(report: dict) -> str:
    hardware = report.get("hardware")
    return f" on {hardware_summary(hardware)}" if hardware else ""


def render_calibration(report: dict) -> str:
    calibration = report.get("calibration", {})
    text = f"\nCalibration data: {calibration.get('source', 'unknown')}"
    if "data_sha256" in calibration:
        text += f", {calibration['count']} examples, data_sha256 {calibration['data_sha256'][:16]}"
    text += ".\n"
    sweep = report.get("calibration_sweep")
    if sweep:
        text += "\n## Calibration-size sweep (full-integer int8)\n\n"
        text += "| size | taken | accuracy | drop (pt) |\n|---:|---:|---:|---:|\n"
        text += "".join(
            f"| {row['size']} | {row['count']} | {row['accuracy']:.4f} | {row['accuracy_drop']:.2f} |\n"
            for row in sweep
        )
    return text
