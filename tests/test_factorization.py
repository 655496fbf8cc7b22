"""Factorization: full rank computes the same function, reduced rank reports its error, the .tflite holds exactly the
low-rank weights, refusals come before any work, and both faces run the core."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from kfp import dsl
from tfx.types import standard_artifacts

from edgeopt.components._shared import tfx_component as face
from edgeopt.components._shared.errors import ConfigError, OptimizationNotAchievedError, UnsupportedModelError
from edgeopt.components._shared.keras_bootstrap import keras
from edgeopt.components._shared.model_io import load_keras_model
from edgeopt.components._shared.topology import max_output_difference
from edgeopt.components.demo.digits import digits_data_spec
from edgeopt.components.export.config import ExportConfig
from edgeopt.components.export.core import export_tflite
from edgeopt.components.factorization.config import FactorizationConfig
from edgeopt.components.factorization.core import (
    LayerFactorization,
    choose_rank,
    factorize,
    factorize_model,
    plan_factorization,
)
from edgeopt.components.factorization.kfp_component import factorize as factorize_component
from edgeopt.components.factorization.tfx_component import LowRankFactorizer, LowRankFactorizerExecutor
from edgeopt.components.quantization.config import QuantizationConfig
from edgeopt.components.quantization.core import quantize
from tests.helpers import Untouchable, keras_accuracy, kernels, save_tiny_subclassed_model, whole_split

# The conftest CNN: conv1 3x3x1x8, conv2 3x3x8x16, dense1 256x32, logits 32x10 (the head, left whole).
CONV_KERNEL_WEIGHTS = 3 * 3 * 1 * 8 + 3 * 3 * 8 * 16
HEAD_KERNEL_WEIGHTS = 32 * 10


def functional_with_1x1_conv(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(8, 8, 24), name="features")
    mixed = keras.layers.Conv2D(32, 1, strides=2, activation="relu", name="pointwise")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(mixed)
    hidden = keras.layers.Dense(48, activation="relu", name="hidden")(pooled)
    return keras.Model(inputs, keras.layers.Dense(10, name="head")(hidden))


def test_full_rank_factorization_computes_the_same_function(tiny_model, digits_data):
    sequential = load_keras_model(tiny_model)
    full = [LayerFactorization("dense1", "dense", 256, 32, 32, 0, 0)]
    inputs = whole_split(digits_data, digits_data.eval_split)[0]
    assert max_output_difference(sequential, factorize_model(sequential, full), inputs) < 1e-4  # measured 1.1e-5

    functional = functional_with_1x1_conv()
    plan = [
        LayerFactorization("pointwise", "conv1x1", 24, 32, 24, 0, 0),
        LayerFactorization("hidden", "dense", 32, 48, 32, 0, 0),
    ]
    factorized = factorize_model(functional, plan)
    assert factorized.get_layer("pointwise_lowrank").kernel.shape == (1, 1, 24, 24)
    assert factorized.get_layer("pointwise").strides == (1, 1)
    sample = np.random.default_rng(0).normal(size=(64, 8, 8, 24)).astype(np.float32)
    assert max_output_difference(functional, factorized, sample) < 1e-4


def test_rank_by_fraction_or_energy():
    singular = np.array([3.0, 2.0, 1.0, 0.0])
    assert choose_rank(singular, FactorizationConfig(rank_fraction=0.5)) == 2
    assert choose_rank(singular, FactorizationConfig(rank_fraction=0.1)) == 1
    # squares 9, 4, 1 of 14: 64 % after one value, 93 % after two
    assert choose_rank(singular, FactorizationConfig(rank_by="energy", energy=0.9)) == 2
    assert choose_rank(singular, FactorizationConfig(rank_by="energy", energy=0.6)) == 1
    assert choose_rank(singular, FactorizationConfig(rank_by="energy", energy=1.0)) == 3


def test_conv1x1_and_the_head_are_chosen_by_the_config():
    model = functional_with_1x1_conv()
    plan, _ = plan_factorization(model, FactorizationConfig(rank_fraction=0.25))
    assert [(entry.name, entry.rank) for entry in plan] == [("pointwise", 6), ("hidden", 8)]
    plan, _ = plan_factorization(model, FactorizationConfig(rank_fraction=0.25, conv1x1=False, skip_head=False))
    assert [(entry.name, entry.rank) for entry in plan] == [("hidden", 8), ("head", 2)]


def test_layers_that_would_not_shrink_and_the_head_stay_whole(tiny_model, tmp_path):
    plan, skipped = plan_factorization(load_keras_model(tiny_model), FactorizationConfig(rank_fraction=0.9))
    assert plan == []
    assert skipped["logits"] == "the head (skip_head)"
    assert skipped["dense1"].startswith("rank 29 would not shrink it")  # 29 * 288 >= 256 * 32
    with pytest.raises(OptimizationNotAchievedError, match=r"found no layer to shrink .*skip_head: false"):
        factorize(tiny_model, FactorizationConfig(rank_fraction=0.9), tmp_path / "out", data=Untouchable())
    assert not (tmp_path / "out").exists()


def test_reduced_rank_reports_its_difference_and_the_tflite_holds_the_low_rank_weights(
    tiny_model, digits_data, tmp_path, unchanged
):
    unchanged(tiny_model)
    config = FactorizationConfig(rank_fraction=0.25, epochs=2)
    result = factorize(tiny_model, config, tmp_path / "lowrank", data=digits_data)
    assert result.layers == [
        {"name": "dense1", "kind": "dense", "m": 256, "n": 32, "rank": 8, "params_before": 8224, "params_after": 2336}
    ]
    assert result.params_before - result.params_after == 8224 - 2336
    assert 1e-3 < result.max_output_diff < 100  # a real approximation error, reported before fine-tuning
    step = json.loads((tmp_path / "lowrank" / "edgeopt_step.json").read_text())
    assert step["technique"] == "factorize" and step["result"]["max_output_diff"] == result.max_output_diff

    expected = CONV_KERNEL_WEIGHTS + 256 * 8 + 8 * 32 + HEAD_KERNEL_WEIGHTS
    exported = export_tflite(tmp_path / "lowrank", ExportConfig(), tmp_path / "float", data=digits_data)
    assert sum(t.values.size for t in kernels(exported.tflite_path, "FLOAT32")) == expected
    int8 = quantize(tmp_path / "lowrank", QuantizationConfig(), tmp_path / "int8", data=digits_data)
    assert sum(t.values.size for t in kernels(int8.tflite_path, "INT8")) == expected

    float_accuracy = keras_accuracy(load_keras_model(tiny_model), digits_data)
    assert keras_accuracy(load_keras_model(tmp_path / "lowrank"), digits_data) >= float_accuracy - 0.03


def test_output_check_fails_before_fine_tuning(tiny_model, digits_data, tmp_path):
    config = FactorizationConfig(rank_fraction=0.25, max_output_diff=1e-6)
    with pytest.raises(OptimizationNotAchievedError, match="differ from the original's by up to"):
        factorize(tiny_model, config, tmp_path / "out", data=digits_data)
    assert not (tmp_path / "out").exists()


def test_subclassed_model_is_refused_before_any_work(tmp_path):
    save_tiny_subclassed_model(tmp_path / "subclassed")
    with pytest.raises(UnsupportedModelError, match=r"subclassed model 'tiny_subclassed'.*prune, cluster, qat"):
        factorize(tmp_path / "subclassed", FactorizationConfig(), tmp_path / "out", data=Untouchable())
    assert not (tmp_path / "out").exists()


def test_unknown_skip_layer_is_named(tiny_model, tmp_path):
    with pytest.raises(ConfigError, match=r"skip_layers: no layer named \['dense9'\]"):
        factorize(tiny_model, FactorizationConfig(skip_layers=["dense9"]), tmp_path / "out", data=Untouchable())


def test_tfx_executor_and_kfp_component_factorize(tiny_model, digits_examples, tmp_path):
    def artifact(artifact_type, uri):
        instance = artifact_type()
        instance.uri = str(uri)
        os.makedirs(instance.uri, exist_ok=True)
        return instance

    with pytest.raises(ConfigError, match=r"FactorizationConfig\.rank_fraction"):
        LowRankFactorizer(model=None, examples=None, config={"rank_fraction": 2}, data_spec="configs/data/digits.yaml")

    output = artifact(standard_artifacts.Model, tmp_path / "tfx")
    LowRankFactorizerExecutor().Do(
        {
            face.MODEL_KEY: [artifact(standard_artifacts.Model, tiny_model)],
            face.EXAMPLES_KEY: [artifact(standard_artifacts.Examples, digits_examples)],
        },
        {face.OUTPUT_MODEL_KEY: [output]},
        {
            face.CONFIG_KEY: json.dumps({"epochs": 1}),
            face.COMPONENT_VERSION_KEY: "test",
            **face.data_source_properties(data_spec="configs/data/digits.yaml"),
        },
    )
    assert os.path.exists(os.path.join(output.uri, "Format-Serving", "saved_model.pb"))
    assert output.get_int_custom_property("params_after") == 3914

    factorized, metrics = (
        dsl.Model(name="f", uri=str(tmp_path / "kfp"), metadata={}),
        dsl.Metrics(name="m", uri=str(tmp_path / "metrics"), metadata={}),
    )
    factorize_component.python_func(
        model=dsl.Model(name="model", uri=str(tiny_model), metadata={}),
        examples=dsl.Dataset(name="e", uri=str(digits_examples), metadata={}),
        factorized_model=factorized,
        metrics=metrics,
        config={"epochs": 1},
        data_spec=digits_data_spec().to_dict(),
    )
    assert (Path(factorized.path) / "saved_model.pb").exists()
    assert metrics.metadata["params_after"] == 3914 and factorized.metadata["edgeopt_config"]["epochs"] == 1


def test_lowrank_int8_through_the_kfp_recipe_component(tiny_model, digits_examples, tmp_path):
    from edgeopt.components.recipes.config import RecipeConfig
    from edgeopt.components.recipes.kfp_component import optimize_recipe

    optimized = dsl.Model(name="o", uri=str(tmp_path / "optimized"), metadata={})
    optimize_recipe.python_func(
        model=dsl.Model(name="model", uri=str(tiny_model), metadata={}),
        examples=dsl.Dataset(name="e", uri=str(digits_examples), metadata={}),
        optimized_model=optimized, metrics=dsl.Metrics(name="m", uri=str(tmp_path / "m"), metadata={}),
        report=dsl.Markdown(name="r", uri=str(tmp_path / "r"), metadata={}),
        recipe=RecipeConfig.builtin("lowrank_int8").to_json(), data_spec=digits_data_spec().to_dict(),
    )  # fmt: skip
    stored = kernels(Path(optimized.path) / "model.tflite", "INT8")
    assert sum(t.values.size for t in stored) == CONV_KERNEL_WEIGHTS + 256 * 8 + 8 * 32 + HEAD_KERNEL_WEIGHTS
    assert optimized.metadata["recipe"] == "lowrank_int8"


def test_a_factorized_model_factorizes_again_without_name_clashes(tiny_model, digits_data, tmp_path):
    factorize(tiny_model, FactorizationConfig(epochs=0), tmp_path / "once", data=digits_data)
    plan, skipped = plan_factorization(load_keras_model(tmp_path / "once"), FactorizationConfig(rank_fraction=0.5))
    assert [entry.name for entry in plan] == ["dense1_lowrank"]  # 256 x 8 at rank 4
    assert "exists already" in skipped["dense1"]
