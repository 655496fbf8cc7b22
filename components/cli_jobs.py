"""The life of a CLI job (`optimize`, `demo`): validate every input, then lock the output folder, clear an earlier
attempt's outputs, run inside one tracked job, and turn the report into an exit status.

Nothing is created before the inputs are validated: a typo in a recipe never leaves an `--out` or an `mlflow.db`.
"""

import logging
import os
import shutil
from pathlib import Path

import yaml

from edgeopt.components._shared.distribution import is_chief
from edgeopt.components._shared.errors import ConfigError, DataError, EdgeoptError
from edgeopt.components._shared.job_lock import check_output_writable, output_dir_lock, output_errors_as_typed

# Splits up to this size are read through before a job starts (catching a shard truncated anywhere); larger ones
# only have their first batch read, so the check never costs a full pass over a huge split.
PREFLIGHT_FULL_READ_BYTES = 512 * 2**20
EXIT_RECIPE_FAILED = 3  # the job ran, and at least one recipe errored
EXIT_GATE_FAILED = 4  # with --fail-on-gate: no recipe errored, and at least one missed its gate

# What a job writes into --out and a rerun replaces. The tracking store (mlflow.db, mlartifacts/, mlflow-spool/)
# and the demo's data/ and baseline_model/ (reused on purpose, recorded in report.json) are kept.
INPUT_FLAGS = ("--model", "--examples", "--calibration", "--data-spec", "--module-file")
JOB_OUTPUTS = ("baseline", "candidates", "calibration", "calibration-sweep", "champion", "report.json", "report.md")

logger = logging.getLogger(__name__)


def load_recipes(paths) -> list:
    """Every recipe file, validated; a missing file or a YAML syntax error is a ConfigError naming the file."""
    from edgeopt.components.recipes.config import RecipeConfig

    recipes = []
    for path in paths:
        if not Path(path).is_file():
            raise ConfigError(
                f"recipe file {path} does not exist; pass a recipe YAML path (`edgeopt recipes` lists the built-in "
                "ones, under configs/recipes/)"
            )
        try:
            recipes.append(RecipeConfig.from_yaml(path))
        except yaml.YAMLError as err:
            where = getattr(err, "problem_mark", None)
            line = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"{path} is not valid YAML{line} ({problem}); fix its syntax") from err
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path} is not a text YAML file; pass a recipe YAML") from err
    return recipes


def start_recipe_distribution(recipes) -> None:
    """Resolves every fine-tuning step's `distribution` now (a typed error before any work) and, under a TF_CONFIG
    cluster, creates the MultiWorkerMirroredStrategy before TensorFlow runs its first operation (reading the data
    comes next), which is when it must configure its collective ops."""
    from edgeopt.components._shared.distribution import start_distribution

    start_distribution(step.config for recipe in recipes for step in recipe.steps)


def checked_training_data(examples, *, data_spec=None, module_file=None, non_finite: str = "drop"):
    """TrainingData whose train and eval splits were checked, so a data error that would fail every recipe (a
    missing, empty, truncated or garbage split; records that are not tf.Examples; an input_fn that breaks) fails
    the job before any recipe runs, as a DataError.

    A split whose files hold up to PREFLIGHT_FULL_READ_BYTES is streamed through once (a counting pass, cached for
    the job's steps per epoch; memory stays one batch); a larger one has its first batch read, so a job on a huge
    split does not read it all before starting (a shard broken further in fails as a DataError when it is read)."""
    import dataclasses

    from edgeopt.components._shared.data import load_training_data, split_files

    try:
        data = load_training_data(examples, data_spec=data_spec, module_file=module_file)
        data = dataclasses.replace(data, non_finite=non_finite)
        _check_single_input(data)
        for split in (data.train_split, data.eval_split):
            if sum(os.path.getsize(path) for path in split_files(data.examples, split)) <= PREFLIGHT_FULL_READ_BYTES:
                data.split_size(split)
            else:
                data.take(split, 1)
    except EdgeoptError:
        raise
    except Exception as err:  # user input_fn code and TF parsing raise anything; the job must name the data
        logger.debug("reading the examples failed", exc_info=True)
        raise DataError(
            f"cannot read the examples in {examples} ({type(err).__name__}: {err}); check the Examples folder and "
            "the data spec or input_fn"
        ) from err
    return data


def _check_single_input(data):
    """A model input given as a tuple or list of tensors would be stacked into one array and fail much later,
    at the first conversion, as a shape mismatch; say what is wrong before anything runs."""
    from edgeopt.components._shared.data import split_files

    features = data.dataset_from_files(split_files(data.examples, data.train_split), 1).element_spec[0]
    if isinstance(features, tuple | list) and len(features) > 1:
        raise DataError(
            f"{data.description} yields the model inputs as a {type(features).__name__} of {len(features)} tensors; "
            "yield one tensor, or a dict of named features keyed by the model's input names"
        )


def clear_previous_outputs(out: Path) -> list[str]:
    """Removes an earlier attempt's job outputs from `out` (under the job's lock), so no stale candidate survives
    beside new results. Returns what was removed."""
    removed = []
    for name in JOB_OUTPUTS:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(name)
    for partial in out.glob(".*.partial-*"):  # staging left by a killed job
        shutil.rmtree(partial) if partial.is_dir() else partial.unlink()
    if removed:
        logger.info("removed an earlier attempt's outputs from %s: %s", out, removed)
    return removed


def check_inputs_outside_outputs(out: Path, inputs: dict[str, str | None]):
    """An input inside what a rerun replaces (e.g. --model OUT/candidates/x/...) would be deleted before it is read.

    Raises:
      ConfigError: naming the flag, the path and the fix.
    """
    replaced = [(out / name).resolve() for name in JOB_OUTPUTS]
    for flag, path in inputs.items():
        if not path:
            continue
        path = Path(path).resolve()
        for output in replaced:
            if path == output or output in path.parents:
                raise ConfigError(
                    f"{flag} {path} lies in {output}, which this job replaces in --out {out}; copy it elsewhere or "
                    "pass another --out"
                )


def run_job(args, run_tracked) -> int:
    """Runs a job command's handler once its inputs are validated: checks --out can be written, holds its lock,
    clears an earlier attempt, and runs `run_tracked(args)` (the tracked job around the handler)."""
    out = Path(args.out)
    inputs = {flag: getattr(args, flag.strip("-").replace("-", "_"), None) for flag in INPUT_FLAGS}
    check_inputs_outside_outputs(out, inputs)
    args.prepare(args)  # validates everything the job reads; creates nothing
    if not is_chief():
        return _run_as_worker(args, run_tracked)
    check_output_writable(out)
    with output_dir_lock(out):
        args.cleared_outputs = clear_previous_outputs(out)
        handler = args.handler

        def guarded(arguments):
            with output_errors_as_typed():
                return handler(arguments)

        args.handler = guarded
        return run_tracked(args)


def _run_as_worker(args, run_tracked) -> int:
    """A non-chief worker of a TF_CONFIG cluster runs the same job as the chief (every worker must run the same
    collectives: variable creation, training, saving), but into a private --out deleted at the end, without the
    output folder's lock and without MLflow: only the chief publishes a result and clears an earlier attempt."""
    from edgeopt.components._shared.distribution import worker_output_dir

    with worker_output_dir(args.out) as private:
        args.out, args.no_tracking, args.cleared_outputs = str(private), True, []
        return run_tracked(args)


def exit_status(report: dict, job, *, fail_on_gate: bool) -> int:
    """0, EXIT_RECIPE_FAILED or EXIT_GATE_FAILED from a finished report; a non-zero status also ends the job's
    parent run FAILED with the reason."""
    candidates = report["candidates"]
    errored = [candidate["recipe"] for candidate in candidates if candidate.get("error")]
    missed = [c["recipe"] for c in candidates if not c.get("error") and not c["gate"]["passed"]]
    if errored:
        job.mark_failed(f"{len(errored)} of {len(candidates)} recipes failed: {', '.join(errored)}")
        return EXIT_RECIPE_FAILED
    if missed and fail_on_gate:
        job.mark_failed(f"--fail-on-gate: {len(missed)} of {len(candidates)} missed their gate: {', '.join(missed)}")
        return EXIT_GATE_FAILED
    return 0
