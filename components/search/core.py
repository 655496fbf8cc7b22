"""Budgeted search: Optuna proposes technique chains as RecipeConfig objects, each trial runs one from a fresh load
of the baseline, and the winner is the smallest (or fastest) candidate within the accuracy budget."""

import json
import logging
import os
import time
import traceback
from pathlib import Path

import numpy as np

from edgeopt.components._shared.console import keras_verbosity
from edgeopt.components._shared.data import TrainingData
from edgeopt.components._shared.errors import ConfigError, EdgeoptError
from edgeopt.components._shared.hardware import describe_hardware
from edgeopt.components._shared.model_format import check_model_file, check_tflite_file
from edgeopt.components._shared.model_io import model_digest, resolve_model_path
from edgeopt.components._shared.training import extra_fit_callbacks
from edgeopt.components.calibration.core import load_calibration_inputs
from edgeopt.components.evaluation.core import evaluate_tflite
from edgeopt.components.evaluation.selection import SelectionConfig, objective_value, select_winner, selection_record
from edgeopt.components.recipes.core import (
    baseline_record,
    candidate_record,
    evaluate_baseline,
    failed_record,
    run_recipe,
)
from edgeopt.components.search.config import SearchConfig
from edgeopt.components.search.outputs import write_search_outputs
from edgeopt.components.search.requantize import REQUANTIZES_ATTR, requantize_params, reusable_steps
from edgeopt.components.search.space import fit_min_layer_weights, searchable_config, start_trials, suggest_recipe
from edgeopt.components.search.trial_pruning import ReportAccuracyDrop

logger = logging.getLogger(__name__)

STUDY_DB = "search.db"
TRIALS_DIR = "trials"
#: Trial user attribute holding the trial's report.json candidate record, so a resumed study rebuilds its report
#: from storage without re-running finished trials.
CANDIDATE_ATTR = "candidate"
#: The trial constraint: degradation minus max_accuracy_drop (<= 0 is within budget; inf for failed trials). The key
#: keeps its first name so studies of earlier versions resume.
CONSTRAINT_KEY = "accuracy_drop_over_budget"
#: The constraint of a trial within the budget whose gate failed anyway (it lost to the champion).
CHAMPION_MISS_EXCESS = 1e-3
WINNER_RULE = (
    "among trials that passed their gate (degradation within max_accuracy_drop, and no loss to the champion when "
    "one is given), the smallest on the first objective; ties go to the better metric, then the smaller gzip size, "
    "then the earlier trial"
)


def _optuna():
    try:
        import optuna
    except ImportError as err:  # the `search` extra
        raise ConfigError("edgeopt search needs Optuna: pip install 'edgeopt[search]'") from err
    return optuna


def _sampler(config: SearchConfig):
    # Both samplers read the constraint every trial sets (budget excess, <= 0 feasible) and prefer feasible trials.
    optuna = _optuna()
    if len(config.objectives) == 1:
        # Multivariate TPE (Optuna's default for one objective). Its group decomposition (group=True) was measured
        # worse: 36.9 % fewer gzip bytes than the best fixed recipe on the digits CNN against 50-51 % without it,
        # and on MobileNetV2 it redrew one slow cluster chain four times in 22 trials (2026-12-02, AMD EPYC).
        return optuna.samplers.TPESampler(seed=config.seed, multivariate=True)
    return optuna.samplers.NSGAIISampler(seed=config.seed)


def _earlier_trial_with_same_params(study, trial):
    """A finished trial that drew exactly the parameters `trial` drew, or None."""
    complete = _optuna().trial.TrialState.COMPLETE
    for earlier in study.get_trials(deepcopy=False, states=(complete,)):
        if earlier.number != trial.number and earlier.params == trial.params:
            return earlier
    return None


def prunes_trials(config: SearchConfig, metric: str = "accuracy") -> bool:
    # Optuna prunes single-objective studies only (trial.should_prune is not defined for several objectives), and
    # the per-epoch reports read the Keras model's top-1 accuracy, so other metrics are not pruned on.
    return config.prune_trials_above_drop is not None and len(config.objectives) == 1 and metric == "accuracy"


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


def _measured_records(study) -> list[dict]:
    """The candidate records of the study's finished trials, in trial order."""
    return [trial.user_attrs[CANDIDATE_ATTR] for trial in sorted(_finished_trials(study), key=lambda t: t.number)]


def _enqueue_requantizations(study, trial, config: SearchConfig) -> None:
    """Queues the other quantize settings of a trial's trained model (requantize.py), while the study has spent less
    than config.requantize_share of its trials on them."""
    trials = study.get_trials(deepcopy=False)
    room = int(config.trials * config.requantize_share) - sum(REQUANTIZES_ATTR in t.user_attrs for t in trials)
    seen = [t.params or t.system_attrs.get("fixed_params") for t in trials] + [trial.params]  # queued: fixed_params
    variants = [params for params in requantize_params(trial.params, config) if params not in seen][: max(room, 0)]
    for params in variants:
        study.enqueue_trial(params, user_attrs={REQUANTIZES_ATTR: trial.number})
    if variants:
        logger.info("trial %d is the best within the budget: %d other quantize settings of its model queued",
                    trial.number, len(variants))  # fmt: skip


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
    champion_tflite: str | os.PathLike | None = None,
    allow_unsafe: bool = False,
) -> dict:
    """Searches technique chains for the best candidate within an accuracy budget and writes its reports.

    The float baseline is exported and measured once; every trial runs its recipe from a fresh load of
    `model_path` into OUTPUT_DIR/trials/trial_NNNN/ and is measured against that baseline. The study lives in
    OUTPUT_DIR/search.db: rerunning with the same output folder and study name resumes it up to `config.trials`
    trials in total, without re-running finished ones.

    The budget is read like a recipe gate's max_accuracy_drop: points of accuracy for a classifier, % of the
    baseline's value for any other metric (MAE, AUC, a module's metric_fn). With `champion_tflite` (the model in
    production, measured once on the same eval data), a trial must also not lose to it (champion_max_accuracy_drop
    0), so a scheduled search never picks a model worse than the one it would replace.

    A model that training techniques cannot wrap (subclassed, a plain SavedModel, a Keras 3 file that cannot be
    rebuilt) is searched over post-training quantization only; `report["search"]["refused_families"]` says why.

    Writes report.json and report.md (optimize's shape, one candidate per trial, plus a `search` key with the study,
    the rule and the winner), pareto.json, pareto.png, trials.csv and trials.md.

    Raises:
      ConfigError: Optuna is not installed, or the stored study minimises other objectives.
      UnsupportedModelError: only training families were asked for and the model cannot be fine-tuned.
      ModelFormatError: the model or the champion file is not a model edgeopt can read (nothing is created).
      EdgeoptError: the input model changed during the search (a bug).

    Example:
      >>> search("model/", SearchConfig(trials=10), "search-out/", data=data)["search"]["winner"]
    """
    optuna = _optuna()
    inspection = check_model_file(model_path, allow_unsafe=allow_unsafe)  # before anything is created
    config, refused = searchable_config(config, inspection, data.task.task)
    config = fit_min_layer_weights(config, model_path, allow_unsafe=allow_unsafe)
    start = start_trials(config)
    if champion_tflite:
        check_tflite_file(champion_tflite)
    output_dir = Path(output_dir)
    model_path = resolve_model_path(model_path)
    output_dir.mkdir(parents=True, exist_ok=True)
    study = open_study(config, output_dir)
    for params in start.values():
        study.enqueue_trial(params, skip_if_exists=True)  # a resumed study has them already
    digest_before = model_digest(model_path)
    if calibration_dir is not None:
        calibration_inputs = load_calibration_inputs(calibration_dir, data)

    logger.info("baseline: exporting %s as float .tflite and measuring it", model_path)
    baseline, baseline_conversion = evaluate_baseline(
        model_path, output_dir, data=data, evaluation=config.evaluation, allow_unsafe=allow_unsafe
    )
    champion = evaluate_tflite(champion_tflite, data, config.evaluation) if champion_tflite else None
    prune = prunes_trials(config, baseline.metric["name"])
    trial_seconds: list[float] = []

    def run_trial(trial):
        recipe = suggest_recipe(trial, config)
        logger.info("trial %d: %s %s", trial.number, recipe.technique_chain, json.dumps(trial.params))
        earlier = _earlier_trial_with_same_params(study, trial)
        if earlier is not None:
            # TPE redraws a good point again and again (4 times in a row on MobileNetV2, 5 min each): the sampler
            # is told the earlier result instead of paying for the same chain again (Optuna's FAQ does the same).
            logger.info("trial %d: same parameters as trial %d, not run again", trial.number, earlier.number)
            record = {**earlier.user_attrs[CANDIDATE_ATTR], "recipe": recipe.name, "duplicate_of": earlier.number}
            record["trial"] = {"number": trial.number, "params": dict(trial.params), "seconds": 0.0}
            trial_seconds.append(0.0)
            return _told(trial, record)
        started = time.perf_counter()
        reused_from, reused = reusable_steps(recipe, _measured_records(study))
        if reused:
            logger.info("trial %d: takes its %d training step(s) from trial %d", trial.number, len(reused), reused_from)
        reporter = [ReportAccuracyDrop(trial, data, baseline.accuracy)] if prune else []
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
                    reused_steps=reused,
                )
            evaluated = evaluate_tflite(tflite_path, data, config.evaluation)
            record = candidate_record(recipe, evaluated, baseline, steps, champion)
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
        if reused:
            record["trial"]["training_from_trial"] = reused_from
        if REQUANTIZES_ATTR in trial.user_attrs:
            record["trial"]["requantizes"] = trial.user_attrs[REQUANTIZES_ATTR]
        trial.set_user_attr(CANDIDATE_ATTR, record)
        if pruned is not None:
            trial.set_constraint(CONSTRAINT_KEY, float("inf"))
            raise pruned
        if record.get("error"):
            trial.set_constraint(CONSTRAINT_KEY, float("inf"))
            raise _TrialFailedError(record["error"])
        values = _told(trial, record)
        if pick_winner([*_measured_records(study), record], config) is record:
            _enqueue_requantizations(study, trial, config)
        return values

    def _told(trial, record):
        """What the sampler is told of a measured trial: its budget excess and its objective values."""
        trial.set_user_attr(CANDIDATE_ATTR, record)
        trial.set_constraint(CONSTRAINT_KEY, budget_excess(record, config.max_accuracy_drop))
        values = [objective_value(record, objective) for objective in config.objectives]
        return values[0] if len(values) == 1 else values

    remaining = config.trials - len(_finished_trials(study))
    started = time.perf_counter()
    if remaining > 0:
        logger.info("study '%s': %d trials to run (%d done)", config.study_name, remaining, config.trials - remaining)
        # Optuna's per-trial lines only when edgeopt itself logs at DEBUG (-v), like Keras' per-epoch lines.
        optuna.logging.set_verbosity(optuna.logging.INFO if keras_verbosity() else optuna.logging.WARNING)
        study.optimize(run_trial, n_trials=remaining, timeout=config.timeout_s, catch=(_TrialFailedError,))
    wall_seconds = time.perf_counter() - started

    if model_digest(model_path) != digest_before:
        raise EdgeoptError(
            f"the input model at {model_path} changed during the search; this is a bug, please report it"
        )
    candidates = _measured_records(study)
    report = {
        "baseline": baseline_record(baseline, baseline_conversion, model_path, digest_before),
        "evaluation": config.evaluation.to_dict(),
        "hardware": describe_hardware(config.evaluation.num_threads),
        "calibration": {"source": "calibration artifact" if calibration_dir else "training split, seeded slice"},
        "candidates": candidates,
    }
    if champion is not None:
        report["champion"] = champion.to_dict()
    # The one winner rule (evaluation/selection.py), recorded so --register-model and every face pick this winner.
    report["selection"] = selection_record(candidates, selection_rule(config))
    winner = pick_winner(candidates, config)
    report["search"] = {
        "study_name": config.study_name,
        "storage": str(output_dir / STUDY_DB),
        "sampler": "TPESampler (multivariate)" if len(config.objectives) == 1 else "NSGAIISampler",
        "objectives": [objective.value for objective in config.objectives],
        "max_accuracy_drop": config.max_accuracy_drop,
        "budget_unit": "points of accuracy"
        if baseline.metric["name"] == "accuracy"
        else f"% of baseline {baseline.metric['name']}",
        "gated_against_champion": champion is not None,
        "refused_families": refused,
        "started_from_recipes": list(start),
        "requantized_trials": sum(REQUANTIZES_ATTR in candidate["trial"] for candidate in candidates),
        "trials_pruned_on_epochs": prune,
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


def budget_excess(record: dict, budget: float) -> float:
    """Optuna's constraint for a measured trial: how far past the budget it is, <= 0 exactly when its gate passed.

    The degradation is the gate's own: points for accuracy, % of the baseline's value for other metrics. A trial
    within the budget that lost to the champion is infeasible too (a small positive excess)."""
    metric = record["metric"]["name"]
    degradation = record["metric_delta"] if metric == "accuracy" else record["metric_delta_relative"]
    excess = degradation - budget
    if record["gate"]["passed"]:
        return min(excess, 0.0)
    return max(excess, CHAMPION_MISS_EXCESS)


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
