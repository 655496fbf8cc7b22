"""The benchmark's targets: the published and physical references, the thresholds, and the numbers that explain a
miss. Thresholds are data; every verdict is computed from the measured results."""

import statistics

import search_bench

DIGITS, MOBILENET = "digits_cnn", "mobilenet_v2_035"

# What the tfmot tutorials publish, and what bits allow. `metric` is the column the claim is about.
REFERENCES = {
    "ptq_int8": ("int8 = 4x (physical limit vs float32)", "size_ratio", 4.0),
    "ptq_int8_io": ("int8 = 4x (physical limit)", "size_ratio", 4.0),
    "ptq_dynamic": ("int8 weights = 4x (physical limit)", "size_ratio", 4.0),
    "ptq_int16x8": ("int8 weights = 4x (physical limit)", "size_ratio", 4.0),
    "ptq_fp16": ("float16 = 2x (physical limit)", "size_ratio", 2.0),
    "qat": ("tfmot QAT tutorial: 4x, minimal loss", "size_ratio", 4.0),
    "prune80_int8": ("tfmot pruning tutorial: pruning + PTQ 10x (gzip)", "gzip_ratio", 10.0),
    "cluster16_int8": ("tfmot clustering: clustering + PTQ 6x (gzip)", "gzip_ratio", 6.0),
}

OPS = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b}

# (id, description, recipe, key, sub-key, op, threshold) of the digits targets read straight from one candidate.
CANDIDATE_TARGETS = (
    ("ptq_int8_size", "full-int8 PTQ (ptq_int8): size ratio", "ptq_int8", "size_ratio", None, ">=", 3.9),
    ("ptq_int8_drop", "full-int8 PTQ: accuracy drop (pt)", "ptq_int8", "accuracy_drop", None, "<=", 0.5),
    ("ptq_int8_speedup", "full-int8 PTQ: speedup over float, 1 thread", "ptq_int8", "speedup", "1", ">=", 1.5),
    ("qat_drop", "QAT: accuracy drop (pt)", "qat", "accuracy_drop", None, "<=", 0.3),
    ("prune_gzip", "prune80_int8: gzip ratio", "prune80_int8", "gzip_ratio", None, ">=", 12.0),
    ("prune_drop", "prune80_int8: accuracy drop (pt)", "prune80_int8", "accuracy_drop", None, "<=", 1.0),
    ("cluster_gzip", "cluster16_int8: gzip ratio", "cluster16_int8", "gzip_ratio", None, ">=", 8.0),
    ("cluster_drop", "cluster16_int8: accuracy drop (pt)", "cluster16_int8", "accuracy_drop", None, "<=", 1.0),
    ("pcqat_gzip", "pcqat: gzip ratio", "pcqat", "gzip_ratio", None, ">=", 12.0),
    ("pcqat_drop", "pcqat: accuracy drop (pt)", "pcqat", "accuracy_drop", None, "<=", 1.0),
)
# Wall-time ratios against the hand-written tfmot flow, and MLflow's share of a tracked job.
MAX_OVERHEAD_RATIO = 1.2
MAX_MLFLOW_SHARE = 0.05


def candidate(results, model, recipe):
    for found in results.get("models", {}).get(model, {}).get("candidates", []):
        if found["recipe"] == recipe:
            return found
    return None


def field(results, model, recipe, key, sub=None):
    found = candidate(results, model, recipe)
    if found is None or found.get(key) is None:
        return None
    value = found[key]
    return value.get(sub) if sub is not None and isinstance(value, dict) else value


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def matched_times(results) -> dict:
    """{recipe: {"hand": [s, ...], "edgeopt": [s, ...]}} of the matched wall times."""
    out = {}
    for row in (results.get("tutorial") or {}).get("matched", []):
        out.setdefault(row["recipe"], {}).setdefault(row["who"], []).append(row["seconds"])
    return out


def matched_medians(results) -> dict:
    """{recipe: {"hand": s, "edgeopt": s}} medians of the matched wall times."""
    return {recipe: {who: median(t) for who, t in whos.items()} for recipe, whos in matched_times(results).items()}


def orchestrations(results) -> list[dict]:
    """One entry per recipe timed through every path (older results hold a single entry)."""
    found = results.get("orchestration") or []
    return [found] if isinstance(found, dict) else found


def target_rows(results):
    """(id, description, measured value, op, threshold) for every target; measured is None when not measured."""
    rows = [
        (target_id, description, field(results, DIGITS, recipe, key, sub), op, threshold)
        for target_id, description, recipe, key, sub, op, threshold in CANDIDATE_TARGETS
    ]
    ptq_drop, qat_drop = (
        field(results, DIGITS, "ptq_int8", "accuracy_drop"),
        field(results, DIGITS, "qat", "accuracy_drop"),
    )
    both = qat_drop is not None and ptq_drop is not None
    rows.insert(4, ("qat_vs_ptq", "QAT drop minus PTQ drop (pt): never worse than PTQ",
                    qat_drop - ptq_drop if both else None, "<=", 0.0))  # fmt: skip
    matched = matched_medians(results)
    for recipe, times in matched.items():
        if times.get("hand") and times.get("edgeopt"):
            rows.append((f"core_vs_hand:{recipe}", f"core `optimize()` / hand-written tfmot wall time, {recipe}",
                         times["edgeopt"] / times["hand"], "<=", MAX_OVERHEAD_RATIO))  # fmt: skip
    for orchestration in orchestrations(results):
        recipe = orchestration["recipe"]
        hand = matched.get(recipe, {}).get("hand")
        for path, label in (("tfx", "TFX LocalDagRunner"), ("kfp", "kfp.local")):
            seconds = orchestration.get("median_s", {}).get(path)
            if seconds and hand:
                rows.append((f"{path}_vs_hand:{recipe}", f"{label} / hand-written tfmot wall time, {recipe}",
                             seconds / hand, "<=", MAX_OVERHEAD_RATIO))  # fmt: skip
    mlflow = ((results.get("recipes_run") or {}).get(DIGITS) or {}).get("mlflow")
    rows.append(("mlflow_share", "MLflow logging share of the tracked job's wall time",
                 mlflow["share"] if mlflow else None, "<=", MAX_MLFLOW_SHARE))  # fmt: skip
    return rows + search_bench.target_rows(results)


def is_share(target_id: str) -> bool:
    """Targets measured as a fraction, shown in %."""
    return target_id == "mlflow_share" or target_id.startswith("search_fewer_gzip")


def evaluate_targets(results) -> list[dict]:
    import memory  # the memory section's targets live beside it (benchmarks/memory.py)

    return [
        {
            "id": target_id,
            "target": description,
            "measured": measured,
            "op": op,
            "threshold": threshold,
            "met": None if measured is None else bool(OPS[op](measured, threshold)),
        }
        for target_id, description, measured, op, threshold in target_rows(results) + memory.target_rows(results)
    ]


def tuning_row(results, prefix):
    for row in results.get("tuning") or []:
        if row["variant"].startswith(prefix):
            return row
    return None


def tuning_rows(results) -> dict:
    """The tuning-sweep rows the explanations quote, by role (None where not measured)."""
    return {
        "ptq": tuning_row(results, "ptq int8"),
        "kpp": tuning_row(results, "cluster16 kmeans++"),
        "linear": tuning_row(results, "cluster16 linear"),
        "unstructured": tuning_row(results, "prune 0.80 unstructured"),
        "blocks4": tuning_row(results, "prune 0.80, 4x1"),
        "blocks": [row for row in results.get("tuning") or [] if row["variant"].startswith("prune 0.80,")],
    }
