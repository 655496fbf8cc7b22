"""Run recipes: every candidate starts from a fresh load of the baseline, chains its steps through folders on
disk, and ends as a measured, gated .tflite. The result is report.json's contract."""

import json
import logging
import os
import shutil
import time
import traceback
from pathlib import Path

from edgeopt.components._shared.atomic import atomic_output_file
from edgeopt.components._shared.data import TrainingData
from edgeopt.components._shared.errors import EdgeoptError
from edgeopt.components._shared.hardware import describe_hardware, speedup_significance
from edgeopt.components._shared.model_format import check_model_file, check_tflite_file
from edgeopt.components._shared.model_io import model_digest, resolve_model_path
from edgeopt.components._shared.progress import current as current_progress
from edgeopt.components._shared.report_model import validate_report
from edgeopt.components._shared.streaming import Inputs, count
from edgeopt.components._shared.support import check_recipe, check_recipes
from edgeopt.components._shared.tflite_inspect import non_weight_bytes_share
from edgeopt.components.calibration.core import load_calibration_inputs, read_manifest
from edgeopt.components.evaluation.config import EvaluationConfig
from edgeopt.components.evaluation.core import Evaluation, evaluate_tflite, measure_candidate
from edgeopt.components.evaluation.selection import selection_record
from edgeopt.components.export.config import ExportConfig
from edgeopt.components.export.core import export_tflite
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.recipes.job_notes import job_notes
from edgeopt.components.recipes.report_markdown import render_markdown
from edgeopt.components.registry import TECHNIQUES

logger = logging.getLogger(__name__)

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
BASELINE_DIR = "baseline"


def _outcome(record: dict) -> str:
    if record.get("error"):
        return f"failed in {record.get('failed_step') or 'a step'}"
    return "gate passed" if record["gate"]["passed"] else "gate failed: " + "; ".join(record["gate"]["reasons"])


def label_speedup(record: dict, baseline_latency: dict) -> dict:
    """Adds `speedup_significant` (and, when false, `speedup_note`) to a measured candidate: a speedup under the
    timer's resolution or within the latencies' spread is not a measurement (components/_shared/hardware.py)."""
    latency = record.get("latency_ms") or {}
    if latency.get("p50") is None:
        return record
    significant, why = speedup_significance(baseline_latency, latency)
    record["speedup_significant"] = significant
    if not significant:
        record["speedup_note"] = why
    return record


def run_recipe(
    model_path: str | os.PathLike,
    recipe: RecipeConfig,
    output_dir: str | os.PathLike,
    *,
    data: TrainingData,
    calibration_inputs: Inputs | None = None,
    allow_unsafe: bool = False,
    reused_steps: list[dict] = (),
) -> tuple[str, list[dict]]:
    """Runs a recipe's steps in order, each loading the previous step's output fresh from disk.

    `reused_steps` are the records of the recipe's first training steps as an earlier run made them (a search trial
    whose training an earlier trial already ran): their models are taken from disk, not trained again.

    Returns the final .tflite path and one record per step (technique, output, result; `reused` when taken).

    Raises:
      UnsupportedModelError: the model cannot run the recipe (support.py), before any step starts.
    """
    check_recipe(check_model_file(model_path, allow_unsafe=allow_unsafe), recipe)  # every face refuses before work
    output_dir = Path(output_dir)
    current = Path(model_path)
    records = []
    chain = [step.technique for step in recipe.steps]
    reused_chain = [record["technique"] for record in reused_steps]
    if reused_chain != chain[: len(reused_chain)] or len(reused_chain) == len(chain):
        raise ValueError(f"reused step records {reused_chain} are no training prefix of {recipe.technique_chain}")
    for index, step in enumerate(recipe.steps):
        technique = TECHNIQUES[step.technique]
        if index < len(reused_steps):
            records.append({**reused_steps[index], "reused": True})
            current = Path(reused_steps[index]["output"])
            continue
        step_dir = output_dir / f"{index:02d}_{step.technique}"
        kwargs = {
            "data": data,
            "allow_unsafe": allow_unsafe if index == 0 else False,
            **technique.step_kwargs(calibration_inputs=calibration_inputs),
        }
        started = time.perf_counter()
        try:
            result = technique.function()(current, step.config, step_dir, **kwargs)
        except Exception as err:
            err.failed_step = step_dir.name  # report.json names the step that failed
            raise
        records.append(
            {
                "technique": step.technique,
                "output": str(step_dir),
                "seconds": round(time.perf_counter() - started, 3),
                "result": result.to_dict(),
            }
        )
        current = Path(result.tflite_path) if technique.produces_tflite else step_dir
    return str(current), records


def evaluate_baseline(
    model_path, output_dir, *, data: TrainingData, evaluation: EvaluationConfig, allow_unsafe: bool = False
) -> tuple[Evaluation, dict]:
    """Exports the float baseline as .tflite (the reference every ratio uses) and measures it."""
    conversion = export_tflite(
        model_path, ExportConfig(), Path(output_dir) / BASELINE_DIR, data=data, allow_unsafe=allow_unsafe
    )
    return evaluate_tflite(conversion.tflite_path, data, evaluation), conversion.to_dict()


def baseline_record(baseline: Evaluation, conversion: dict, model_path: Path, model_digest: str) -> dict:
    """report.json's `baseline`: the float .tflite's numbers and the input model it was exported from."""
    return {
        "tflite_path": baseline.tflite_path,
        "tflite_bytes": baseline.tflite_bytes,
        "gzip_bytes": baseline.gzip_bytes,
        "accuracy": baseline.accuracy,
        "metric": baseline.metric,
        "latency_ms": baseline.latency_ms,
        "max_abs_diff": conversion["max_abs_diff"],
        "non_weight_bytes_share": non_weight_bytes_share(baseline.tflite_path),
        "model_path": str(model_path),
        "model_digest": model_digest,
        "num_eval_examples": baseline.num_eval_examples,
    }


def candidate_record(
    recipe: RecipeConfig,
    evaluation: Evaluation,
    baseline: Evaluation,
    steps: list[dict],
    champion: Evaluation | None = None,
) -> dict:
    conversion = steps[-1]["result"]
    return {
        "recipe": recipe.name,
        "steps": [step.technique for step in recipe.steps],
        **measure_candidate(evaluation, baseline, recipe.gate, champion, conversion),
        "config": recipe.to_dict(),
        "step_records": steps,
    }


def failed_record(recipe: RecipeConfig, error: Exception) -> dict:
    return {
        "recipe": recipe.name,
        "steps": [step.technique for step in recipe.steps],
        "tflite_path": None,
        "tflite_bytes": None,
        "gzip_bytes": None,
        "size_ratio": None,
        "gzip_ratio": None,
        "accuracy": None,
        "accuracy_drop": None,
        "metric": None,
        "metric_delta": None,
        "metric_delta_relative": None,
        "latency_ms": {"p50": None, "p90": None},
        "speedup": None,
        "max_abs_diff": None,
        "gate": {"passed": False, "reasons": [f"{type(error).__name__}: {error}"]},
        "config": recipe.to_dict(),
        "error": f"{type(error).__name__}: {error}",
        "failed_step": getattr(error, "failed_step", "evaluate"),
        "error_type": type(error).__name__,
        "error_message": str(error),
    }


def optimize(
    model_path: str | os.PathLike,
    recipes: list[RecipeConfig],
    output_dir: str | os.PathLike,
    *,
    data: TrainingData,
    evaluation: EvaluationConfig | None = None,
    calibration_dir: str | os.PathLike | None = None,
    calibration_inputs: Inputs | None = None,
    champion_tflite: str | os.PathLike | None = None,
    allow_unsafe: bool = False,
    selection=None,
) -> dict:
    """Runs every recipe on `model_path`, measures each candidate against the float TFLite baseline, and writes
    report.json and report.md into `output_dir`.

    Calibrated quantization uses the calibration artifact in `calibration_dir` (from `sample_calibration_data`)
    when given, else `calibration_inputs`, else a seeded random slice of the training split.

    With `champion_tflite` (the model now in production), the champion is measured on the same eval data in the
    same run and every gate also checks the candidate against it.

    A recipe that fails is reported with its error and a failed gate; the others still run. The input model is
    never modified (its digest is checked at the end). `selection` (a SelectionConfig or dict; default: smallest
    gzip among passed) is the winner rule report.json records with its pick.

    Returns:
      The report (the content of report.json).
    """
    evaluation = evaluation or EvaluationConfig()
    progress = current_progress()
    inspection = check_model_file(model_path, allow_unsafe=allow_unsafe)  # before anything is created
    refused = check_recipes(inspection, recipes)  # recipes the model cannot run fail before any training
    if champion_tflite:
        check_tflite_file(champion_tflite)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    names = [recipe.name for recipe in recipes]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise EdgeoptError(f"recipe names must be unique in one job, repeated: {duplicates}; rename one of them")
    model_path = resolve_model_path(model_path)
    digest_before = model_digest(model_path)

    logger.info("baseline: exporting %s as float .tflite and measuring it", model_path)
    baseline, baseline_conversion = evaluate_baseline(
        model_path, output_dir, data=data, evaluation=evaluation, allow_unsafe=allow_unsafe
    )
    champion = evaluate_tflite(champion_tflite, data, evaluation) if champion_tflite else None
    calibration = {"source": "training split, seeded random slice per quantize step"}
    if calibration_dir is not None:
        calibration_inputs = load_calibration_inputs(calibration_dir, data)
        manifest = read_manifest(calibration_dir)
        calibration = {
            "source": "calibration artifact",
            "path": str(calibration_dir),
            "count": manifest["count"],
            "data_sha256": manifest["data_sha256"],
            "per_class": manifest["per_class"],
        }
    elif calibration_inputs is not None:
        calibration = {"source": "caller-provided inputs", "count": count(calibration_inputs)}
    candidates = []
    for position, recipe in enumerate(recipes, start=1):
        progress.recipe(position, len(recipes), recipe.name, recipe.technique_chain)
        if recipe.name in refused:
            logger.warning("recipe %s refused: %s", recipe.name, refused[recipe.name])
            progress.recipe_done(recipe.name, "refused")
            candidates.append(failed_record(recipe, refused[recipe.name]))
            continue
        try:
            tflite_path, steps = run_recipe(
                model_path,
                recipe,
                output_dir / "candidates" / recipe.name,
                data=data,
                calibration_inputs=calibration_inputs,
                allow_unsafe=allow_unsafe,
            )
            evaluated = evaluate_tflite(tflite_path, data, evaluation)
            record = label_speedup(candidate_record(recipe, evaluated, baseline, steps, champion), baseline.latency_ms)
        except EdgeoptError as err:
            logger.warning("recipe %s failed: %s", recipe.name, err)
            record = failed_record(recipe, err)
        except Exception as err:  # an unexpected failure of one recipe must not lose the others' results
            logger.warning("recipe %s failed unexpectedly: %s: %s (details: -v)", recipe.name, type(err).__name__, err)
            logger.debug("recipe %s failed:\n%s", recipe.name, traceback.format_exc())
            record = failed_record(recipe, err)
        progress.recipe_done(recipe.name, _outcome(record))
        candidates.append(record)

    if model_digest(model_path) != digest_before:
        raise EdgeoptError(f"the input model at {model_path} changed during the job; this is a bug, please report it")
    report = {
        "baseline": baseline_record(baseline, baseline_conversion, model_path, digest_before),
        "evaluation": evaluation.to_dict(),
        "hardware": describe_hardware(evaluation.num_threads),
        "calibration": calibration,
        "candidates": candidates,
        **job_notes(recipes, data, calibration.get("count")),
    }
    if champion is not None:
        report["champion"] = champion.to_dict()
    report["selection"] = selection_record(candidates, selection)  # the winner rule (SelectionConfig) and its pick
    write_report(report, output_dir)
    return report


def write_report(report: dict, output_dir: str | os.PathLike):
    """Writes report.json (checked against the typed contract first) and report.md, each atomically."""
    validate_report(report)
    output_dir = Path(output_dir)
    with atomic_output_file(output_dir / REPORT_JSON) as staging:
        staging.write_text(json.dumps(report, indent=2))
    with atomic_output_file(output_dir / REPORT_MD) as staging:
        staging.write_text(render_markdown(report))


def report_from_evaluations(records: list[dict], model_dir: str | os.PathLike) -> dict:
    """A report.json-shaped dict from per-candidate evaluation records (the TFX and KFP evaluate steps write one
    each, with the baseline inside), so a pipeline run is logged exactly like a CLI job."""
    if not records:
        raise EdgeoptError("no candidate evaluations to report; the pipeline ran no recipe")
    records = sorted(records, key=lambda record: record["recipe"])
    baseline = dict(records[0]["baseline"], model_path=str(model_dir), model_digest=model_digest(model_dir))
    candidates = [{key: value for key, value in record.items() if key != "baseline"} for record in records]
    return validate_report({"baseline": baseline, "candidates": candidates})


PUBLISHED_FILES = ("model.tflite", "edgeopt_recipe.json", "edgeopt_steps.json")


def clear_published_model(model_dir: str | os.PathLike, steps_dir: str | os.PathLike):
    """A retried attempt writing to the same folder (a KFP retry reuses the output URI) starts clean: an earlier
    attempt's model.tflite must not survive a failed attempt and pass for its result."""
    model_dir, steps_dir = Path(model_dir), Path(steps_dir)
    for name in PUBLISHED_FILES:
        (model_dir / name).unlink(missing_ok=True)
    if steps_dir.is_dir():
        shutil.rmtree(steps_dir)


def run_recipe_to_folder(
    model_path: str | os.PathLike,
    recipe: RecipeConfig,
    steps_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    *,
    data: TrainingData,
    calibration_dir: str | os.PathLike | None = None,
) -> list[dict]:
    """Runs a recipe with each step's model under `steps_dir`, then publishes the final model.tflite, the recipe and
    the step records in `model_dir` (what a pipeline serves or pushes; `steps_dir` may lie inside it). Each file is
    renamed into place when complete, model.tflite last. Returns the step records."""
    clear_published_model(model_dir, steps_dir)
    calibration_inputs = load_calibration_inputs(calibration_dir, data) if calibration_dir else None
    tflite, steps = run_recipe(model_path, recipe, steps_dir, data=data, calibration_inputs=calibration_inputs)
    model_dir = Path(model_dir)
    with atomic_output_file(model_dir / "edgeopt_recipe.json") as staging:
        staging.write_text(recipe.to_json())
    with atomic_output_file(model_dir / "edgeopt_steps.json") as staging:
        staging.write_text(json.dumps(steps, indent=2, default=str))
    with atomic_output_file(model_dir / "model.tflite") as staging:
        shutil.copy2(tflite, staging)
    return steps
