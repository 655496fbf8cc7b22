"""The one winner rule: which evaluated candidate a job registers, used by the CLI, the TFX reporter and KFP.

Pure: candidates are report.json records (dicts); no TF, no MLflow.
"""

import enum
import math

import pydantic

from edgeopt.components._shared.config_base import StrictConfig
from edgeopt.components._shared.tasks import metric_score


class Objective(enum.StrEnum):
    """What the winner is best at; the gate already guards quality, so the default optimises the payload."""

    GZIP_BYTES = "gzip_bytes"
    TFLITE_BYTES = "tflite_bytes"
    LATENCY_P50 = "latency_p50"
    METRIC = "metric"


class Pool(enum.StrEnum):
    """Which candidates may win."""

    PASSED = "passed"


class SelectionConfig(StrictConfig):
    """How the winner is chosen among the candidates of one job (report.json records it under `selection`)."""

    objective: Objective = pydantic.Field(
        Objective.GZIP_BYTES,
        description=(
            "gzip_bytes / tflite_bytes / latency_p50: smallest wins; metric: best on the task's metric (highest "
            "accuracy or AUC, lowest MAE or RMSE) wins. Ties: higher metric, then smaller gzip size, then recipe name."
        ),
    )
    among: Pool = pydantic.Field(Pool.PASSED, description="Candidates that may win: passed = passed their gate.")


def _metric(candidate: dict) -> float:
    """The task's metric, signed so larger is better (accuracy for reports without one)."""
    return metric_score(candidate)


def objective_value(candidate: dict, objective: Objective | str) -> float:
    """Smaller is better for every objective (the metric is negated); inf for a candidate without the number."""
    objective = Objective(objective)
    if objective is Objective.METRIC:
        return -_metric(candidate)
    if objective is Objective.LATENCY_P50:
        value = (candidate.get("latency_ms") or {}).get("p50")
    else:
        value = candidate.get(objective.value)
    return math.inf if value is None else float(value)


def _eligible(candidate: dict, pool: Pool) -> bool:
    return pool is Pool.PASSED and not candidate.get("error") and bool((candidate.get("gate") or {}).get("passed"))


def select_winner(candidates: list[dict], rule: SelectionConfig | dict | None = None) -> int | None:
    """Index of the winning candidate under `rule` (default: smallest gzip size among passed), or None.

    Args:
      candidates: report.json candidate records (`gate.passed`, `gzip_bytes`, `tflite_bytes`, `accuracy`,
        `latency_ms.p50`, `recipe`; failed candidates carry `error`).
      rule: a SelectionConfig or its dict; None for the default.

    Returns:
      The index into `candidates`, or None when no candidate may win.

    Example:
      >>> select_winner(report["candidates"], {"objective": "metric"})
    """
    rule = rule if isinstance(rule, SelectionConfig) else SelectionConfig.from_dict(rule)
    eligible = [index for index, candidate in enumerate(candidates) if _eligible(candidate, rule.among)]
    if not eligible:
        return None

    def key(index: int):
        candidate = candidates[index]
        gzip = candidate.get("gzip_bytes")
        return (
            objective_value(candidate, rule.objective),
            -_metric(candidate),
            math.inf if gzip is None else gzip,
            str(candidate.get("recipe", "")),
        )

    return min(eligible, key=key)


def selection_record(candidates: list[dict], rule: SelectionConfig | dict | None = None) -> dict:
    """What report.json records under `selection`: the rule and the winner's recipe (None when none may win)."""
    rule = rule if isinstance(rule, SelectionConfig) else SelectionConfig.from_dict(rule)
    index = select_winner(candidates, rule)
    return {"rule": rule.to_dict(), "winner": None if index is None else candidates[index]["recipe"]}


def rule_of(report: dict) -> SelectionConfig:
    """The rule a report was made with (its `selection.rule`), else the default."""
    return SelectionConfig.from_dict((report.get("selection") or {}).get("rule"))
