"""The `edgeopt` command line: `demo` on the embedded digits default, `optimize` on a user's own model."""

import argparse
import json
import sys
from importlib import resources
from pathlib import Path

from edgeopt.components._shared.cli_args import add_model_and_data_args
from edgeopt.components._shared.errors import EdgeoptError
from edgeopt.components.calibration import cli_commands as calibration_commands
from edgeopt.components.search import cli_commands as search_commands
from edgeopt.components.tracking import cli_commands as tracking_commands
from edgeopt.pipelines import cli_commands as pipeline_commands

EXIT_USAGE_ERROR = 2
DEMO_CALIBRATION_SIZE = 300


def default_recipe_paths() -> list[Path]:
    folder = resources.files("edgeopt.configs") / "recipes"
    return sorted(Path(str(path)) for path in folder.iterdir() if path.name.endswith(".yaml"))


def load_recipes(paths):
    from edgeopt.components.recipes.config import RecipeConfig

    return [RecipeConfig.from_yaml(path) for path in paths]


def _evaluation_config(args):
    from edgeopt.components.evaluation.config import EvaluationConfig

    return EvaluationConfig(num_threads=args.threads, timed_runs=args.timed_runs, warmup_runs=args.warmup_runs)


def _finish(report: dict, out: Path, verbose: int):
    from edgeopt.components.recipes.core import render_table

    print(render_table(report))
    print(f"\nwrote {out / 'report.json'} and {out / 'report.md'}")
    failed = [c["recipe"] for c in report["candidates"] if c.get("error")]
    if failed:
        print(f"recipes that failed: {', '.join(failed)} (reasons in report.json)", file=sys.stderr)
    return 0


def run_demo(args) -> int:
    from edgeopt.components._shared.data import load_training_data
    from edgeopt.components.calibration.config import CalibrationConfig
    from edgeopt.components.calibration.core import MANIFEST_FILE, sample_calibration_data
    from edgeopt.components.calibration.sweep import calibration_sweep
    from edgeopt.components.demo.digits import digits_data_spec, train_digits_baseline, write_digits_examples
    from edgeopt.components.recipes.core import optimize, write_report

    out = Path(args.out)
    examples, baseline = out / "data", out / "baseline_model"
    # Both are published atomically, so an existing folder is complete and is reused.
    if args.retrain or not examples.exists():
        print(f"[edgeopt] writing scikit-learn digits as TFX Examples to {examples}", flush=True)
        write_digits_examples(examples)
    if args.retrain or not baseline.exists():
        print(f"[edgeopt] training the digits CNN baseline into {baseline}", flush=True)
        train_digits_baseline(examples, baseline, verbose=args.verbose)
    recipes = load_recipes(args.recipe or default_recipe_paths())
    data = load_training_data(examples, data_spec=digits_data_spec())
    calibration = CalibrationConfig(size=DEMO_CALIBRATION_SIZE, label_key="label")
    print(f"[edgeopt] sampling {calibration.size} calibration examples with Apache Beam into {out / 'calibration'}")
    sample_calibration_data(examples, calibration, out / "calibration")
    report = optimize(
        baseline,
        recipes,
        out,
        data=data,
        evaluation=_evaluation_config(args),
        calibration_dir=out / "calibration",
        champion_tflite=args.tracking_job.champion_tflite(),
        verbose=args.verbose,
    )
    if args.sweep_sizes:
        print(f"[edgeopt] calibration-size sweep: {args.sweep_sizes}", flush=True)
        report["calibration_sweep"] = calibration_sweep(
            baseline,
            examples,
            [int(size) for size in args.sweep_sizes.split(",")],
            out / "calibration-sweep",
            data=data,
            calibration=calibration,
            baseline_accuracy=report["baseline"]["accuracy"],
        )
        write_report(report, out)
    args.tracking_job.log_report(report, examples=examples, calibration_manifest=out / "calibration" / MANIFEST_FILE)
    return _finish(report, out, args.verbose)


def run_optimize(args) -> int:
    from edgeopt.components._shared.data import load_training_data
    from edgeopt.components.calibration.core import MANIFEST_FILE
    from edgeopt.components.recipes.core import optimize

    recipes = load_recipes(args.recipe)
    data = load_training_data(args.examples, data_spec=args.data_spec, module_file=args.module_file)
    out = Path(args.out)
    report = optimize(
        args.model,
        recipes,
        out,
        data=data,
        evaluation=_evaluation_config(args),
        calibration_dir=args.calibration,
        champion_tflite=args.tracking_job.champion_tflite(),
        allow_unsafe=args.allow_unsafe_model,
        verbose=args.verbose,
    )
    manifest = Path(args.calibration) / MANIFEST_FILE if args.calibration else None
    args.tracking_job.log_report(report, examples=args.examples, calibration_manifest=manifest)
    return _finish(report, out, args.verbose)


def run_recipes(args) -> int:
    for path in default_recipe_paths():
        recipe = load_recipes([path])[0]
        print(f"{recipe.name:18} {recipe.technique_chain:26} {recipe.description}")
    return 0


def run_validate(args) -> int:
    recipes = load_recipes(args.recipe)
    for recipe in recipes:
        print(json.dumps(recipe.to_dict(), indent=2) if args.show else f"ok {recipe.name}")
    return 0


def _add_measurement_args(parser):
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads for latency (default 1)")
    parser.add_argument("--timed-runs", type=int, default=200, help="timed invocations per model (default 200)")
    parser.add_argument("--warmup-runs", type=int, default=20, help="warm-up invocations per model (default 20)")
    parser.add_argument("--quiet", dest="verbose", action="store_const", const=0, default=2, help="no progress")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeopt", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train (or reuse) the digits baseline and run every recipe")
    demo.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    demo.add_argument("--recipe", action="append", help="recipe YAML (repeatable; default: all in configs/recipes)")
    demo.add_argument("--retrain", action="store_true", help="rewrite the data and retrain the baseline")
    demo.add_argument(
        "--sweep-sizes",
        default="50,100,300,1000",
        help="calibration sizes for the int8 accuracy sweep (default 50,100,300,1000; empty to skip)",
    )
    _add_measurement_args(demo)
    tracking_commands.add_tracking_args(demo)
    demo.set_defaults(handler=run_demo)

    optimize = commands.add_parser("optimize", help="run recipes on your own Keras model")
    add_model_and_data_args(optimize)
    optimize.add_argument("--recipe", action="append", required=True, help="recipe YAML (repeatable)")
    optimize.add_argument("--out", required=True, help="output folder for candidates and reports")
    optimize.add_argument("--calibration", help="calibration artifact from `edgeopt sample` for int8/16x8 steps")
    optimize.add_argument(
        "--allow-unsafe-model", action="store_true", help="accept .h5 files and Lambda layers (they run stored code)"
    )
    _add_measurement_args(optimize)
    tracking_commands.add_tracking_args(optimize)
    optimize.set_defaults(handler=run_optimize)

    recipes = commands.add_parser("recipes", help="list the built-in recipes")
    recipes.set_defaults(handler=run_recipes)

    validate = commands.add_parser("validate", help="validate recipe YAML files")
    validate.add_argument("recipe", nargs="+", help="recipe YAML files")
    validate.add_argument("--show", action="store_true", help="print each resolved config as JSON")
    validate.set_defaults(handler=run_validate)

    calibration_commands.add_commands(commands)
    search_commands.add_commands(commands)
    pipeline_commands.add_commands(commands)
    tracking_commands.add_commands(commands)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return tracking_commands.run_tracked(args)
    except EdgeoptError as err:
        print(f"edgeopt {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
