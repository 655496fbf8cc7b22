"""One registry line per technique: the recipe schema, the runner's arguments, the docs tables and the KFP
component list all derive from it."""

import pytest

from edgeopt.components.docs import README_CONFIGS
from edgeopt.components.recipes.config import STEP_CLASSES, RecipeConfig
from edgeopt.components.registry import CONVERSION_TECHNIQUES, TECHNIQUES, TRAINING_TECHNIQUES
from edgeopt.pipelines.kfp_pipeline import reusable_components


def test_every_registered_technique_is_a_recipe_step_with_its_own_config():
    assert set(STEP_CLASSES) == set(TECHNIQUES)
    for name, technique in TECHNIQUES.items():
        step = STEP_CLASSES[name]()
        assert step.technique == name and isinstance(step.config, technique.config())
    recipe = RecipeConfig(name="r", steps=[{"technique": "prune"}, {"technique": "quantize"}])
    assert type(recipe.steps[0].config).__name__ == "PruningConfig"


def test_training_and_conversion_techniques_come_from_the_flags():
    assert set(CONVERSION_TECHNIQUES) == {"quantize", "export"}
    assert set(TRAINING_TECHNIQUES) == set(TECHNIQUES) - {"quantize", "export"}
    assert TECHNIQUES["quantize"].step_kwargs(calibration_inputs="c") == {"calibration_inputs": "c"}
    assert TECHNIQUES["prune"].step_kwargs(calibration_inputs="c") == {}
    assert TECHNIQUES["export"].step_kwargs(calibration_inputs="c") == {}


@pytest.mark.parametrize("name", sorted(TECHNIQUES))
def test_each_technique_has_its_docs_table_and_its_kfp_component(name):
    technique = TECHNIQUES[name]
    assert f"edgeopt.components.{technique.config_class}" in README_CONFIGS[technique.folder]
    assert technique.kfp().name in reusable_components()
