"""Benchmark section: memory bounded by the configuration, not by the data (issue 13).

Synthetic sharded TFX Examples of 32x32x3 images (benchmarks/memory_data.py) at 20k and 200k training examples,
16 shards each, and a 2k eval split; a small CNN trained briefly on the 20k set. Then:
  1. `edgeopt optimize` (the CLI, a new process per run, `--no-tracking`) with `ptq_int8` and with a one-epoch
     pruning recipe on each set; the peak resident set of each process is the kernel's high-water mark, read with
     `os.wait4` from a fresh launcher. Target: the 200k run within 1.25x of the 20k run.
  2. One fine-tuning epoch over the 200k set: edgeopt's `training.fine_tune` on its stream against `model.fit` on a
     plain `TFRecordDataset(files).batch().map(parse).shuffle().prefetch()` of the same files, same saved model,
     loss, optimizer, batch size and steps, each epoch in a new process, in alternating order. Target: edgeopt's time
     per training example within 1.2x of the plain pipeline's.

`make bench` runs it as its `memory` section. Run alone, it merges its results into benchmarks/results/latest.json
(the `memory` key, its section time and error, and the targets; every other section stays) and renders BENCHMARKS.md:
  scripts/in-env python benchmarks/memory.py [--quick] [--sizes 20000,200000] [--work DIR]
`--quick` (2k and 20k examples, one timing repeat) writes under /tmp/edgeopt-bench-quick unless told otherwise.
"""

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import traceback
from importlib import resources
from pathlib import Path

import numpy as np
from memory_data import (
    BATCH_SIZE,
    CHANNELS,
    EVAL_EXAMPLES,
    LABEL_KEY,
    PIXELS_KEY,
    SHARDS,
    SIDE,
    data_spec_dict,
    run_measured,
    train_baseline,
    write_examples,
)

HERE = Path(__file__).resolve().parent
SIZES = (20_000, 200_000)
QUICK_SIZES = (2_000, 20_000)
MAX_RSS_RATIO = 1.25  # peak RSS at the largest split / at the smallest
MAX_FIT_TIME_RATIO = 1.2  # edgeopt's fine-tuning / plain model.fit, per training example
PRUNE_RECIPE = {
    "name": "prune1_int8",
    "description": "One epoch of magnitude pruning to 50 % sparsity, then full-integer int8 (the memory benchmark).",
    "steps": [
        {"technique": "prune", "config": {"target_sparsity": 0.5, "epochs": 1, "learning_rate": 0.0005}},
        {"technique": "quantize", "config": {"mode": "full_integer", "dense_granularity": "per_tensor"}},
    ],
    "gate": {"max_accuracy_drop": 5.0},
}
RECIPES = ("ptq_int8", PRUNE_RECIPE["name"])


def optimize_run(model: Path, examples: Path, spec: Path, recipe: Path, out: Path) -> dict:
    """`edgeopt optimize` with one recipe in a new process: peak RSS, wall time, and what its report.json says."""
    command = [
        str(Path(sys.executable).with_name("edgeopt")), "optimize", "--model", str(model), "--examples", str(examples),
        "--data-spec", str(spec), "--recipe", str(recipe), "--out", str(out), "--no-tracking", "--timed-runs", "20",
        "--warmup-runs", "5",
    ]  # fmt: skip
    log = out.parent / f"{out.name}.log"
    measured = run_measured(command, log)
    if measured["returncode"]:
        raise RuntimeError(f"edgeopt optimize exited {measured['returncode']}:\n{log.read_text()[-3000:]}")
    report = json.loads((out / "report.json").read_text())
    candidate = report["candidates"][0]
    if candidate.get("error"):
        raise RuntimeError(f"{candidate['recipe']} failed: {candidate['error']}")
    return {
        **measured,
        "accuracy": candidate["accuracy"],
        "baseline_accuracy": report["baseline"]["accuracy"],
        "step_s": {record["technique"]: record["seconds"] for record in candidate["step_records"]},
    }


FIT_PROGRAM = """
import json, sys
sys.path.insert(0, sys.argv[1])
import memory
print("RESULT " + json.dumps(memory.time_one_epoch(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))))
"""


def plain_dataset(files: list[str], batch_size: int, seed: int):
    """The plain pipeline: records in file order, batched, parsed, batches shuffled, repeated, prefetched."""
    from edgeopt.components._shared.keras_bootstrap import tf

    features = {
        PIXELS_KEY: tf.io.FixedLenFeature([SIDE * SIDE * CHANNELS], tf.int64),
        LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, features)
        pixels = tf.cast(parsed[PIXELS_KEY], tf.float32) * (1 / 255)
        return tf.reshape(pixels, [-1, SIDE, SIDE, CHANNELS]), parsed[LABEL_KEY]

    return (
        tf.data.TFRecordDataset(files)
        .batch(batch_size)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .shuffle(4096 // batch_size, seed=seed)
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )


def time_one_epoch(which: str, model_dir: str, examples: str, count: int) -> dict:
    """One epoch over the `count` training examples, from the saved model, through edgeopt's `fine_tune` or a plain
    `model.fit`: same loss, optimizer, batch size and steps (given, so neither side runs a counting pass). Wall and
    CPU seconds of that call."""
    from edgeopt.components._shared.data import load_training_data, split_files
    from edgeopt.components._shared.data_spec import DataSpec
    from edgeopt.components._shared.fine_tuning_config import FineTuningConfig
    from edgeopt.components._shared.keras_bootstrap import keras
    from edgeopt.components._shared.model_io import load_keras_model
    from edgeopt.components._shared.training import fine_tune, set_seeds

    data = load_training_data(examples, data_spec=DataSpec.from_dict(data_spec_dict()))
    steps = int(np.ceil(count / BATCH_SIZE))
    config = FineTuningConfig(epochs=1, batch_size=BATCH_SIZE, learning_rate=1e-4, steps_per_epoch=steps)
    set_seeds(0)
    model = load_keras_model(model_dir)
    cpu_started, started = _cpu_seconds(), time.perf_counter()
    if which == "edgeopt":
        fine_tune(model, data, config, from_logits=True)
    else:
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        files = split_files(examples, data.train_split)
        model.fit(plain_dataset(files, BATCH_SIZE, 0), epochs=1, steps_per_epoch=steps, verbose=0)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
    return {"which": which, "examples": count, "steps": steps, "fit_s": seconds, "s_per_1k": 1000 * seconds / count,
            "cpu_s_per_1k": 1000 * cpu / count}  # fmt: skip


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fit_timing(model: Path, examples: Path, count: int, work: Path, *, repeats: int) -> dict:
    """edgeopt's fine-tuning against a plain model.fit, each epoch in a new process, in alternating order (AB BA ...).
    Other work on a shared host only ever adds time, so the fastest run of each side is the figure judged; medians
    and CPU seconds are kept beside it."""
    runs = []
    for repeat in range(repeats):
        for which in ("edgeopt", "plain") if repeat % 2 == 0 else ("plain", "edgeopt"):
            log = work / f"epoch-{which}-{repeat}.log"
            command = [sys.executable, "-c", FIT_PROGRAM, str(HERE), which, str(model), str(examples), str(count)]
            measured = run_measured(command, log)
            text = log.read_text(errors="replace")
            if measured["returncode"]:
                raise RuntimeError(f"the {which} epoch exited {measured['returncode']}:\n{text[-3000:]}")
            line = next(line for line in text.splitlines() if line.startswith("RESULT "))
            runs.append({**json.loads(line.removeprefix("RESULT ")), "repeat": repeat,
                         "peak_rss_mb": measured["peak_rss_mb"]})  # fmt: skip
            print(f"[bench] memory: one epoch, {which}: {runs[-1]['s_per_1k']:.3f} s per 1k examples "
                  f"(CPU {runs[-1]['cpu_s_per_1k']:.3f})", flush=True)  # fmt: skip

    def per_side(key, pick):
        return {side: float(pick([run[key] for run in runs if run["which"] == side])) for side in ("edgeopt", "plain")}

    fastest, median, cpu = per_side("s_per_1k", min), per_side("s_per_1k", np.median), per_side("cpu_s_per_1k", min)
    return {
        "examples": count,
        "batch_size": BATCH_SIZE,
        "repeats": repeats,
        "runs": runs,
        "s_per_1k": fastest,
        "median_s_per_1k": median,
        "cpu_s_per_1k": cpu,
        "ratio": fastest["edgeopt"] / fastest["plain"],
        "median_ratio": median["edgeopt"] / median["plain"],
        "cpu_ratio": cpu["edgeopt"] / cpu["plain"],
    }


def machine() -> dict:
    """CPU model, cores, the int8-relevant ISA flags, and the load average now."""
    from topology import cpu_flags

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")  # fmt: skip
    return {"cpu_model": model, "cpu_count": os.cpu_count(), "cpu_flags": cpu_flags(),
            "load_average_start": list(os.getloadavg())}  # fmt: skip


def measure(work: str | os.PathLike, *, quick: bool = False, sizes: tuple[int, ...] | None = None) -> dict:
    """The section: the Examples, the baseline, the optimize runs and the fine-tuning epochs."""
    import yaml

    from edgeopt.components.recipes.config import RecipeConfig

    sizes = tuple(sorted(sizes or (QUICK_SIZES if quick else SIZES)))
    work = Path(work) / "memory"
    work.mkdir(parents=True, exist_ok=True)
    spec, prune_recipe = work / "data_spec.yaml", work / f"{PRUNE_RECIPE['name']}.yaml"
    spec.write_text(yaml.safe_dump(data_spec_dict(), sort_keys=False))
    prune_recipe.write_text(yaml.safe_dump(PRUNE_RECIPE, sort_keys=False))
    RecipeConfig.from_yaml(prune_recipe)  # a mistake in the recipe fails here, not in the subprocesses
    recipes = [Path(str(resources.files("edgeopt.configs") / "recipes" / "ptq_int8.yaml")), prune_recipe]
    from run import source_revision

    results = {
        "generated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source_revision(),
        "sizes": list(sizes),
        "shards": SHARDS,
        "eval_examples": EVAL_EXAMPLES,
        "image": [SIDE, SIDE, CHANNELS],
        "storage": "int64 features 0..255 scaled by 1/255, uncompressed TFRecord",
        "prune_recipe": PRUNE_RECIPE,
        "machine": machine(),
        "data": {},
        "runs": [],
    }
    folders = {}
    for size in sizes:
        started = time.perf_counter()
        folders[size] = write_examples(work / f"examples-{size}", size)
        written = sum(path.stat().st_size for path in folders[size].glob("Split-train/*"))
        results["data"][str(size)] = {"write_s": time.perf_counter() - started, "train_bytes": written}
        print(f"[bench] memory: wrote {size:,} examples ({written / 2**20:.0f} MiB) in "
              f"{results['data'][str(size)]['write_s']:.1f} s", flush=True)  # fmt: skip
    model = work / "baseline"
    results["baseline"] = {**train_baseline(folders[sizes[0]], model, epochs=1 if quick else 2), "examples": sizes[0]}
    for recipe in recipes:
        for size in sizes:
            run = optimize_run(model, folders[size], spec, recipe, work / f"out-{recipe.stem}-{size}")
            results["runs"].append({"recipe": recipe.stem, "examples": size, **run})
            print(f"[bench] memory: {recipe.stem} on {size:,}: peak RSS {run['peak_rss_mb']:.0f} MB, "
                  f"{run['wall_s']:.1f} s", flush=True)  # fmt: skip
    results["fit_timing"] = fit_timing(model, folders[sizes[-1]], sizes[-1], work, repeats=1 if quick else 2)
    for folder in folders.values():  # a gigabyte at 200k that the rest of `make bench` does not need
        shutil.rmtree(folder, ignore_errors=True)
    results["machine"]["load_average_end"] = list(os.getloadavg())
    return results


# ---- report ----------------------------------------------------------------------------------------------------------
def rss_ratio(memory: dict, recipe: str) -> float | None:
    """Peak RSS at the largest training split / at the smallest, for one recipe."""
    runs = {run["examples"]: run["peak_rss_mb"] for run in memory.get("runs", []) if run["recipe"] == recipe}
    return runs[max(runs)] / runs[min(runs)] if len(runs) > 1 else None


def target_rows(results) -> list[tuple]:
    """(id, description, measured, op, threshold) of the memory targets; measured is None when not measured."""
    memory = results.get("memory") or {}
    small, large = (f"{size:,}" for size in (min(memory.get("sizes", SIZES)), max(memory.get("sizes", SIZES))))
    rows = [
        (f"memory_rss:{recipe}", f"`edgeopt optimize` peak RSS at {large} / at {small} training examples, {recipe}",
         rss_ratio(memory, recipe), "<=", MAX_RSS_RATIO)
        for recipe in RECIPES
    ]  # fmt: skip
    timing = memory.get("fit_timing")
    rows.append(("memory_fit_time", "edgeopt fine-tuning / plain `model.fit`, time per training example",
                 timing["ratio"] if timing else None, "<=", MAX_FIT_TIME_RATIO))  # fmt: skip
    return rows


def _source(source) -> str:
    if not source or not source.get("commit"):
        return "not from a git checkout"
    return f"commit {source['commit'][:12]}" + ("" if source.get("clean") else " with uncommitted changes")


def _load(values) -> str:
    return "/".join(f"{value:.2f}" for value in values) if values else "?"


def render(results) -> str:
    """The section's Markdown: what ran, on what machine, and its two tables."""
    memory = results.get("memory")
    if not memory:
        return "Not measured in this run.\n"
    from report_tables import f, markdown_table
    from topology import INT8_FLAGS

    smallest = {run["recipe"]: run["peak_rss_mb"] for run in memory["runs"] if run["examples"] == min(memory["sizes"])}
    rows = [
        [run["recipe"], f"{run['examples']:,}", f"{run['peak_rss_mb']:.0f}",
         f"{run['peak_rss_mb'] / smallest[run['recipe']]:.3f}", f"{run['wall_s']:.1f}",
         f(1000 * run["step_s"]["prune"] / run["examples"] if "prune" in run["step_s"] else None, ".3f"),
         f"{run['accuracy']:.4f}"]
        for run in memory["runs"]
    ]  # fmt: skip
    timing, baseline, host = memory["fit_timing"], memory["baseline"], memory["machine"]
    epochs = [
        [side, f"{timing['s_per_1k'][side]:.3f}", f"{timing['median_s_per_1k'][side]:.3f}",
         f"{timing['cpu_s_per_1k'][side]:.3f}",
         ", ".join(f"{run['s_per_1k']:.3f}" for run in timing["runs"] if run["which"] == side),
         f"{max(run['peak_rss_mb'] for run in timing['runs'] if run['which'] == side):.0f}",
         f"{timing['s_per_1k'][side] / timing['s_per_1k']['plain']:.2f}"]
        for side in ("edgeopt", "plain")
    ]  # fmt: skip
    largest = max(memory["sizes"])
    flags = ", ".join(host["cpu_flags"]) or "none of " + ", ".join(INT8_FLAGS)
    return "\n".join([
        f"Synthetic TFX Examples of {'x'.join(map(str, memory['image']))} images ({memory['storage']}; the label is "
        f"a class-coloured grating under noise), {memory['shards']} shards per training split, "
        f"{memory['eval_examples']:,} eval examples (benchmarks/memory.py, benchmarks/memory_data.py). A CNN of "
        f"{baseline['params']:,} parameters trained {baseline['epochs']} epochs on {baseline['examples']:,} examples "
        f"(Keras eval accuracy {baseline['keras_eval_accuracy']:.4f}). Each row is one `edgeopt optimize` process "
        "(`--no-tracking`, the recipe alone); peak RSS is the kernel's high-water mark of that process, read with "
        f"`os.wait4`. `{PRUNE_RECIPE['name']}` prunes to 50 % for one epoch, then quantizes to full-integer int8. "
        f"Held in memory as float32, the {largest:,}-example split alone would take "
        f"{largest * SIDE * SIDE * CHANNELS * 4 / 2**20:,.0f} MB.",
        "",
        f"Measured {memory['generated_utc']}, {_source(memory.get('source'))}. Machine: {host['cpu_model']}, "
        f"{host['cpu_count']} cores, CPU flags {flags}; load average (1/5/15 min) "
        f"{_load(host.get('load_average_start'))} when the section started, {_load(host.get('load_average_end'))} "
        "when it ended: a shared host, so times are indicative and every ratio compares runs of this section.",
        "",
        markdown_table(
            ["recipe", "training examples", "peak RSS MB", "/ smallest", "wall s", "prune s per 1k examples",
             "accuracy"],
            rows,
            "lrrrrrr",
        ),  # fmt: skip
        "",
        f"One fine-tuning epoch over the {timing['examples']:,}-example split (batch {timing['batch_size']}, the "
        "baseline, its loss, Adam at 1e-4, steps given), each epoch in a new process, "
        f"{timing['repeats']} per side in alternating order: edgeopt's `fine_tune` on its stream (shards "
        "interleaved, NaN/Inf filter, 4,096-example shuffle buffer) against `model.fit` on "
        "`TFRecordDataset(files).batch().map(parse).shuffle().prefetch()`. The fastest run of each side is judged "
        "(other work on the host only adds time); CPU is the process's user + system seconds per 1k examples.",
        "",
        markdown_table(
            ["pipeline", "s per 1k examples (fastest)", "median", "CPU s per 1k", "runs", "peak RSS MB",
             "/ plain"],
            epochs,
            "lrrrrrr",
        ),  # fmt: skip
    ]) + "\n"  # fmt: skip


# ---- run alone -------------------------------------------------------------------------------------------------------
def merge_into_latest(section: dict | None, seconds: float, error: str | None, results_path: Path, markdown: Path):
    """Puts this run's section into latest.json (every other section stays as it was), re-evaluates the targets
    and renders BENCHMARKS.md from it."""
    import report

    results = json.loads(results_path.read_text())
    if section is not None:
        results["memory"] = section
    results.setdefault("sections_s", {})["memory"] = round(seconds, 1)
    errors = {name: text for name, text in (results.get("errors") or {}).items() if name != "memory"}
    results["errors"] = {**errors, **({"memory": error} if error else {})}
    results["targets"] = report.evaluate_targets(results)
    results_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    plot = os.path.relpath(results_path.parent / "pareto.png", markdown.parent)
    markdown.write_text(report.render(results, plot_path=plot))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2k and 20k examples, one training epoch, one repeat")
    parser.add_argument("--sizes", help=f"comma-separated training split sizes (default {','.join(map(str, SIZES))})")
    parser.add_argument("--work", help="scratch folder (default: a new temporary folder, removed at the end)")
    parser.add_argument("--results", help="latest.json to merge into (default benchmarks/results/latest.json)")
    parser.add_argument("--markdown", help="BENCHMARKS.md to render (default: the repository root's)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    quick_root = Path("/tmp/edgeopt-bench-quick")
    results_dir, markdown_dir = (quick_root, quick_root) if args.quick else (HERE / "results", HERE.parent)
    results_path = Path(args.results or results_dir / "latest.json")
    markdown = Path(args.markdown or markdown_dir / "BENCHMARKS.md")
    if not results_path.exists():
        parser.error(f"{results_path} does not exist; run benchmarks/run.py first (this section merges into it)")
    import edgeopt.components  # noqa: F401  (selects Keras 2 before TensorFlow loads)

    work = Path(args.work or tempfile.mkdtemp(prefix="edgeopt-bench-memory-"))
    sizes = tuple(int(size) for size in args.sizes.split(",")) if args.sizes else None
    started, section, error = time.perf_counter(), None, None
    try:
        section = measure(work, quick=args.quick, sizes=sizes)
    except Exception as err:  # recorded like a failing section of run.py, and the exit status says so
        error = f"{type(err).__name__}: {err}\n{traceback.format_exc()[-4000:]}"
        print(f"[bench] memory FAILED: {err}", flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    merge_into_latest(section, time.perf_counter() - started, error, results_path, markdown)
    print(f"[bench] memory: merged into {results_path}, rendered {markdown}", flush=True)
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
