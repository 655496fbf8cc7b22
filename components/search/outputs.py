"""What a search writes beside report.json: the Pareto front (pareto.json, pareto.png) and the trials table
(trials.csv, trials.md), each published atomically."""

import csv
import io
import json
from pathlib import Path

from edgeopt.components._shared.atomic import atomic_output_file
from edgeopt.components._shared.tasks import metric_score
from edgeopt.components.evaluation.selection import objective_value
from edgeopt.components.recipes.core import write_report
from edgeopt.components.search.config import SearchConfig
from edgeopt.components.tracking.pareto import pareto_front, plot_pareto

PARETO_JSON = "pareto.json"
PARETO_PNG = "pareto.png"
TRIALS_CSV = "trials.csv"
TRIALS_MD = "trials.md"

TABLE_COLUMNS = ("trial", "recipe", "family", "steps", "tflite_bytes", "gzip_bytes", "metric", "accuracy",
                 "accuracy_drop", "latency_p50_ms", "within_budget", "seconds", "training_from", "params",
                 "error")  # fmt: skip


def pareto_points(report: dict, config: SearchConfig) -> list[dict]:
    """The trials on the Pareto front of (first objective, the task's metric), the float baseline among the points.

    The metric is accuracy for classifiers, and whatever the task is scored by otherwise (an error metric such as
    MAE counts lower as better); `within_budget` is the trial's gate verdict."""
    first = config.objectives[0]
    measured = [c for c in report["candidates"] if metric_score(c) != float("-inf")]
    base = dict(report["baseline"], recipe="float baseline", gate={"passed": True})
    by_point = {}
    for item in [base, *measured]:
        by_point.setdefault((objective_value(item, first), metric_score(item)), item)
    front = pareto_front(list(by_point))
    return [
        {
            "recipe": by_point[point]["recipe"],
            first.value: point[0],
            "metric": (by_point[point].get("metric") or {}).get("value"),
            "accuracy": by_point[point].get("accuracy"),
            "accuracy_drop": by_point[point].get("accuracy_drop", 0.0),
            "within_budget": by_point[point]["gate"]["passed"],
        }
        for point in front
    ]


def trial_rows(report: dict) -> list[dict]:
    rows = []
    for c in report["candidates"]:
        drop = c.get("accuracy_drop")
        rows.append(
            {
                "trial": c["trial"]["number"],
                "recipe": c["recipe"],
                "family": c["trial"]["params"].get("family"),
                "steps": "+".join(c["steps"]),
                "tflite_bytes": c.get("tflite_bytes"),
                "gzip_bytes": c.get("gzip_bytes"),
                "metric": (c.get("metric") or {}).get("value"),
                "accuracy": None if c.get("accuracy") is None else round(c["accuracy"], 4),
                "accuracy_drop": None if drop is None else round(drop, 2),
                "latency_p50_ms": (c.get("latency_ms") or {}).get("p50"),
                "within_budget": c["gate"]["passed"],
                "seconds": c["trial"]["seconds"],
                "training_from": c["trial"].get("training_from_trial"),  # the trial whose trained model it reused
                "params": json.dumps(c["trial"]["params"], sort_keys=True),
                "error": c.get("error") or "",
            }
        )
    return rows


def render_trials_markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    for row in rows:
        cells = ["-" if row[key] is None else str(row[key]).replace("|", "/") for key in TABLE_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_search_outputs(report: dict, config: SearchConfig, output_dir: Path):
    """report.json/.md, pareto.json, pareto.png and the trials table, each published atomically."""
    write_report(report, output_dir)
    with atomic_output_file(output_dir / PARETO_JSON) as staging:
        staging.write_text(
            json.dumps({"objective": config.objectives[0].value, "front": pareto_points(report, config)}, indent=2)
        )
    rows = trial_rows(report)
    with atomic_output_file(output_dir / TRIALS_CSV) as staging:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        staging.write_text(buffer.getvalue())
    with atomic_output_file(output_dir / TRIALS_MD) as staging:
        staging.write_text(render_trials_markdown(rows))
    with atomic_output_file(output_dir / PARETO_PNG) as staging:
        plot_pareto(report, staging)
