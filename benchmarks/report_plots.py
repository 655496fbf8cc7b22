"""The benchmark's Pareto plot: gzip ratio against accuracy drop for each model, coloured by speedup."""

from pathlib import Path

from report_targets import DIGITS, MOBILENET

from edgeopt.components.tracking.pareto import pareto_front


def front_indices(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on (higher gzip ratio, lower accuracy drop), by gzip ratio.

    edgeopt's one Pareto rule keeps smaller x and larger y; negating both axes asks it this question.
    """
    front = {(-x, -y) for x, y in pareto_front([(-x, -y) for x, y in points])}
    return sorted((i for i, point in enumerate(points) if point in front), key=lambda i: points[i][0])


def pareto_plot(results, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [name for name in (DIGITS, MOBILENET) if name in results.get("models", {})]
    figure, axes = plt.subplots(1, max(1, len(models)), figsize=(7 * max(1, len(models)), 5.2), squeeze=False)
    for axis, name in zip(axes[0], models, strict=False):
        model = results["models"][name]
        rows = [c for c in model["candidates"] if c.get("gzip_ratio") is not None]
        points = [(1.0, 0.0)] + [(c["gzip_ratio"], c["accuracy_drop"]) for c in rows]
        labels = ["float"] + [c["recipe"] for c in rows]
        speed = [1.0] + [((c.get("speedup") or {}).get("1") or 1.0) for c in rows]
        scatter = axis.scatter(
            [p[0] for p in points], [p[1] for p in points], c=speed, cmap="viridis", s=60, zorder=3,
            norm=matplotlib.colors.LogNorm(vmin=min(0.05, *speed), vmax=max(4.0, *speed)),
        )  # fmt: skip
        grouped: dict = {}
        for (x, y), label in zip(points, labels, strict=True):
            grouped.setdefault((round(x, 1), round(y, 2)), []).append(label)
        same_row: dict = {}
        for (x, y), names in sorted(grouped.items()):
            # Neighbours on the same accuracy row alternate above and below, so their labels do not overlap.
            same_row[y] = same_row.get(y, -1) + 1
            offset = (4, 4) if same_row[y] % 2 == 0 else (4, -12)
            axis.annotate("\n".join(names), (x, y), textcoords="offset points", xytext=offset, fontsize=7)
        axis.margins(x=0.12, y=0.1)
        front = front_indices(points)
        axis.plot([points[i][0] for i in front], [points[i][1] for i in front], "--", color="tab:red", zorder=2,
                  label="Pareto front (gzip x up, drop down)")  # fmt: skip
        axis.axhline(
            model["resolution_pt"], color="grey", lw=0.8, ls=":", label=f"1 image = {model['resolution_pt']:.2f} pt"
        )
        axis.axhline(-model["resolution_pt"], color="grey", lw=0.8, ls=":")
        axis.set_xscale("log")
        axis.set_xlabel("gzip ratio vs float TFLite (log)")
        axis.set_ylabel("accuracy drop (pt), lower is better")
        axis.set_title(f"{model['title']}: {model['eval_examples']} eval images")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7, loc="upper left")
        figure.colorbar(scatter, ax=axis, label="speedup vs float, 1 thread (log)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
