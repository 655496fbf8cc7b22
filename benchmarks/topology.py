"""Benchmark helper: distillation against the same student trained on labels only, and the latency of lowrank_int8
against ptq_int8 with the CPU flags that decide int8 speed.

The distilled and the labels-only student share everything but the loss: architecture (the teacher at a width),
initialization and data order (one seed), epochs and learning rate (distill_half_int8's); labels only is
`alpha: 1.0`.
"""

import time
from pathlib import Path

import numpy as np
from mobilenet_digits import SMALL_SPLIT

#: CPU features that decide whether int8 kernels beat float ones (VNNI dot products, AVX-512) on x86.
INT8_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return [flag for flag in INT8_FLAGS if flag in present]
    except OSError:
        pass
    return []


def compare_distillation(models: dict, work: Path, *, quick: bool) -> dict:
    """Eval accuracy of distilled and labels-only students per model, width and seed."""
    from edgeopt.components._shared.model_io import load_keras_model
    from edgeopt.components.distillation.core import distill
    from edgeopt.components.recipes.config import RecipeConfig

    recipe = RecipeConfig.builtin("distill_half_int8")
    base = next(step.config for step in recipe.steps if step.technique == "distill")
    plans = {"digits_cnn": ((0.5, 0.25), (0, 1, 2)), "mobilenet_v2_035": ((0.5,), (0,))}
    if quick:
        base = base.model_copy(update={"epochs": 3})
    results = {"cpu_flags": cpu_flags(), "config": base.to_dict(), "models": {}}
    for name, model in models.items():
        widths, seeds = plans.get(name, ((0.5,), (0,)))
        if quick:
            widths, seeds = widths[:1], seeds[:1]
        inputs, labels = model["data"].take(model["data"].eval_split, SMALL_SPLIT)
        rows = []
        for width in widths:
            row = {"width": width, "seeds": list(seeds), "labels_only": [], "distilled": [], "seconds": []}
            for seed in seeds:
                for kind, alpha in (("labels_only", 1.0), ("distilled", base.alpha)):
                    config = base.model_copy(update={"width_multiplier": width, "seed": seed, "alpha": alpha})
                    out = work / "topology" / name / f"{kind}_{width}_{seed}"
                    started = time.perf_counter()
                    result = distill(model["model_dir"], config, out, data=model["data"])
                    row["seconds"].append(time.perf_counter() - started)
                    predictions = np.asarray(load_keras_model(out).predict(inputs, verbose=0)).argmax(-1)
                    row[kind].append(float(np.mean(predictions == labels)))
                    row["student_params"] = result.student_params
                    row["teacher_params"] = result.teacher_params
            rows.append(row)
        results["models"][name] = rows
    return results


def render(results) -> str:
    topology = results.get("topology")
    if not topology:
        return "Not measured in this run.\n"
    config = topology["config"]
    lines = [
        f"Students built from the teacher at a width, trained {config['epochs']} epochs at learning rate "
        f"{config['learning_rate']}; distilled with alpha {config['alpha']}, T {config['temperature']} "
        "(distill_half_int8's setting), against labels only (alpha 1.0), same initialization and data order per "
        "seed. Accuracy on the eval split, mean over seeds.\n",
        "| model | width | student params | seeds | labels only | distilled | distilled - labels only (pt) |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for name, rows in topology["models"].items():
        for row in rows:
            plain, distilled = np.mean(row["labels_only"]), np.mean(row["distilled"])
            lines.append(
                f"| {name} | {row['width']} | {row['student_params']:,} | {','.join(map(str, row['seeds']))} | "
                f"{plain:.4f} | {distilled:.4f} | {100 * (distilled - plain):+.2f} |"
            )
    lines.append("")
    lines.append(render_lowrank_latency(results, topology.get("cpu_flags", [])))
    return "\n".join(lines) + "\n"


def render_lowrank_latency(results, flags) -> str:
    """p50 of lowrank_int8 against ptq_int8 at 1 thread, from the recipe section of the same run."""
    parts = []
    for name, model in (results.get("models") or {}).items():
        by_recipe = {candidate["recipe"]: candidate for candidate in model.get("candidates", [])}
        lowrank, ptq = by_recipe.get("lowrank_int8"), by_recipe.get("ptq_int8")
        if not lowrank or not ptq or not lowrank.get("latency_ms") or not ptq.get("latency_ms"):
            reason = (lowrank or {}).get("error") or "not measured"
            parts.append(f"{name}: lowrank_int8 has no latency ({reason.splitlines()[0][:160]})")
            continue
        one = next(key for key in lowrank["latency_ms"] if str(key) == "1")
        mine, theirs = lowrank["latency_ms"][one]["p50"], ptq["latency_ms"][one]["p50"]
        parts.append(
            f"{name}: lowrank_int8 p50 {mine:.4f} ms against ptq_int8 {theirs:.4f} ms ({theirs / mine:.2f}x as fast)"
        )
    flag_text = ", ".join(flags) if flags else "none of " + ", ".join(INT8_FLAGS)
    return f"Latency at 1 thread (CPU flags: {flag_text}): " + "; ".join(parts) + "."
