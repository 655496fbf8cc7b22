"""What a job did to its data that a reader of report.json must know: dropped non-finite examples, dtype casts of
the model inputs, and the calibration count each recipe actually used (or that an artifact overrode)."""

import logging

import numpy as np

from edgeopt.components._shared.data import TrainingData
from edgeopt.components.recipes.config import RecipeConfig

# Fewer calibration examples than this give noticeably worse int8 ranges on small models (the demo's sweep:
# 50 examples cost up to 1 pt more than 300); below it the job warns and says so in report.json.
MIN_CALIBRATION_EXAMPLES = 100

logger = logging.getLogger(__name__)


def _calibrated_steps(recipe: RecipeConfig):
    return [step for step in recipe.steps if step.technique == "quantize" and step.config.needs_calibration]


def calibration_notes(recipes: list[RecipeConfig], data: TrainingData, artifact_count: int | None) -> dict:
    """Per calibrated recipe: the count it asked for and the count it used; a warning below the floor."""
    available = None if artifact_count is not None else data.split_size(data.train_split)
    asked, used = {}, {}
    for recipe in recipes:
        for step in _calibrated_steps(recipe):
            asked[recipe.name] = step.config.calibration_examples
            used[recipe.name] = artifact_count if artifact_count is not None else min(asked[recipe.name], available)
    notes = {"asked_per_recipe": asked, "used_per_recipe": used, "min_calibration_examples": MIN_CALIBRATION_EXAMPLES}
    if artifact_count is not None:
        overridden = sorted(name for name, count in asked.items() if count != artifact_count)
        notes["artifact_overrides"] = overridden
        if overridden:
            logger.warning("the calibration artifact's %d examples replace the count of %s", artifact_count, overridden)
    short = sorted(name for name, count in used.items() if count < MIN_CALIBRATION_EXAMPLES)
    if short:
        notes["below_minimum"] = short
        logger.warning(
            "recipes %s calibrate on fewer than %d examples (%s); int8 ranges may be poor, provide more data",
            short,
            MIN_CALIBRATION_EXAMPLES,
            {name: used[name] for name in short},
        )
    return notes


def input_casts(data: TrainingData) -> dict:
    """Model inputs that are not float32 are cast to float32 for conversion and evaluation; recorded, and logged."""
    inputs, _ = data.take(data.train_split, 1)
    arrays = inputs if isinstance(inputs, dict) else {"input": inputs}
    casts = {name: str(value.dtype) for name, value in arrays.items() if np.asarray(value).dtype != np.float32}
    for name, dtype in casts.items():
        logger.warning("model input %s is %s; edgeopt casts it to float32 for conversion and evaluation", name, dtype)
    return {name: {"from": dtype, "to": "float32"} for name, dtype in casts.items()}


def job_notes(recipes: list[RecipeConfig], data: TrainingData, artifact_count: int | None) -> dict:
    """The report.json keys that record what was done to the data."""
    casts = input_casts(data)
    for split in (data.train_split, data.eval_split):
        data.split_size(split)  # a counting pass (cached for the job) that also counts what it dropped
    return {
        "non_finite_dropped": dict(data.dropped_non_finite),
        "input_casts": casts,
        "calibration_used": calibration_notes(recipes, data, artifact_count),
    }
