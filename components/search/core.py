"""Budgeted search: Optuna proposes technique chains as RecipeConfig objects, each trial runs one from a fresh load
of the baseline, and the winner is the smallest (or fastest) candidate within the accuracy budget."""

import csv
import io
import json
import logging
import os
import time
import traceback
from pathlib import Path

import numpy as np

from edgeopt.components._shared.atomic import atomic_output_file
from edgeopt.components._shared.data import TrainingData
from edgeopt.components._shared.errors import ConfigError, EdgeoptError
from edgeopt.components._shared.model_io import model_digest, resolve_model_path
from edgeopt.components._shared.tflite_inspect import non_weight_bytes_share
from edgeopt.components._shared.training import extra_fit_callbacks
from edgeopt.components.calibration.core import load_calibration_inputs
from edgeopt.components.evaluation.config import GateConfig
from edgeopt.components.evaluation.core import evaluate_tflite
from edgeopt.components.evaluation.selection import SelectionConfig, select_winner, selection_record
from edgeopt.components.quantization.config import AEQ_MODES, QuantizationMode
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.recipes.core import (
    candidate_record,
    evaluate_baseline,
    failed_record,
    run_recipe,
    write_report,
)
from edgeopt.components.search.config import ChainFamily, Objective, SearchConfig
from edgeopt.components.search.trial_pruning import ReportAccuracyDrop
from edgeopt.components.tracking.pareto import pareto_front, plot_pareto

logger = logging.getLogger(__name__)

STUDY_DB = "search.db"
PARETO_JSON = "pareto.json"
PARETO_PNG = "pareto.png"
TRIALS_CSV = "trials.csv"
TRIALS_MD = "trials.md"
TRIALS_DIR = "trials"
#: Trial user attribute holding the trial's report.json candidate record, so a resumed study rebuilds its report
#: from storage without re-running finished trials.
CANDIDATE_ATTR = "candidate"
#: The trial constraint: accuracy drop minus max_accuracy_drop (<= 0 is within budget; inf for failed trials).
CONSTRAINT_KEY = "accuracy_drop_over_budget"
WINNER_RULE = (
    "among trials that passed their gate (accuracy drop within max_accuracy_drop), the smallest on the first "
    "objective; ties go to the higher accuracy, then the smaller gzip size, then the earlier trial"
)


def _optuna():
    try:
        import optuna
    except ImportError as err:  # the `search` extra
        raise ConfigError("edgeopt search needs Optuna: pip install 'edgeopt[search]'") from err
    return optuna


def objective_value(candidate: dict, objective: Objective) -> float | None:
    """The number a trial minimises, read from its report.json candidate record (None for a failed trial)."""
    if objective == Objective.LATENCY_P50:
        return (candidate.get("latency_ms") or {}).get("p50")
    return candidate.get(objective.value)


def suggest_recipe(trial, config: SearchConfig) -> RecipeConfig:
    """Draws one technique chain and its hyperparameters from the search space as a validated RecipeConfig."""
    family = ChainFamily(trial.suggest_categorical("family", [family.value for family in config.families]))
    epochs = lambda name: trial.suggest_int(name, config.min_epochs, config.max_epochs)  # noqa: E731
    steps: list[dict] = []
    if family in (ChainFamily.PRUNE, ChainFamily.PRUNE_CLUSTER):
        block = trial.suggest_categorical("block_size", [f"{rows}x{cols}" for rows, cols in config.block_sizes])
        sparsity = trial.suggest_float("target_sparsity", config.min_sparsity, config.max_sparsity, step=0.05)
        steps.append(
            {
                "technique": "prune",
                "config": {
                    "target_sparsity": round(sparsity, 4),
                    "block_size": [int(part) for part in block.split("x")],
                    "epochs": epochs("prune_epochs"),
                    "seed": config.seed,
                },
            }
        )
    if family in (ChainFamily.CLUSTER, ChainFamily.PRUNE_CLUSTER):
        steps.append(
            {
                "technique": "cluster",
                "config": {
                    "number_of_clusters": trial.suggest_int(
                        "clusters", config.min_clusters, config.max_clusters, log=True
                    ),
                    "centroid_init": trial.suggest_categorical(
                        "centroid_init", [i.value for i in config.centroid_inits]
                    ),
                    "preserve_sparsity": family == ChainFamily.PRUNE_CLUSTER,
                    "epochs": epochs("cluster_epochs"),
                    "seed": config.seed,
                },
            }
        )
    mode = trial.suggest_categorical("mode", [mode.value for mode in config.quantize_modes])
    quantize: dict = {"mode": mode}
    if QuantizationMode(mode) not in AEQ_MODES:  # AI Edge Quantizer chooses its own scales
        granularities = [g.value for g in config.dense_granularities]
        quantize["dense_granularity"] = trial.suggest_categorical("dense_granularity", granularities)
    if config.max_float_layers and mode == "full_integer":
        float_top_k = trial.suggest_int("float_top_k", 0, config.max_float_layers)
        if float_top_k:
            quantize["float_top_k"] = float_top_k
    if config.max_int16x8_layers and mode == QuantizationMode.AEQ_STATIC_INT8:
        int16x8_top_k = trial.suggest_int("int16x8_top_k", 0, config.max_int16x8_layers)
        if int16x8_top_k:
            quantize["int16x8_top_k"] = int16x8_top_k
    steps.append({"technique": "quantize", "config": quantize})
    return RecipeConfig(
        name=f"trial_{trial.number:04d}",
        description=f"search trial {trial.number}: {family.value}",
        steps=steps,
        gate=GateConfig(max_accuracy_drop=config.max_accuracy_drop),
    )


def _sampler(config: SearchConfig):
    # Both samplers read the constraint every trial sets (budget excess, <= 0 feasible) and prefer feasible trials.
    optuna = _optuna()
    if len(config.objectives) == 1:
        return optuna.samplers.TPESampler(seed=config.seed)
    return optuna.samplers.NSGAIISampler(seed=config.seed)


def prunes_trials(config: SearchConfig) -> bool:
    # Optuna prunes single-objective studies only (trial.should_prune is not defined for several objectives).
    return config.prune_trials_above_drop is not None and len(config.objectives) == 1


def _pruner(config: SearchConfig):
    optuna = _optuna()
    if not prunes_trials(config):
        return optuna.pruners.NopPruner()
    # n_warmup_steps=1: the first epoch of a pruning ramp or a fresh clustering often dips before it recovers.
    return optuna.pruners.ThresholdPruner(upper=config.prune_trials_above_drop, n_warmup_steps=1)


def open_study(config: SearchConfig, output_dir: str | os.PathLike):
    """Creates, or loads to resume, the study in OUTPUT_DIR/search.db (SQLite through Optuna's RDBStorage).

    Trials a killed run left RUNNING are marked FAIL (their outputs may be partial) and do not count as done.
    """
    optuna = _optuna()
    storage = optuna.storages.RDBStorage(f"sqlite:///{Path(output_dir).resolve() / STUDY_DB}")
    study = optuna.create_study(
        study_name=config.study_name,
        storage=storage,
        load_if_exists=True,
        sampler=_sampler(config),
        pruner=_pruner(config),
        directions=["minimize"] * len(config.objectives),
    )
    stored = study.user_attrs.get("objectives")
    wanted = [objective.value for objective in config.objectives]
    if stored is None:
        study.set_user_attr("objectives", wanted)
    elif stored != wanted:
        raise ConfigError(
            f"study '{config.study_name}' in {output_dir} minimises {stored}, not {wanted}; "
            "use another --out or study_name, or the same objectives"
        )
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        logger.warning("trial %d was left running by an interrupted search; marking it failed", trial.number)
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return study


def _finished_trials(study) -> list:
    optuna = _optuna()
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return [t for t in study.get_trials(deepcopy=False, states=done) if CANDIDATE_ATTR in t.user_attrs]


def search(
    model_path: str | os.PathLike,
    config: SearchConfig,
    output_dir: str | os.PathLike,
    *,
    data: TrainingData,
    calibration_dir: str | os.PathLike | None = None,
    calibration_inputs: np.ndarray | None = None,
    allow_unsafe: bool = False,
    verbose: int = 2,
) -> dict:
    """Searches technique chains for the best candidate within an accuracy budget and writes its reports.

    The float baseline is exported and measured once; every trial runs its recipe from a fresh load of
    `model_path` into OUTPUT_DIR/trials/trial_NNNN/ and is measured against that baseline. The study lives in
    OUTPUT_DIR/search.db: rerunning with the same output folder and study name resumes it up to `config.trials`
    trials in total, without re-running finished ones.

    Writes report.json and report.md (optimize's shape, one candidate per trial, plus a `search` key with the study,
    the rule and the winner), pareto.json, pareto.png, trials.csv and trials.md.

    Raises:
      ConfigError: Optuna is not installed, or the stored study minimises other objectives.
      EdgeoptError: the input model changed during the search (a bug).

    Example:
      >>> search("model/", SearchConfig(trials=10), "search-out/", data=data)["search"]["winner"]
    """
    output_dir = Path(output_dir)
    model_path = resolve_model_path(model_path)
    output_dir.mkdir(parents=True, exist_ok=True)
    optuna = _optuna()
    study = open_study(config, output_dir)
    digest_before = model_digest(model_path)
    if calibration_dir is not None:
        calibration_inputs = load_calibration_inputs(calibration_dir, data)

    logger.info("baseline: exporting %s as float .tflite and measuring it", model_path)
    baseline, baseline_conversion = evaluate_baseline(
        model_path, output_dir, data=data, evaluation=config.evaluation, allow_unsafe=allow_unsafe
    )
    trial_seconds: list[float] = []

    def run_trial(trial):
        recipe = suggest_recipe(trial, config)
        logger.info("trial %d: %s %s", trial.number, recipe.technique_chain, json.dumps(trial.params))
        started = time.perf_counter()
        reporter = [ReportAccuracyDrop(trial, data, baseline.accuracy)] if prunes_trials(config) else []
        pruned = None
        try:
            with extra_fit_callbacks(reporter):
                tflite_path, steps = run_recipe(
                    model_path,
                    recipe,
                    output_dir / TRIALS_DIR / recipe.name,
                    data=data,
                    calibration_inputs=calibration_inputs,
                    allow_unsafe=allow_unsafe,
                )
            record = candidate_record(recipe, evaluate_tflite(tflite_path, data, config.evaluation), baseline, steps)
        except optuna.TrialPruned as err:
            logger.info("trial %d: %s", trial.number, err)
            pruned, record = err, failed_record(recipe, err)
        except Exception as err:  # one failed trial must not end the study; it is reported with its reason
            if not isinstance(err, EdgeoptError):
                logger.warning("trial %d failed unexpectedly:\n%s", trial.number, traceback.format_exc())
            record = failed_record(recipe, err)
        seconds = time.perf_counter() - started
        trial_seconds.append(seconds)
        record["trial"] = {"number": trial.number, "params": dict(trial.params), "seconds": round(seconds, 3)}
        trial.set_user_attr(CANDIDATE_ATTR, record)
        if pruned is not None:
            trial.set_constraint(CONSTRAINT_KEY, float("inf"))
            raise pruned
        if record.get("error"):
            trial.set_constraint(CONSTRAINT_KEY, float("inf"))
            raise _TrialFailedError(record["error"])
        trial.set_constraint(CONSTRAINT_KEY, record["accuracy_drop"] - config.max_accuracy_drop)
        values = [objective_value(record, objective) for objective in config.objectives]
        return values[0] if len(values) == 1 else values

    remaining = config.trials - len(_finished_trials(study))
    started = time.perf_counter()
    if remaining > 0:
        logger.info("study '%s': %d trials to run (%d done)", config.study_name, remaining, config.trials - remaining)
        optuna.logging.set_verbosity(optuna.logging.WARNING if verbose < 2 else optuna.logging.INFO)
        study.optimize(run_trial, n_trials=remaining, timeout=config.timeout_s, catch=(_TrialFailedError,))
    wall_seconds = time.perf_counter() - started

    if model_digest(model_path) != digest_before:
        raise EdgeoptError(
            f"the input model at {model_path} changed during the search; this is a bug, please report it"
        )
    candidates = [trial.user_attrs[CANDIDATE_ATTR] for trial in sorted(_finished_trials(study), key=lambda t: t.number)]
    report = {
        "baseline": {
            "tflite_path": baseline.tflite_path,
            "tflite_bytes": baseline.tflite_bytes,
            "gzip_bytes": baseline.gzip_bytes,
            "accuracy": baseline.accuracy,
            "latency_ms": baseline.latency_ms,
            "max_abs_diff": baseline_conversion["max_abs_diff"],
            "non_weight_bytes_share": non_weight_bytes_share(baseline.tflite_path),
            "model_path": str(model_path),
            "model_digest": digest_before,
            "num_eval_examples": baseline.num_eval_examples,
        },
        "evaluation": config.evaluation.to_dict(),
        "calibration": {"source": "calibration artifact" if calibration_dir else "training split, seeded slice"},
        "candidates": candidates,
    }
    # The one winner rule (evaluation/selection.py), recorded so --register-model and every face pick this winner.
    report["selection"] = selection_record(candidates, selection_rule(config))
    winner = pick_winner(candidates, config)
    report["search"] = {
        "study_name": config.study_name,
        "storage": str(output_dir / STUDY_DB),
        "sampler": "TPESampler" if len(config.objectives) == 1 else "NSGAIISampler",
        "objectives": [objective.value for objective in config.objectives],
        "max_accuracy_drop": config.max_accuracy_drop,
        "trials": len(candidates),
        "trials_this_run": len(trial_seconds),
        "wall_seconds_this_run": round(wall_seconds, 3),
        "trial_seconds_this_run": round(sum(trial_seconds), 3),
        "rule": WINNER_RULE,
        "winner": winner["recipe"] if winner else None,
        "config": config.to_dict(),
    }
    write_search_outputs(report, config, output_dir)
    return report


class _TrialFailedError(Exception):
    """Ends a trial as FAIL in the study; its record (with the reason) is already stored."""


def selection_rule(config: SearchConfig) -> SelectionConfig:
    """WINNER_RULE as the one winner rule: every trial's gate is the budget (GateConfig(max_accuracy_drop)), so
    "passed" is "within budget", and trial_NNNN names sort by trial number."""
    return SelectionConfig(objective=config.objectives[0].value)


def pick_winner(candidates: list[dict], config: SearchConfig) -> dict | None:
    """The best measured candidate within the budget by WINNER_RULE, or None when no trial is within it."""
    index = select_winner(candidates, selection_rule(config))
    return None if index is None else candidates[index]


def pareto_points(report: dict, config: SearchConfig) -> list[dict]:
    """The trials on the Pareto front of (first objective, accuracy), the float baseline among the points."""
    first = config.objectives[0]
    measured = [c for c in report["candidates"] if c.get("accuracy") is not None]
    base = dict(report["baseline"], recipe="float baseline")
    by_point = {}
    for item in [base, *measured]:
        by_point.setdefault((objective_value(item, first), item["accuracy"]), item)
    front = pareto_front(list(by_point))
    return [
        {
            "recipe": by_point[point]["recipe"],
            first.value: point[0],
            "accuracy": point[1],
            "accuracy_drop": by_point[point].get("accuracy_drop", 0.0),
            "within_budget": by_point[point].get("accuracy_drop", 0.0) <= config.max_accuracy_drop,
        }
        for point in front
    ]


TABLE_COLUMNS = ("trial", "recipe", "family", "steps", "tflite_bytes", "gzip_bytes", "accuracy", "accuracy_drop",
                 "latency_p50_ms", "within_budget", "seconds", "params", "error")  # fmt: skip


def trial_rows(report: dict, config: SearchConfig) -> list[dict]:
    rows = []
    for c in report["candidates"]:
        drop = c.get("accuracy_drop")
        rows.append(
            {
                "trial": c["trial"]["number"],
                "recipe": c["recipe"],
                "family": c["trial"]["params"].get("family"),
                "steps": "+".join(c["steps"]),
                "tflite_bytes": c.get("tflite_bytes"),
                "gzip_bytes": c.get("gzip_bytes"),
                "accuracy": None if c.get("accuracy") is None else round(c["accuracy"], 4),
                "accuracy_drop": None if drop is None else round(drop, 2),
                "latency_p50_ms": objective_value(c, Objective.LATENCY_P50),
                "within_budget": drop is not None and drop <= config.max_accuracy_drop,
                "seconds": c["trial"]["seconds"],
                "params": json.dumps(c["trial"]["params"], sort_keys=True),
                "error": c.get("error") or "",
            }
        )
    return rows


def render_trials_markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    for row in rows:
        cells = ["-" if row[key] is None else str(row[key]).replace("|", "/") for key in TABLE_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_search_outputs(report: dict, config: SearchConfig, output_dir: Path):
    """report.json/.md, pareto.json, pareto.png and the trials table, each published atomically."""
    write_report(report, output_dir)
    with atomic_output_file(output_dir / PARETO_JSON) as staging:
        staging.write_text(
            json.dumps({"objective": config.objectives[0].value, "front": pareto_points(report, config)}, indent=2)
        )
    rows = trial_rows(report, config)
    with atomic_output_file(output_dir / TRIALS_CSV) as staging:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        staging.write_text(buffer.getvalue())
    with atomic_output_file(output_dir / TRIALS_MD) as staging:
        staging.write_text(render_trials_markdown(rows))
    with atomic_output_file(output_dir / PARETO_PNG) as staging:
        plot_pareto(report, staging)
