"""Config schemas: defaults validate, bad values are rejected with the field named, JSON round-trips, and every
YAML under configs/ validates."""

from pathlib import Path

import pytest
import yaml

from edgeopt.components._shared.data import DataSpec
from edgeopt.components._shared.errors import ConfigError
from edgeopt.components.clustering.config import ClusteringConfig
from edgeopt.components.evaluation.config import EvaluationConfig, GateConfig
from edgeopt.components.export.config import ExportConfig
from edgeopt.components.pruning.config import PruningConfig
from edgeopt.components.qat.config import QatConfig
from edgeopt.components.quantization.config import QuantizationConfig, QuantizationMode
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.registry import TECHNIQUES

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ALL_CONFIG_CLASSES = [
    QuantizationConfig,
    ExportConfig,
    QatConfig,
    PruningConfig,
    ClusteringConfig,
    EvaluationConfig,
    GateConfig,
]


@pytest.mark.parametrize("config_class", ALL_CONFIG_CLASSES, ids=lambda c: c.__name__)
def test_defaults_validate_and_round_trip_through_json(config_class):
    config = config_class()
    assert config_class.from_json(config.to_json()) == config


@pytest.mark.parametrize("config_class", ALL_CONFIG_CLASSES, ids=lambda c: c.__name__)
def test_every_field_has_a_description(config_class):
    undocumented = [name for name, field in config_class.model_fields.items() if not field.description]
    assert undocumented == []


@pytest.mark.parametrize(
    ("config_class", "values", "message"),
    [
        (PruningConfig, {"target_sparsity": 1.5}, r"PruningConfig\.target_sparsity: Input should be less than 1"),
        (PruningConfig, {"target_sparsity": 0.0}, r"PruningConfig\.target_sparsity: Input should be greater than 0"),
        (PruningConfig, {"epochs": 0}, r"PruningConfig\.epochs"),
        (PruningConfig, {"structure": "3:4"}, r"PruningConfig\.structure: Input should be 'unstructured' or '2:4'"),
        (PruningConfig, {"initial_sparsity": 0.9, "target_sparsity": 0.5}, r"initial_sparsity 0.9 must be below"),
        (PruningConfig, {"target_sparsty": 0.5}, r"PruningConfig\.target_sparsty: unknown field"),
        (ClusteringConfig, {"number_of_clusters": 1}, r"ClusteringConfig\.number_of_clusters"),
        (ClusteringConfig, {"centroid_init": "kmeans"}, r"ClusteringConfig\.centroid_init: Input should be"),
        (QuantizationConfig, {"mode": "int4"}, r"QuantizationConfig\.mode: Input should be 'dynamic_range'"),
        (QuantizationConfig, {"calibration_examples": 0}, r"QuantizationConfig\.calibration_examples"),
        (QatConfig, {"learning_rate": 2.0}, r"QatConfig\.learning_rate"),
        (QatConfig, {"scheme": "prune_preserve", "layer_types": ["Dense"]}, r"quantizes the whole model"),
        (GateConfig, {"max_accuracy_drop": -1}, r"GateConfig\.max_accuracy_drop"),
        (EvaluationConfig, {"timed_runs": 0}, r"EvaluationConfig\.timed_runs"),
    ],
)
def test_bad_values_are_rejected_naming_the_field(config_class, values, message):
    with pytest.raises(ConfigError, match=message):
        config_class(**values)


def test_configs_are_frozen():
    config = PruningConfig()
    with pytest.raises(Exception, match="frozen"):
        config.target_sparsity = 0.5


def test_string_enums_serialize_as_strings():
    assert QuantizationConfig(mode="float16").to_dict()["mode"] == "float16"
    assert QuantizationConfig(mode="float16").mode is QuantizationMode.FLOAT16


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"technique": "prune"}], "the last step must be quantize or export"),
        ([{"technique": "quantize"}, {"technique": "export"}], "may only be the last step"),
        ([{"technique": "qat"}, {"technique": "export"}], "must be followed by quantize"),
        ([{"technique": "qat", "config": {"scheme": "prune_preserve"}}, {"technique": "quantize"}], "no earlier"),
        (
            [{"technique": "cluster", "config": {"preserve_sparsity": True}}, {"technique": "quantize"}],
            "needs an earlier prune step",
        ),
        ([{"technique": "qat"}, {"technique": "prune"}, {"technique": "quantize"}], "qat must come right before"),
        (
            [{"technique": "qat"}, {"technique": "quantize", "config": {"dense_granularity": "per_tensor"}}],
            "dense_granularity has no effect after a qat step",
        ),
        ([{"technique": "teleport"}], "does not match any of the expected tags"),
    ],
)
def test_recipe_chain_rules(steps, message):
    with pytest.raises(ConfigError, match=message):
        RecipeConfig(name="bad", steps=steps)


def test_recipe_names_are_identifiers():
    with pytest.raises(ConfigError, match=r"RecipeConfig\.name"):
        RecipeConfig(name="Bad Name", steps=[{"technique": "export"}])


RECIPE_FILES = sorted((CONFIGS / "recipes").glob("*.yaml"))


def test_the_issue_recipes_all_exist():
    expected = {
        "ptq_int8", "ptq_dynamic", "ptq_fp16", "ptq_int16x8", "qat", "prune80_int8",
        "prune_2of4_int8", "cluster16_int8", "pqat", "cqat", "pcqat", "lowrank_int8", "distill_half_int8",
    }  # fmt: skip
    assert expected <= {path.stem for path in RECIPE_FILES}


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: p.name)
def test_every_recipe_yaml_validates_and_is_named_after_its_file(path):
    recipe = RecipeConfig.from_yaml(path)
    assert recipe.name == path.stem
    assert RecipeConfig.from_json(recipe.to_json()) == recipe
    assert all(step.technique in TECHNIQUES for step in recipe.steps)


@pytest.mark.parametrize("path", sorted((CONFIGS / "data").glob("*.yaml")), ids=lambda p: p.name)
def test_every_data_spec_yaml_validates(path):
    spec = DataSpec.from_yaml(path)
    assert spec.features


def test_yaml_errors_name_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump({"name": "broken", "steps": [{"technique": "prune", "config": {"epochs": -1}}]}))
    with pytest.raises(ConfigError, match=r"broken\.yaml: .*PruningConfig|broken\.yaml: .*epochs"):
        RecipeConfig.from_yaml(path)


def test_data_spec_rejects_mismatched_reshape():
    with pytest.raises(ConfigError, match=r"input_shape \[8, 8, 2\] holds 128 values but the features hold 64"):
        DataSpec(features=[{"key": "pixels", "shape": [64]}], label_key="label", input_shape=[8, 8, 2])
