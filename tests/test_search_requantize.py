"""The search quantizes its best trial's trained model other ways without training it again (requantize.py)."""

import csv
from pathlib import Path

import optuna
import pytest

from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.recipes.core import run_recipe
from edgeopt.components.search import core as search_core
from edgeopt.components.search.config import SearchConfig
from edgeopt.components.search.requantize import requantize_params
from edgeopt.components.search.space import suggest_recipe
from tests.helpers import kernels, overall_sparsity
from tests.test_search import FAST_EVALUATION

PRUNED = {"family": "prune", "block_size": "1x1", "target_sparsity": 0.6, "min_layer_weights": 0,
          "prune_epochs": 1, "prune_learning_rate": 1e-4}  # fmt: skip


def test_variants_keep_the_trials_training_steps_or_drop_only_its_qat_step():
    config = SearchConfig(
        families=["prune"],
        quantize_modes=["full_integer", "int4_weight_only"],
        max_qat_epochs=2,
        conv_granularities=["per_channel"],
        dense_granularities=["per_channel", "per_tensor"],
    )
    params = PRUNED | {"mode": "full_integer", "qat_epochs": 2}
    variants = requantize_params(params, config)
    recipes = [suggest_recipe(optuna.trial.FixedTrial(variant), config) for variant in variants]
    trained = suggest_recipe(optuna.trial.FixedTrial(params), config).steps[:-1]
    assert [step.technique for step in trained] == ["prune", "qat"]
    # Without the QAT step: two Dense granularities in full_integer, and int4; with it, nothing else is drawn.
    assert sorted(recipe.steps[-1].config.mode.value for recipe in recipes) == [
        "full_integer", "full_integer", "int4_weight_only"
    ]  # fmt: skip
    assert all(recipe.technique_chain == "prune+quantize" and recipe.steps[0] == trained[0] for recipe in recipes)
    assert params not in variants


def test_the_best_trials_model_is_requantized_without_training_again(tiny_model, digits_data, tmp_path):
    config = SearchConfig(
        trials=2,
        max_accuracy_drop=100,  # every trial is within budget: this test is about what the search does next
        requantize_share=1.0,
        families=["prune"],
        quantize_modes=["full_integer"],
        conv_granularities=["per_channel", "per_tensor"],
        dense_granularities=["per_channel"],
        max_qat_epochs=0,
        min_epochs=1,
        max_epochs=1,
        evaluation=FAST_EVALUATION,
    )
    search_core.open_study(config, tmp_path).enqueue_trial(PRUNED | {"mode": "full_integer",
                                                                     "conv_granularity": "per_channel",
                                                                     "dense_granularity": "per_channel"})  # fmt: skip
    report = search_core.search(tiny_model, config, tmp_path, data=digits_data)

    trained, requantized = report["candidates"]
    assert requantized["trial"]["requantizes"] == 0 and requantized["trial"]["training_from_trial"] == 0
    assert requantized["trial"]["params"] == PRUNED | {"mode": "full_integer", "conv_granularity": "per_tensor"}
    assert report["search"]["requantized_trials"] == 1
    prune_step, quantize_step = requantized["step_records"]
    assert prune_step["reused"] and prune_step["output"] == trained["step_records"][0]["output"]
    assert sorted(p.name for p in (tmp_path / "trials" / "trial_0001").iterdir()) == ["01_quantize"]  # no training
    # The same pruned weights, each kernel now with one scale.
    assert {t.scale_count for t in kernels(requantized["tflite_path"], "INT8")} == {1}
    assert {t.scale_count for t in kernels(trained["tflite_path"], "INT8")} != {1}
    sparsities = [overall_sparsity(kernels(c["tflite_path"], "INT8")) for c in (trained, requantized)]
    assert sparsities[0] == pytest.approx(0.6, abs=0.05) and sparsities[1] == pytest.approx(sparsities[0], abs=0.02)
    assert Path(quantize_step["output"]).parent.name == "trial_0001"
    with open(tmp_path / "trials.csv", newline="") as handle:
        assert [row["training_from"] for row in csv.DictReader(handle)] == ["", "0"]


def test_reused_steps_must_be_the_recipes_training_prefix(tiny_model, digits_data, tmp_path):
    recipe = RecipeConfig.builtin("prune80_int8")
    with pytest.raises(ValueError, match="no training prefix"):
        run_recipe(tiny_model, recipe, tmp_path, data=digits_data,
                   reused_steps=[{"technique": "cluster", "output": str(tmp_path)}])  # fmt: skip


def test_a_named_input_models_pqat_trial_is_requantized_without_its_qat_step(tmp_path):
    from tests import task_models

    model, data = task_models.named_input_task(tmp_path)
    config = SearchConfig(
        trials=2, max_accuracy_drop=100, requantize_share=1.0, families=["prune"], quantize_modes=["full_integer"],
        conv_granularities=["per_channel"], dense_granularities=["per_tensor"], max_qat_epochs=1,
        prune_trials_above_drop=None, min_epochs=1, max_epochs=1, evaluation=FAST_EVALUATION,
    )  # fmt: skip
    out = tmp_path / "search"
    out.mkdir()
    search_core.open_study(config, out).enqueue_trial(PRUNED | {"min_layer_weights": 0, "mode": "full_integer",
                                                                "qat_epochs": 1})  # fmt: skip
    report = search_core.search(model, config, out, data=data)

    pqat, pruned = report["candidates"]
    assert pqat["steps"] == ["prune", "qat", "quantize"] and pruned["steps"] == ["prune", "quantize"]
    assert pruned["trial"]["requantizes"] == 0 and pruned["step_records"][0]["reused"]
    assert sorted(p.name for p in (out / "trials" / "trial_0001").iterdir()) == ["01_quantize"]
    # The pruned Dense kernels reach the .tflite per tensor with their zeros, converted straight from the pruned model.
    int8 = kernels(pruned["tflite_path"], "INT8")
    assert {t.scale_count for t in int8} == {1} and overall_sparsity(int8) == pytest.approx(0.6, abs=0.1)
    assert pruned["accuracy"] is not None and pruned["gate"]["passed"]
