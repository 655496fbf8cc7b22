"""`make bench`: compression, accuracy and latency of every recipe on two models, against the published tfmot
claims and the physical limits, plus the cost of each layer around the core. Not a test.

One process, one run, in this order (every ratio below is measured in this same run):
  1. data and models: the demo's digits Examples and CNN; the same digits resized to 32x32 as a second Examples
     folder (benchmarks/digits32.yaml) and a MobileNetV2 (width 0.35) trained on it;
  2. every recipe in configs/recipes/ through `optimize()` on both models (the digits job inside an MLflow tracked
     job, timed phase by phase);
  3. latency of every .tflite at 1 and 2 threads, interleaved (benchmarks/latency.py);
  4. the tuning sweep behind the prune and cluster targets (benchmarks/tuning.py);
  5. the hand-written tfmot tutorial flows (benchmarks/tutorial_baseline.py) as written and with edgeopt's
     hyperparameters, against the core on the same model and data;
  6. TFX's own TFLite rewriter against edgeopt's export and quantization;
  7. two recipes through the core, a minimal TFX LocalDagRunner pipeline and kfp.local (benchmarks/orchestration.py);
  8. distillation against the same student trained on labels only (benchmarks/topology.py);
  9. the budgeted search against the best fixed recipe, and selective quantization (benchmarks/search_bench.py);
 10. the calibration sampler's and MLflow's stored results (benchmarks/calibration_sampler.py,
     benchmarks/mlflow_logging_cost.py), when present.
Writes benchmarks/results/latest.json, benchmarks/results/pareto.png and BENCHMARKS.md (benchmarks/report.py).

Usage: scripts/in-env python benchmarks/run.py [--quick] [--sections LIST] [--results DIR] [--markdown FILE]
[--work DIR]. `--quick` (a few minutes, for development) trains less, runs fewer recipes and repeats, and writes
under /tmp/edgeopt-bench-quick unless told otherwise. `--sections search` (or any comma-separated subset of
SECTIONS) runs only those sections, plus the models and recipe jobs they need, and merges their results into the
existing latest.json before rendering BENCHMARKS.md again.
"""

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from mobilenet_digits import SMALL_SPLIT  # noqa: E402

import edgeopt.components  # noqa: E402,F401  (selects Keras 2 before TensorFlow loads)

QUICK_RECIPES = ("ptq_int8", "ptq_fp16", "qat", "prune80_int8", "cluster16_int8", "pcqat")
# On MobileNetV2 every step saves and reloads a ~150-layer SavedModel and converts it (about 20 s each on this
# 2-core machine), so by default it runs the recipes the published tfmot claims and the physical limits cover.
QUICK_MOBILENET_RECIPES = ("ptq_int8", "ptq_fp16")
ORCHESTRATION_RECIPES = ("ptq_int8", "prune80_int8")
PACKAGES = (
    "tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "tfx", "kfp", "mlflow",
    "apache-beam", "numpy", "edgeopt",
)  # fmt: skip
#: Sections --sections may name; "recipes" (the recipe jobs on both models) runs whenever a chosen section needs it.
SECTIONS = ("recipes", "latency", "tuning", "tutorial", "tfx_rewriter", "orchestration", "topology", "search", "memory")
TUTORIAL_MATCHES = {"ptq_int8": "ptq_int8", "prune80_int8": "prune", "cluster16_int8": "cluster", "qat": "qat"}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def machine() -> dict:
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_start": list(os.getloadavg()),
    }


class Bench:
    """Holds the run's state; each section stores its results and never hides an error."""

    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.work = Path(args.work or tempfile.mkdtemp(prefix="edgeopt-bench-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.results: dict = {
            "generated_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": "make bench" if not args.quick else "benchmarks/run.py --quick",
            "quick": self.quick,
            "source": source_revision(),
            "machine": machine(),
            "versions": versions(),
            "threads": [1, 2],
            "sections_s": {},
            "errors": {},
        }
        self.models: dict = {}

    def section(self, name, function, *args, **kwargs):
        print(f"[bench] === {name}", flush=True)
        started = time.perf_counter()
        try:
            value = function(*args, **kwargs)
        except Exception as err:  # a failing section is reported in the results, and the run exits non-zero
            self.results["errors"][name] = f"{type(err).__name__}: {err}\n{traceback.format_exc()[-4000:]}"
            print(f"[bench] {name} FAILED: {err}", flush=True)
            value = None
        self.results["sections_s"][name] = round(time.perf_counter() - started, 1)
        print(f"[bench] {name}: {self.results['sections_s'][name]} s", flush=True)
        return value

    # ---- 1. data and models ----------------------------------------------------------------------------------------
    def prepare_models(self):
        from mobilenet_digits import digits32_data_spec, train_mobilenet_baseline, write_digits32_examples

        from edgeopt.components._shared.data import load_training_data
        from edgeopt.components.demo.digits import digits_data_spec, train_digits_baseline, write_digits_examples

        examples = write_digits_examples(self.work / "digits" / "examples")
        started = time.perf_counter()
        model = train_digits_baseline(examples, self.work / "digits" / "model", epochs=3 if self.quick else 15)
        self.models["digits_cnn"] = {
            "title": "digits CNN (demo)",
            "model_dir": str(model),
            "examples": str(examples),
            "spec": digits_data_spec(),
            "data": load_training_data(examples, data_spec=digits_data_spec()),
            "train_s": time.perf_counter() - started,
            "input": "8x8x1",
        }
        if not self.needs_mobilenet():
            return {name: self.model_summary(name) for name in self.models}
        examples32 = write_digits32_examples(examples, self.work / "mobilenet" / "examples")
        started = time.perf_counter()
        model32, info = train_mobilenet_baseline(
            examples32, self.work / "mobilenet" / "model", epochs=2 if self.quick else 24
        )
        self.models["mobilenet_v2_035"] = {
            "title": "MobileNetV2 alpha 0.35 (32x32 digits)",
            "model_dir": str(model32),
            "examples": str(examples32),
            "spec": digits32_data_spec(),
            "data": load_training_data(examples32, data_spec=digits32_data_spec()),
            "train_s": time.perf_counter() - started,
            "input": "32x32x1",
            **info,
        }
        from edgeopt.components._shared.model_io import load_keras_model

        self.models["digits_cnn"]["params"] = int(load_keras_model(model).count_params())
        return {name: self.model_summary(name) for name in self.models}

    def needs_mobilenet(self) -> bool:
        return set(self.args.sections) != {"search"} or self.args.search_mobilenet_trials > 0

    def model_summary(self, name):
        model = self.models[name]
        return {key: model[key] for key in ("title", "input", "train_s", "params") if key in model}

    def recipes(self, model: str = "digits_cnn"):
        from edgeopt.components.cli import default_recipe_paths, load_recipes

        recipes = load_recipes(default_recipe_paths())
        if model == "mobilenet_v2_035":
            wanted = QUICK_MOBILENET_RECIPES if self.quick else self.args.mobilenet_recipes.split(",")
            if wanted != ["all"]:
                recipes = [recipe for recipe in recipes if recipe.name in wanted]
        elif self.quick:
            recipes = [recipe for recipe in recipes if recipe.name in QUICK_RECIPES]
        return recipes

    # ---- 2. every recipe -------------------------------------------------------------------------------------------
    def run_recipes(self, name, *, tracked: bool):
        from edgeopt.components.evaluation.config import EvaluationConfig
        from edgeopt.components.recipes.core import optimize

        model = self.models[name]
        out = self.work / name / "job"
        recipes = self.recipes(name)
        evaluation = EvaluationConfig(timed_runs=20, warmup_runs=5)  # latency proper is measured in section 3
        mlflow = None
        if tracked:
            started = time.perf_counter()
            from edgeopt.components.tracking.config import TrackingConfig
            from edgeopt.components.tracking.mlflow_tracking import tracked_job

            import_s = time.perf_counter() - started
            job = tracked_job(
                TrackingConfig(registered_model_name="bench"), orchestrator="cli", output_dir=out, verbose=0
            )
            t0 = time.perf_counter()
            job.__enter__()
            t1 = time.perf_counter()
        else:
            t1 = time.perf_counter()
        report = optimize(model["model_dir"], recipes, out, data=model["data"], evaluation=evaluation)
        t2 = time.perf_counter()
        if tracked:
            job.log_report(report, examples=model["examples"])
            t3 = time.perf_counter()
            job.__exit__(None, None, None)
            t4 = time.perf_counter()
            mlflow = {
                "store": "default SQLite file in a new output folder (schema created on first use)",
                "import_s": import_s,
                "start_s": t1 - t0,
                "step_s": t2 - t1,
                "log_s": t3 - t2,
                "end_s": t4 - t3,
                "logging_s": (t1 - t0) + (t3 - t2) + (t4 - t3),
                "total_s": t4 - t0,
                "offline": bool(job.offline),
                "recipes": len(recipes),
            }
            mlflow["share"] = mlflow["logging_s"] / mlflow["total_s"]
        model["report"] = report
        model["job_s"] = t2 - t1
        skipped = sorted({recipe.name for recipe in self.recipes("digits_cnn")} - {recipe.name for recipe in recipes})
        return {"job_s": t2 - t1, "recipes": [recipe.name for recipe in recipes], "skipped": skipped, "mlflow": mlflow}

    # ---- 3. latency ------------------------------------------------------------------------------------------------
    def measure_latency(self, name):
        import latency

        model = self.models[name]
        report = model["report"]
        paths = {"float": report["baseline"]["tflite_path"]}
        paths.update({c["recipe"]: c["tflite_path"] for c in report["candidates"] if c.get("tflite_path")})
        inputs, _ = model["data"].take(model["data"].eval_split, SMALL_SPLIT)
        rounds = 3 if self.quick else 12
        measured = latency.measure(paths, inputs[0], threads=(1, 2), rounds=rounds)
        model["latency"] = measured
        self.results["latency_rounds"] = rounds
        return {"rounds": rounds, "models": measured}

    # ---- 4. tuning sweep -------------------------------------------------------------------------------------------
    def tuning(self):
        import tuning

        from edgeopt.components.evaluation.config import EvaluationConfig
        from edgeopt.components.evaluation.core import evaluate_tflite

        model = self.models["digits_cnn"]
        baseline = evaluate_tflite(
            model["report"]["baseline"]["tflite_path"], model["data"], EvaluationConfig(warmup_runs=1, timed_runs=5)
        )
        return tuning.sweep(model["model_dir"], model["data"], baseline, self.work / "tuning", quick=self.quick)

    # ---- 5. hand-written tutorial flows ----------------------------------------------------------------------------
    def tutorial_baseline(self):
        import tutorial_baseline as tutorial

        from edgeopt.components.recipes.core import optimize

        model = self.models["digits_cnn"]
        data = tutorial.load_data(model["examples"], input_shape=(8, 8, 1), scale=model["spec"].scale)
        out = self.work / "tutorial"
        results = {"float": tutorial.float_baseline(model["model_dir"], data, str(out / "float"))}
        as_written = {}
        for name, flow in tutorial.AS_WRITTEN.items():
            print(f"[bench] tutorial as written: {name}", flush=True)
            as_written[name] = flow(model["model_dir"], data, str(out / name))
        results["as_written"] = as_written
        recipes = {recipe.name: recipe for recipe in self.recipes()}
        matched_rows = []
        repeats = 1 if self.quick else 3
        for recipe_name, technique in TUTORIAL_MATCHES.items():
            if recipe_name not in recipes:
                continue
            recipe = recipes[recipe_name]
            params = matched_params(recipe)
            for repeat in range(repeats):
                order = ("edgeopt", "hand") if repeat % 2 == 0 else ("hand", "edgeopt")
                for who in order:
                    folder = out / "matched" / f"{recipe_name}-{who}-{repeat}"
                    shutil.rmtree(folder, ignore_errors=True)
                    if who == "hand":
                        row = tutorial.matched(technique, model["model_dir"], data, str(folder), params)
                    else:
                        started = time.perf_counter()
                        report = optimize(model["model_dir"], [recipe], folder, data=model["data"])
                        candidate = report["candidates"][0]
                        row = {
                            "tflite_bytes": candidate["tflite_bytes"],
                            "gzip_bytes": candidate["gzip_bytes"],
                            "accuracy": candidate["accuracy"],
                            "baseline_accuracy": report["baseline"]["accuracy"],
                            "seconds": time.perf_counter() - started,
                        }
                    row.pop("tflite_path", None)
                    matched_rows.append({"recipe": recipe_name, "who": who, "repeat": repeat, **row})
                    print(f"[bench] matched {recipe_name} {who} repeat {repeat}: {row['seconds']:.1f} s", flush=True)
        results["matched"] = matched_rows
        results["matched_params"] = {
            name: matched_params(recipes[name]) for name in TUTORIAL_MATCHES if name in recipes
        }
        return results

    # ---- 6. TFX rewriter -------------------------------------------------------------------------------------------
    def tfx_rewriter(self):
        import tfx_rewriter

        from edgeopt.components.quantization.core import pick_calibration_examples

        results = {}
        for name, model in self.models.items():
            data = model["data"]
            inputs, labels = data.take(data.eval_split, SMALL_SPLIT)
            calibration = pick_calibration_examples(data, 200, 0)
            # MobileNetV2 conversions take about 20 s each here: the two modes that differ most from edgeopt's.
            modes = None if name == "digits_cnn" else ("float", "full_integer")
            results[name] = tfx_rewriter.run_rewriter(
                model["model_dir"], self.work / "rewriter" / name, calibration, inputs, labels, modes=modes
            )
        return results

    # ---- 7. orchestration ------------------------------------------------------------------------------------------
    def orchestration(self):
        import orchestration

        from edgeopt.components.recipes.config import RecipeConfig

        model = self.models["digits_cnn"]
        # The shortest job (fixed costs dominate) and one that fine-tunes (the usual optimize step).
        recipes = ORCHESTRATION_RECIPES[:1] if self.quick else ORCHESTRATION_RECIPES
        return [
            orchestration.compare_paths(
                model["model_dir"],
                model["examples"],
                model["spec"],
                RecipeConfig.builtin(name),
                self.work / "orchestration" / name,
                repeats=1 if self.quick else 3,
            )
            for name in recipes
        ]

    # ---- 9. budgeted search ----------------------------------------------------------------------------------------
    def search(self):
        import search_bench

        quick = self.quick
        return search_bench.compare(
            self.models,
            self.work,
            trials=4 if quick else self.args.search_trials,
            max_epochs=1 if quick else self.args.search_epochs,
            mobilenet_trials=0 if quick else self.args.search_mobilenet_trials,
            source=self.results["source"],
            cpu_model=self.results["machine"]["cpu_model"],
        )

    # ---- results ---------------------------------------------------------------------------------------------------
    def last_step_accuracy(self, name, recipe):
        """Keras accuracy of the last training step a failed recipe completed: was the model or the conversion off?"""
        import numpy as np

        from edgeopt.components._shared.model_io import load_keras_model

        steps = sorted((self.work / name / "job" / "candidates" / recipe).glob("*/saved_model.pb"))
        if not steps:
            return None
        data = self.models[name]["data"]
        inputs, labels = data.take(data.eval_split, SMALL_SPLIT)
        model = load_keras_model(steps[-1].parent)
        return {
            "step": steps[-1].parent.name,
            "accuracy": float(np.mean(model.predict(inputs, verbose=0).argmax(-1) == labels)),
        }

    def collect_models(self):
        from tuning import quantization_param_bytes

        collected = {}
        for name, model in self.models.items():
            report = model.get("report")
            if report is None:
                continue
            baseline = report["baseline"]
            lat = model.get("latency", {})
            n = baseline["num_eval_examples"]
            entry = {
                **self.model_summary(name),
                "job_s": model.get("job_s"),
                "eval_examples": n,
                "resolution_pt": 100.0 / n,
                "keras_eval_accuracy": model.get("keras_eval_accuracy"),
                "baseline": {
                    "tflite_bytes": baseline["tflite_bytes"],
                    "gzip_bytes": baseline["gzip_bytes"],
                    "accuracy": baseline["accuracy"],
                    "non_weight_bytes_share": baseline["non_weight_bytes_share"],
                    "latency_ms": lat.get("float"),
                },
                "candidates": [],
            }
            for candidate in report["candidates"]:
                mine = lat.get(candidate["recipe"])
                qparams = quantization_param_bytes(candidate["tflite_path"]) if candidate.get("tflite_path") else None
                speedup = None
                if mine and lat.get("float"):
                    speedup = {t: lat["float"][t]["p50"] / mine[t]["p50"] for t in mine}
                extras = {}
                for record in candidate.get("step_records", []):
                    for key in ("achieved_sparsity", "max_unique_values"):
                        if key in record["result"]:
                            extras[key] = record["result"][key]
                if candidate.get("error"):
                    extras["last_step_keras_accuracy"] = self.last_step_accuracy(name, candidate["recipe"])
                entry["candidates"].append(
                    {
                        "recipe": candidate["recipe"],
                        "steps": candidate["steps"],
                        "tflite_bytes": candidate["tflite_bytes"],
                        "gzip_bytes": candidate["gzip_bytes"],
                        "size_ratio": candidate["size_ratio"],
                        "gzip_ratio": candidate["gzip_ratio"],
                        "accuracy": candidate["accuracy"],
                        "accuracy_drop": candidate["accuracy_drop"],
                        "latency_ms": mine,
                        "speedup": speedup,
                        "seconds": sum(r["seconds"] for r in candidate.get("step_records", [])) or None,
                        "quant_param_bytes": qparams,
                        "gate_passed": candidate["gate"]["passed"],
                        "error": candidate.get("error"),
                        **extras,
                    }
                )
            collected[name] = entry
        return collected


def source_revision() -> dict:
    """The commit measured, and whether the working tree differed from it.

    The environment's root filesystem has no git: `make bench` reads both on the host and passes them in.
    """
    commit, changed = os.environ.get("EDGEOPT_BENCH_COMMIT"), os.environ.get("EDGEOPT_BENCH_CHANGED_FILES")
    if shutil.which("git"):
        git = ["git", "-C", str(HERE.parent)]
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
        status = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
        if head.returncode == 0 and status.returncode == 0:
            commit, changed = head.stdout.strip(), str(len(status.stdout.splitlines()))
    return {"commit": commit or None, "clean": None if not changed else changed.strip() == "0"}


def matched_params(recipe) -> dict:
    """The hyperparameters of a recipe's training and quantize steps, as plain values for the hand-written flow."""
    params = {}
    for step in recipe.steps:
        config = step.config.model_dump(mode="json")
        if step.technique == "quantize":
            params["calibration_examples"] = config["calibration_examples"]
            params["dense_granularity"] = config["dense_granularity"]
        else:
            params.update(config)
    return params


def merge_into_stored(results: dict, latest: Path, chosen: set) -> dict:
    """A partial run's sections over the last full run's latest.json: the page keeps the other sections (and the
    full run's header); each merged section carries its own run metadata where it has any (the search does)."""
    if not latest.exists():
        return results
    merged = json.loads(latest.read_text())
    for name in chosen - {"recipes", "latency"}:
        if name in results:
            merged[name] = results[name]
    # The recipe jobs a partial run repeats only feed its own sections: the full run's timings and errors stay.
    merged.setdefault("sections_s", {}).update({k: v for k, v in results["sections_s"].items() if k in chosen})
    errors = {k: v for k, v in (merged.get("errors") or {}).items() if k not in chosen}
    merged["errors"] = {**errors, **{k: v for k, v in results["errors"].items() if k in chosen or k == "models"}}
    return merged


def stored_results(name: str):
    path = HERE / "results" / name
    return json.loads(path.read_text()) if path.exists() else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small run for development")
    parser.add_argument("--results", help="folder for latest.json and pareto.png (default benchmarks/results)")
    parser.add_argument("--markdown", help="where BENCHMARKS.md goes (default: the repository root)")
    parser.add_argument(
        "--mobilenet-recipes",
        default="all",
        help="comma-separated recipes run on MobileNetV2 (default all; the MobileNetV2 job is most of the run)",
    )
    parser.add_argument("--work", help="scratch folder (default: a new temporary folder, removed at the end)")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)}); a subset merges into latest.json",
    )
    parser.add_argument("--search-trials", type=int, default=40, help="trials of the digits search (default 40)")
    parser.add_argument("--search-epochs", type=int, default=2, help="most fine-tuning epochs per search trial step")
    parser.add_argument(
        "--search-mobilenet-trials", type=int, default=0, help="also search MobileNetV2 with N trials (default 0)"
    )
    args = parser.parse_args()
    args.sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    partial = set(args.sections) != set(SECTIONS)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    quick_root = Path("/tmp/edgeopt-bench-quick")
    results_dir = Path(args.results) if args.results else (quick_root if args.quick else HERE / "results")
    markdown = Path(args.markdown) if args.markdown else (quick_root if args.quick else ROOT) / "BENCHMARKS.md"
    started = time.perf_counter()
    bench = Bench(args)
    results = bench.results
    chosen = set(args.sections)
    results["models_info"] = bench.section("models", bench.prepare_models)
    if bench.models:
        results["recipes_run"] = {}
        for name in bench.models:
            # The search compares against the fixed recipes on the same model; the other sections read their jobs.
            tracked = name == "digits_cnn" and "recipes" in chosen
            results["recipes_run"][name] = bench.section(f"recipes:{name}", bench.run_recipes, name, tracked=tracked)
        if chosen & {"recipes", "latency"}:
            for name in bench.models:
                bench.section(f"latency:{name}", bench.measure_latency, name)
        results["models"] = bench.collect_models()
        for name, method in (("tuning", bench.tuning), ("tutorial", bench.tutorial_baseline),
                             ("tfx_rewriter", bench.tfx_rewriter), ("orchestration", bench.orchestration)):  # fmt: skip
            if name in chosen:
                results[name] = bench.section(name, method)
        if "topology" in chosen:
            import topology

            results["topology"] = bench.section(
                "topology", topology.compare_distillation, bench.models, bench.work, quick=bench.quick
            )
        if "search" in chosen:
            results["search"] = bench.section("search", bench.search)
    results["stored"] = {
        "calibration_sampler": stored_results("calibration_sampler.json"),
        "mlflow_logging_cost": stored_results("mlflow_logging_cost.json"),
    }
    if "memory" in chosen:
        import memory  # peak RSS and time per example at two data sizes; needs no model above (benchmarks/memory.py)

        results["memory"] = bench.section("memory", memory.measure, bench.work, quick=bench.quick)
    results["machine"]["load_average_end"] = list(os.getloadavg())
    results["wall_s"] = wall_s = time.perf_counter() - started

    if partial:
        results = merge_into_stored(results, results_dir / "latest.json", chosen)

    import report

    results["targets"] = report.evaluate_targets(results)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "latest.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    plot = report.pareto_plot(results, results_dir / "pareto.png")
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(report.render(results, plot_path=os.path.relpath(plot, markdown.parent)))
    print(f"[bench] wrote {results_dir / 'latest.json'}, {plot}, {markdown} in {wall_s:.0f} s", flush=True)
    if not args.work:
        shutil.rmtree(bench.work, ignore_errors=True)
    if results["errors"]:
        print(f"[bench] sections failed: {sorted(results['errors'])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
