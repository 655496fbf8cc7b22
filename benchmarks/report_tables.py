"""The benchmark's Markdown tables, rendered by tabulate from the results; the prose around them lives in
templates/BENCHMARKS.md.j2."""

from report_targets import DIGITS, REFERENCES, field, is_share, matched_medians, matched_times
from tabulate import tabulate


def f(value, pattern=".2f", none="-"):
    return none if value is None else format(value, pattern)


def markdown_table(headers: list[str], rows: list[list], align: str) -> str:
    """A GitHub Markdown table; `align` holds one letter per column: l(eft) or r(ight)."""
    colalign = ["right" if letter == "r" else "left" for letter in align]
    cells = [[str(cell).replace("|", "/") for cell in row] for row in rows]
    return tabulate(cells, headers, tablefmt="pipe", colalign=colalign, disable_numparse=True)


def latency_cell(latency_by_threads, threads):
    latency = (latency_by_threads or {}).get(threads) if latency_by_threads else None
    return f"{latency['p50']:.3f} / {latency['p90']:.3f}" if latency else "-"


def reference_cell(recipe, candidate):
    if recipe not in REFERENCES:
        return "-"
    text, metric, value = REFERENCES[recipe]
    ours = candidate.get(metric)
    return f"{text}; ours {f(ours)}x = {f(100 * ours / value if ours else None, '.0f')} %"


def _candidate_notes(candidate) -> str:
    notes = []
    if candidate.get("achieved_sparsity") is not None:
        notes.append(f"sparsity {100 * candidate['achieved_sparsity']:.1f} %")
    if candidate.get("max_unique_values") is not None:
        notes.append(f"<= {candidate['max_unique_values']} values/kernel")
    latency = candidate.get("latency_ms") or {}
    if latency.get("1") and latency.get("2") and latency["2"]["p50"] > 5 * latency["1"]["p50"]:
        notes.append("2-thread p50 > 5x 1-thread: contention for the second core, not the model")
    if not candidate.get("gate_passed"):
        notes.append("recipe gate FAILED")
    return "; ".join(notes)


def recipes_table(model) -> str:
    headers = ["recipe", "steps", "bytes", "size x", "gzip x", "reference (published / physical)", "accuracy",
               "drop (pt)", "p50 / p90 ms, 1 thr", "p50 / p90 ms, 2 thr", "speedup 1 thr", "speedup 2 thr",
               "train+convert s", "notes"]  # fmt: skip
    rows = []
    for c in sorted(model["candidates"], key=lambda c: c["recipe"]):
        if c.get("error"):
            last = c.get("last_step_keras_accuracy")
            before = f" (Keras accuracy after {last['step']}: {last['accuracy']:.4f})" if last else ""
            rows.append([c["recipe"], "+".join(c["steps"]), f"failed{before}: {c['error'][:200]}"] + [""] * 11)
            continue
        speedup = c.get("speedup") or {}
        rows.append([
            c["recipe"], "+".join(c["steps"]), f"{c['tflite_bytes']:,}", f(c["size_ratio"]), f(c["gzip_ratio"]),
            reference_cell(c["recipe"], c), f(c["accuracy"], ".4f"), f(c["accuracy_drop"]),
            latency_cell(c.get("latency_ms"), "1"), latency_cell(c.get("latency_ms"), "2"), f(speedup.get("1")),
            f(speedup.get("2")), f(c.get("seconds"), ".1f"), _candidate_notes(c),
        ])  # fmt: skip
    return markdown_table(headers, rows, "llrrrlrrrrrrrl")


def targets_table(results) -> str:
    rows = []
    for target in results.get("targets", []):
        value, share = target["measured"], is_share(target["id"])
        shown = "-" if value is None else (f"{100 * value:.1f} %" if share else f"{value:.2f}")
        threshold = f"{target['op']} " + (f"{100 * target['threshold']:.0f} %" if share else f"{target['threshold']:g}")
        verdict = {True: "met", False: "**missed**", None: "not measured"}[target["met"]]
        rows.append([target["target"], threshold, shown, verdict])
    return markdown_table(["target", "threshold", "measured", "met"], rows, "lrrl")


def tutorial_table(tutorial) -> str:
    base, written = tutorial["float"], tutorial["as_written"]
    rows = []

    def row(label, quantization, m, notes=""):
        rows.append([
            label, quantization, f"{m['tflite_bytes']:,}", f"{base['tflite_bytes'] / m['tflite_bytes']:.2f}",
            f"{base['gzip_bytes'] / m['gzip_bytes']:.2f}", f"{base['keras_h5_zip_bytes'] / m['zip_bytes']:.2f}",
            f"{m['accuracy']:.4f}", f"{100 * (base['accuracy'] - m['accuracy']):.2f}", f"{m['seconds']:.1f}", notes,
        ])  # fmt: skip

    if "ptq_int8" in written:
        row("post_training_integer_quant", "int8, uint8 I/O, 100 samples", written["ptq_int8"])
    if "prune" in written:
        prune = written["prune"]
        schedule = prune["schedule"]
        pitfall = (
            f"**achieved sparsity {100 * prune['achieved_sparsity']:.1f} %**: end_step {schedule['end_step']} < the "
            f"schedule's default frequency {schedule['frequency']}"
        )
        row("pruning_with_keras: pruned", "float", prune["pruned_float"], pitfall)
        row("pruning_with_keras: pruned + PTQ", "dynamic range", prune["pruned_quantized"], "claim: 10x")
    if "cluster" in written:
        row("clustering_example: clustered", "float", written["cluster"]["clustered_float"], "notebook: 6x")
        row("clustering_example: clustered + PTQ", "dynamic range", written["cluster"]["clustered_quantized"],
            "notebook: 8x; issue's list: 6x")  # fmt: skip
    if "qat" in written:
        row("training_example (QAT)", "dynamic range convert", written["qat"], "claim: 4x, minimal loss")
    headers = ["tutorial flow, as written", "quantization", "bytes", "size x", "gzip x", "zip x vs .h5", "accuracy",
               "drop (pt)", "wall s", "notes"]  # fmt: skip
    return markdown_table(headers, rows, "llrrrrrrrl")


def _runs(values):
    return ", ".join(f"{v:.1f}" for v in values or [])


def _fastest_ratio(times):
    if not times.get("hand") or not times.get("edgeopt"):
        return None
    return min(times["edgeopt"]) / min(times["hand"])


def matched_table(results) -> str:
    rows_in = (results.get("tutorial") or {}).get("matched", [])
    every = matched_times(results)
    rows = []
    for recipe, times in matched_medians(results).items():
        hand = next(r for r in rows_in if r["recipe"] == recipe and r["who"] == "hand")
        core = next(r for r in rows_in if r["recipe"] == recipe and r["who"] == "edgeopt")
        ratio = times["edgeopt"] / times["hand"] if times.get("hand") and times.get("edgeopt") else None
        rows.append([
            recipe, f"{hand['tflite_bytes']:,}", f"{core['tflite_bytes']:,}", f"{hand['gzip_bytes']:,}",
            f"{core['gzip_bytes']:,}", f"{hand['accuracy']:.4f}", f"{core['accuracy']:.4f}",
            f"{f(times.get('hand'), '.1f')} ({_runs(every[recipe].get('hand'))})",
            f"{f(times.get('edgeopt'), '.1f')} ({_runs(every[recipe].get('edgeopt'))})", f(ratio),
            f(_fastest_ratio(every[recipe])),
        ])  # fmt: skip
    headers = ["recipe", "hand-written bytes", "edgeopt bytes", "hand-written gzip", "edgeopt gzip",
               "hand-written acc", "edgeopt acc", "hand-written s (runs)", "edgeopt s (runs)",
               "edgeopt / hand, medians", "... fastest runs"]  # fmt: skip
    return markdown_table(headers, rows, "lrrrrrrrrrr")


REWRITER_PAIRS = {"float": None, "dynamic_range": "ptq_dynamic", "float16": "ptq_fp16", "full_integer": "ptq_int8"}


def rewriter_table(results) -> str:
    rows = []
    for name, modes in results["tfx_rewriter"].items():
        baseline = results.get("models", {}).get(name, {}).get("baseline", {})
        for mode, measured in modes.items():
            recipe = REWRITER_PAIRS.get(mode)
            if recipe is None:
                ours_bytes, ours_acc = baseline.get("tflite_bytes"), baseline.get("accuracy")
            else:
                ours_bytes = field(results, name, recipe, "tflite_bytes")
                ours_acc = field(results, name, recipe, "accuracy")
            rows.append([
                name, f"{mode} ({recipe or 'export'})", f"{measured['tflite_bytes']:,}", f(ours_bytes, ","),
                f"{measured['accuracy']:.4f}", f(ours_acc, ".4f"), measured["input_dtype"],
            ])  # fmt: skip
    headers = ["model", "mode", "TFX bytes", "edgeopt bytes", "TFX accuracy", "edgeopt accuracy", "TFX input dtype"]
    return markdown_table(headers, rows, "llrrrrl")


ORCHESTRATION_PATHS = {
    "hand": "plain tfmot + converter, no validation, no latency, no report (benchmarks/tutorial_baseline.py)",
    "core": "`optimize()` in-process: export + validation, recipe, evaluation with latency, report.json",
    "tfx": "Importers -> TFLiteExporter -> ModelOptimizer -> CompressionEvaluator with LocalDagRunner, in-process: "
    "adds MLMD (SQLite) registration and artifact publishing per component",
    "kfp": "dsl.importer x2 -> export_tflite -> optimize_recipe -> evaluate_and_gate with kfp.local "
    "SubprocessRunner: one new Python process per step, each importing TensorFlow and edgeopt",
}


def orchestration_table(results, orchestration) -> str:
    hand = matched_medians(results).get(orchestration["recipe"], {}).get("hand")
    core = orchestration["median_s"].get("core")
    rows = [
        [path, ORCHESTRATION_PATHS.get(path, ""), f(seconds, ".1f"), f(seconds / core if seconds and core else None),
         f(seconds / hand if seconds and hand else None)]
        for path, seconds in [("hand", hand), *orchestration["median_s"].items()]
    ]  # fmt: skip
    return markdown_table(["path", "what it includes", "wall s (median)", "/ core", "/ hand-written"], rows, "llrrr")


def mlflow_stored_table(stored) -> str:
    rows = [
        [key, store, f"{values['step_s']:.2f}", f"{values['logging_s']:.2f}", f"{100 * values['share']:.1f} %"]
        for key, entry in stored.items()
        for store, values in entry.get("median", {}).items()
    ]
    return markdown_table(["recipes", "store", "step s", "logging s", "share"], rows, "llrrr")


def tuning_table(rows_in) -> str:
    rows = []
    for row in rows_in:
        pc, pt = row["per_channel"], row["per_tensor"]
        kc, kt = pc["largest_kernel"], pt["largest_kernel"]
        rows.append([
            row["variant"], f"{pc['size_ratio']:.2f}", f"{pc['gzip_ratio']:.2f}", f"{pc['accuracy_drop']:.2f}",
            kc["distinct_values"], f"{kc['gzip_bits']:.2f}", f"{pt['size_ratio']:.2f}", f"{pt['gzip_ratio']:.2f}",
            f"{pt['accuracy_drop']:.2f}", kt["distinct_values"], f"{kt['entropy_bits']:.2f}", f"{kt['gzip_bits']:.2f}",
            f"{pc['quant_param_bytes']:,} / {pt['quant_param_bytes']:,}",
        ])  # fmt: skip
    headers = ["variant", "per channel: size x", "gzip x", "drop (pt)", "values", "gzip bits", "per tensor: size x",
               "gzip x", "drop (pt)", "values", "entropy bits", "gzip bits",
               "quant. params B, per channel / per tensor"]  # fmt: skip
    return markdown_table(headers, rows, "lrrrrrrrrrrrr")


def mlflow_job(results):
    return ((results.get("recipes_run") or {}).get(DIGITS) or {}).get("mlflow")
