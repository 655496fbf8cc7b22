"""Benchmark report: judge latest.json against the targets, draw the Pareto plot, and render BENCHMARKS.md.

Targets and their thresholds live in report_targets.py, the plot in report_plots.py, the tables in report_tables.py
and the prose in templates/BENCHMARKS.md.j2. Re-render without re-measuring:
scripts/in-env python benchmarks/report.py [benchmarks/results/latest.json] [BENCHMARKS.md]
"""

import json
import os
import sys
from pathlib import Path

import jinja2
import memory
import report_tables as tables
import search_bench
import topology
from report_plots import pareto_plot
from report_targets import DIGITS, MOBILENET, evaluate_targets, is_share, orchestrations, tuning_rows

HERE = Path(__file__).resolve().parent
TEMPLATE = "BENCHMARKS.md.j2"

__all__ = ["evaluate_targets", "pareto_plot", "render"]


def _load(values):
    return "/".join(f"{v:.2f}" for v in values) if values else "?"


def _source_line(source) -> str:
    if not source or not source.get("commit"):
        return "not a git checkout."
    state = {True: "clean working tree", False: "**uncommitted changes**", None: "working tree unknown"}
    return f"commit {source['commit'][:12]} ({state[source.get('clean')]})."


def _model_context(results, name) -> dict | None:
    model = results.get("models", {}).get(name)
    if not model:
        return None
    baseline = model["baseline"]
    ptq = next((c for c in model["candidates"] if c["recipe"] == "ptq_int8" and c.get("tflite_bytes")), None)
    return {
        **model,
        "params": model.get("params"),
        "latency_1": tables.latency_cell(baseline["latency_ms"], "1"),
        "latency_2": tables.latency_cell(baseline["latency_ms"], "2"),
        "job_s": tables.f(model.get("job_s"), ".0f"),
        "table": tables.recipes_table(model),
        "ptq": ptq,
        "skipped": ((results.get("recipes_run") or {}).get(name) or {}).get("skipped"),
    }


def _missed_targets(results) -> list[dict]:
    missed = []
    for target in results.get("targets", []):
        if target["met"] is False:
            value = target["measured"]
            shown = f"{100 * value:.1f} %" if is_share(target["id"]) else f"{value:.2f}"
            missed.append({**target, "shown": shown})
    return missed


def render(results, *, plot_path: str = "benchmarks/results/pareto.png") -> str:
    """BENCHMARKS.md for `results` (latest.json with its `targets` evaluated)."""
    machine = results["machine"]
    tutorial = results.get("tutorial")
    stored = results.get("stored") or {}
    context = {
        "results": results,
        "machine": machine,
        "source_line": _source_line(results.get("source")),
        "load_start": _load(machine.get("load_average_start")),
        "load_end": _load(machine.get("load_average_end")),
        "libraries": ", ".join(f"{name} {version}" for name, version in results["versions"].items() if version),
        "errors": results.get("errors") or {},
        "targets_table": tables.targets_table(results),
        "missed": _missed_targets(results),
        "models": [m for m in (_model_context(results, name) for name in (DIGITS, MOBILENET)) if m],
        "plot_path": plot_path,
        "topology": topology.render(results),
        "search": search_bench.render(results),
        "tutorial": tutorial,
        "tutorial_table": tables.tutorial_table(tutorial) if tutorial else "",
        "matched_table": tables.matched_table(results) if tutorial and tutorial.get("matched") else "",
        "rewriter_table": tables.rewriter_table(results) if results.get("tfx_rewriter") else "",
        "orchestrations": [
            {
                **orchestration,
                "imports": ", ".join(f"{k} {v:.1f} s" for k, v in orchestration["import_s"].items()),
                "table": tables.orchestration_table(results, orchestration),
            }
            for orchestration in orchestrations(results)
        ],
        "mlflow": tables.mlflow_job(results),
        "mlflow_stored_table": tables.mlflow_stored_table(stored["mlflow_logging_cost"])
        if stored.get("mlflow_logging_cost")
        else "",
        "sampler": stored.get("calibration_sampler"),
        "tuning_table": tables.tuning_table(results["tuning"]) if results.get("tuning") else "",
        "tuning": tuning_rows(results),
        "memory": memory.render(results),
    }
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Markdown, not HTML
    )
    return environment.get_template(TEMPLATE).render(context).rstrip() + "\n"


def main():
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results" / "latest.json"
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE.parent / "BENCHMARKS.md"
    results = json.loads(source.read_text())
    results["targets"] = evaluate_targets(results)
    plot = pareto_plot(results, source.parent / "pareto.png")
    target.write_text(render(results, plot_path=os.path.relpath(plot, target.parent)))
    print(f"wrote {target} and {plot}")


if __name__ == "__main__":
    main()
