"""The Pareto plot logged on each parent run: gzip size and latency against the task's metric (accuracy by default)."""

import os
from pathlib import Path

from edgeopt.components._shared.tasks import FRACTION_METRICS
from edgeopt.components.tracking.records import GATE_PASSED, gate_verdict


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both axes, where smaller x and larger y are better; sorted by x."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda point: (point[0], -point[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def plot_pareto(report: dict, path: str | os.PathLike) -> Path:
    """Writes a PNG with two panels (gzip KB vs accuracy, p50 latency vs accuracy) and returns its path.

    Candidates that passed their gate are filled, the others hollow; the float baseline is a star; the line joins
    the Pareto front of all measured points. Failed recipes have no numbers and are left out.
    """
    # The Agg canvas on a bare Figure: no pyplot, so no global backend switch and no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    baseline = report["baseline"]
    metric = baseline.get("metric") or {"name": "accuracy", "higher_is_better": True}
    scale = 100.0 if metric["name"] in FRACTION_METRICS else 1.0
    sign = 1.0 if metric["higher_is_better"] else -1.0  # the front keeps larger y; an error metric is negated

    def y_of(item) -> float:
        return sign * scale * (item["metric"]["value"] if item.get("metric") else item["accuracy"])

    measured = [c for c in report["candidates"] if (c.get("metric") or {}).get("value", c.get("accuracy")) is not None]
    figure = Figure(figsize=(11, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2)
    panels = (
        ("gzip size (KB, the over-the-air payload)", lambda item: item["gzip_bytes"] / 1024),
        ("p50 latency (ms, one thread)", lambda item: item["latency_ms"]["p50"]),
    )
    for ax, (label, x_of) in zip(axes, panels, strict=True):
        points = [(x_of(c), y_of(c)) for c in measured]
        base = (x_of(baseline), y_of(baseline))
        front = pareto_front([*points, base])
        ax.plot([p[0] for p in front], [p[1] for p in front], "-", color="0.6", zorder=1, label="Pareto front")
        ax.scatter([base[0]], [base[1]], marker="*", s=160, color="black", zorder=3, label="float baseline")
        for candidate, (x, y) in zip(measured, points, strict=True):
            passed = gate_verdict(candidate) == GATE_PASSED
            ax.scatter([x], [y], s=40, zorder=2, facecolors="tab:blue" if passed else "none", edgecolors="tab:blue")
            ax.annotate(candidate["recipe"], (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
        accuracies = [y for _, y in [*points, base]]
        if scale == 100.0:
            ax.set_ylim(min(accuracies) - 1, min(100.0, max(accuracies) + 1) + 0.2)  # no room above 100 %
        ax.set_xlabel(label)
        ax.set_ylabel(f"{metric['name']} (%)" if scale == 100.0 else f"{'' if sign > 0 else '-'}{metric['name']}")
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    figure.suptitle("edgeopt candidates (filled: gate passed; hollow: gate failed)", fontsize=10)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, format="png")
    return path
