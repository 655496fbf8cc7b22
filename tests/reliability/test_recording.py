"""What was done is recorded: the calibration count each recipe actually used (5, not the 100 asked), an artifact
overriding a recipe's count, casts of the model inputs, with a warning below the calibration floor (issue 12.8)."""

import logging

import numpy as np

from edgeopt.components._shared.data import TrainingData
from edgeopt.components._shared.keras_bootstrap import tf
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.recipes.job_notes import MIN_CALIBRATION_EXAMPLES, job_notes


def _five_float64_examples(tmp_path) -> TrainingData:
    for split in ("train", "eval"):
        (tmp_path / f"Split-{split}").mkdir()
        (tmp_path / f"Split-{split}" / "data").write_bytes(b"")
    inputs = np.arange(5 * 64, dtype=np.float64).reshape(5, 8, 8, 1)  # e.g. an input_fn yielding float64

    def dataset_from_files(files, batch_size, seed=None):
        return tf.data.Dataset.from_tensor_slices((inputs, np.arange(5))).batch(batch_size)

    return TrainingData(str(tmp_path), dataset_from_files, "train", "eval", "five float64 examples")


def _int8(count: int) -> RecipeConfig:
    steps = [{"technique": "quantize", "config": {"mode": "full_integer", "calibration_examples": count}}]
    return RecipeConfig(name=f"int8_{count}", steps=steps)


def test_the_count_used_casts_and_overrides_are_recorded(tmp_path, caplog):
    data = _five_float64_examples(tmp_path)
    recipes = [_int8(100), RecipeConfig.builtin("ptq_dynamic")]
    with caplog.at_level(logging.WARNING):
        notes = job_notes(recipes, data, artifact_count=None)
    assert notes["calibration_used"]["asked_per_recipe"] == {"int8_100": 100}
    assert notes["calibration_used"]["used_per_recipe"] == {"int8_100": 5}
    assert notes["calibration_used"]["below_minimum"] == ["int8_100"]
    assert notes["input_casts"] == {"input": {"from": "float64", "to": "float32"}}
    assert notes["non_finite_dropped"] == {"train": 0, "eval": 0}
    assert f"fewer than {MIN_CALIBRATION_EXAMPLES} examples" in caplog.text and "casts it to float32" in caplog.text

    overridden = job_notes([_int8(100), _int8(300)], data, artifact_count=300)["calibration_used"]
    assert overridden["used_per_recipe"] == {"int8_100": 300, "int8_300": 300}
    assert overridden["artifact_overrides"] == ["int8_100"]
