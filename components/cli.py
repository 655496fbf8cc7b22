"""The `edgeopt` command line: `demo` on the embedded digits default, `optimize` on a user's own model."""

import argparse
import contextlib
import json
import logging
import sys
from importlib import resources
from pathlib import Path

from edgeopt.components._shared.cli_args import add_model_and_data_args, parse_sizes
from edgeopt.components._shared.console import QUIET, VERBOSE, configure_logging, native_output_to
from edgeopt.components._shared.errors import EdgeoptError, JobTerminatedError
from edgeopt.components._shared.signals import EXIT_SIGINT, EXIT_SIGTERM, sigterm_raises
from edgeopt.components.calibration import cli_commands as calibration_commands
from edgeopt.components.cli_jobs import (
    EXIT_GATE_FAILED,
    EXIT_RECIPE_FAILED,
    checked_training_data,
    exit_status,
    load_recipes,
    run_job,
    start_recipe_distribution,
)
from edgeopt.components.search import cli_commands as search_commands
from edgeopt.components.tracking import cli_commands as tracking_commands
from edgeopt.pipelines import cli_commands as pipeline_commands

EXIT_UNEXPECTED = 1
EXIT_USAGE_ERROR = 2  # a typed error: usage, config, input (nothing ran yet) or output folder (disk full, locked)
DEMO_CALIBRATION_SIZE = 300

logger = logging.getLogger("edgeopt")


def default_recipe_paths() -> list[Path]:
    folder = resources.files("edgeopt.configs") / "recipes"
    return sorted(Path(str(path)) for path in folder.iterdir() if path.name.endswith(".yaml"))


def _evaluation_config(args):
    from edgeopt.components.evaluation.config import EvaluationConfig

    return EvaluationConfig(num_threads=args.threads, timed_runs=args.timed_runs, warmup_runs=args.warmup_runs)


def _finish(report: dict, out: Path, args) -> int:
    from edgeopt.components.recipes.report_markdown import render_table

    print(render_table(report))
    print(f"\nwrote {out / 'report.json'} and {out / 'report.md'}")
    for candidate in report["candidates"]:
        if candidate.get("error"):
            print(
                f"recipe {candidate['recipe']} failed in step {candidate.get('failed_step')}: {candidate['error']}",
                file=sys.stderr,
            )
    return exit_status(report, args.tracking_job, fail_on_gate=args.fail_on_gate)


def prepare_demo(args):
    args.recipes = load_recipes(args.recipe or default_recipe_paths())
    start_recipe_distribution(args.recipes)
    args.sweep = parse_sizes(args.sweep_sizes, "--sweep-sizes") if args.sweep_sizes else []


def prepare_optimize(args):
    from edgeopt.components._shared.model_io import resolve_model_path

    resolve_model_path(args.model)
    args.recipes = load_recipes(args.recipe)
    start_recipe_distribution(args.recipes)  # before the data is read: see its docstring
    args.data = checked_training_data(
        args.examples, data_spec=args.data_spec, module_file=args.module_file, non_finite=args.non_finite
    )
    if args.calibration:
        from edgeopt.components.calibration.core import load_calibration_inputs

        load_calibration_inputs(args.calibration, args.data)


def run_demo(args) -> int:
    from edgeopt.components._shared.data import load_training_data
    from edgeopt.components.calibration.config import CalibrationConfig
    from edgeopt.components.calibration.core import MANIFEST_FILE, sample_calibration_data
    from edgeopt.components.calibration.sweep import calibration_sweep
    from edgeopt.components.demo.digits import digits_data_spec, train_digits_baseline, write_digits_examples
    from edgeopt.components.recipes.core import optimize, write_report

    out = Path(args.out)
    examples, baseline = out / "data", out / "baseline_model"
    # Both are published atomically, so an existing folder is complete and is reused (and recorded as reused).
    reused = [str(path) for path in (examples, baseline) if path.exists() and not args.retrain]
    if args.retrain or not examples.exists():
        logger.info(f"writing scikit-learn digits as TFX Examples to {examples}")
        write_digits_examples(examples)
    if args.retrain or not baseline.exists():
        logger.info(f"training the digits CNN baseline into {baseline}")
        train_digits_baseline(examples, baseline)
    recipes = args.recipes
    data = load_training_data(examples, data_spec=digits_data_spec())
    calibration = CalibrationConfig(size=DEMO_CALIBRATION_SIZE, label_key="label")
    logger.info(f"sampling {calibration.size} calibration examples with Apache Beam into {out / 'calibration'}")
    sample_calibration_data(examples, calibration, out / "calibration")
    report = optimize(
        baseline,
        recipes,
        out,
        data=data,
        evaluation=_evaluation_config(args),
        calibration_dir=out / "calibration",
        champion_tflite=args.tracking_job.champion_tflite(),
    )
    report["reused"] = reused
    if args.sweep:
        logger.info(f"calibration-size sweep: {args.sweep}")
        report["calibration_sweep"] = calibration_sweep(
            baseline,
            examples,
            args.sweep,
            out / "calibration-sweep",
            data=data,
            calibration=calibration,
            baseline_accuracy=report["baseline"]["accuracy"],
        )
    write_report(report, out)
    args.tracking_job.log_report(report, examples=examples, calibration_manifest=out / "calibration" / MANIFEST_FILE)
    return _finish(report, out, args)


def run_optimize(args) -> int:
    from edgeopt.components.calibration.core import MANIFEST_FILE
    from edgeopt.components.recipes.core import optimize

    out = Path(args.out)
    report = optimize(
        args.model,
        args.recipes,
        out,
        data=args.data,
        evaluation=_evaluation_config(args),
        calibration_dir=args.calibration,
        champion_tflite=args.tracking_job.champion_tflite(),
        allow_unsafe=args.allow_unsafe_model,
    )
    manifest = Path(args.calibration) / MANIFEST_FILE if args.calibration else None
    args.tracking_job.log_report(report, examples=args.examples, calibration_manifest=manifest)
    return _finish(report, out, args)


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
    parser.add_argument(
        "-q", "--quiet", dest="verbose", action="store_const", const=0, default=2, help="warnings and errors only"
    )
    parser.add_argument(
        "--fail-on-gate", action="store_true", help=f"exit {EXIT_GATE_FAILED} when a candidate misses its gate (CI)"
    )
    parser.add_argument(
        "-v", "--verbose", dest="debug", action="store_true", default=argparse.SUPPRESS, help="log details, tracebacks"
    )


#: Packages whose versions `edgeopt --version` prints beside edgeopt's (metadata only: nothing is imported).
VERSION_PACKAGES = (
    "edgeopt", "tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "ai-edge-quantizer",
    "tfx", "kfp", "mlflow", "apache-beam", "optuna",
)  # fmt: skip


def version_text() -> str:
    from edgeopt.components._shared.hardware import package_versions

    versions = package_versions(VERSION_PACKAGES)
    lines = [f"edgeopt {versions.pop('edgeopt') or 'not installed'}"]
    lines += [f"  {name} {version or '-'}" for name, version in versions.items()]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeopt",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps --version's lines
        epilog=f"exit status: 0 ok, {EXIT_USAGE_ERROR} bad input (nothing ran) or output error (disk full), "
        f"{EXIT_RECIPE_FAILED} a recipe failed, "
        f"{EXIT_GATE_FAILED} a gate failed (--fail-on-gate), {EXIT_SIGINT}/{EXIT_SIGTERM} interrupted/terminated",
    )
    parser.add_argument("--version", action="version", version=version_text(), help="versions of edgeopt and its stack")
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
    demo.set_defaults(handler=run_demo, prepare=prepare_demo)

    optimize = commands.add_parser("optimize", help="run recipes on your own Keras model")
    add_model_and_data_args(optimize)
    optimize.add_argument("--recipe", action="append", required=True, help="recipe YAML (repeatable)")
    optimize.add_argument("--out", required=True, help="output folder for candidates and reports")
    optimize.add_argument("--calibration", help="calibration artifact from `edgeopt sample` for int8/16x8 steps")
    optimize.add_argument(
        "--non-finite",
        choices=("drop", "fail"),
        default="drop",
        help="examples holding NaN or Inf: drop and count them in report.json (default), or fail the job",
    )
    optimize.add_argument(
        "--allow-unsafe-model", action="store_true", help="accept .h5 files and Lambda layers (they run stored code)"
    )
    _add_measurement_args(optimize)
    tracking_commands.add_tracking_args(optimize)
    optimize.set_defaults(handler=run_optimize, prepare=prepare_optimize)

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


def _run(args) -> int:
    if getattr(args, "prepare", None):  # a job command: validate, lock --out, then run tracked
        return run_job(args, tracking_commands.run_tracked)
    return tracking_commands.run_tracked(args)


def _not_edgeopt(record: logging.LogRecord) -> bool:
    return not record.name.startswith("edgeopt")


def _without_traceback(record: logging.LogRecord) -> bool:
    """Libraries (Beam, MLflow) log tracebacks with their errors; without -v the terminal gets the message only."""
    record.exc_info, record.exc_text, record.stack_info = None, None, None
    return True


def main(argv=None) -> int:
    parser = build_parser()
    parser.add_argument("-v", "--verbose", dest="debug", action="store_true", help="log details and tracebacks")
    parser.add_argument("-q", "--quiet", dest="quiet", action="store_true", help="warnings and errors only")
    args = parser.parse_args(argv)
    quiet = getattr(args, "quiet", False) or getattr(args, "verbose", None) == 0
    verbosity = VERBOSE if args.debug else QUIET if quiet else 0
    # Libraries log through the root logger (warnings only, tracebacks with -v); edgeopt's own lines, and silencing
    # TensorFlow's, are console.configure_logging's.
    root = logging.getLogger()
    existing = list(root.handlers)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="[edgeopt] %(levelname)s %(name)s: %(message)s"
    )
    for handler in root.handlers:
        if handler not in existing:
            handler.addFilter(_not_edgeopt)  # edgeopt's lines have their own handler (configure_logging)
    configure_logging(verbosity)
    if not args.debug:
        for handler in root.handlers:
            handler.addFilter(_without_traceback)
    native = contextlib.ExitStack()
    if not args.debug:  # C++ notices (oneDNN, CUDA, converter) go to a side file; -v shows them in place
        native_log = native.enter_context(native_output_to())
    with native:
        status = _main(args)
    if not args.debug:
        if status not in (0, None):
            print(f"edgeopt {args.command}: TensorFlow's native log is in {native_log}", file=sys.stderr)
        else:
            native_log.unlink(missing_ok=True)
    return status


def _main(args) -> int:
    try:
        with sigterm_raises():
            return _run(args)
    except EdgeoptError as err:
        logger.debug("edgeopt %s failed", args.command, exc_info=True)
        print(f"edgeopt {args.command}: error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", EXIT_USAGE_ERROR)
    except JobTerminatedError as err:
        print(f"edgeopt {args.command}: stopped: {err}", file=sys.stderr)
        return EXIT_SIGTERM
    except KeyboardInterrupt:
        print(f"edgeopt {args.command}: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except Exception as err:
        logger.debug("edgeopt %s failed unexpectedly", args.command, exc_info=True)
        print(
            f"edgeopt {args.command}: unexpected error: {type(err).__name__}: {err} (-v shows details)", file=sys.stderr
        )
        return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
