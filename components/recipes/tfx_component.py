"""TFX face of recipes: `ModelOptimizer` runs a whole recipe (Model + Examples [+ CalibrationData] -> .tflite Model)."""

import os

from tfx.dsl.components.base import executor_spec
from tfx.types.component_spec import ExecutionParameter

from edgeopt.components._shared import tfx_component as face
from edgeopt.components._shared.errors import ConfigError
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.recipes.core import run_recipe_to_folder
from edgeopt.components.search.config import SearchConfig

STEPS_DIR = "steps"
SEARCH_KEY = "search"


class ModelOptimizerSpec(face.ModelStepSpecBase):
    # Exactly one of a recipe (config) or a search config; the component's constructor checks it.
    PARAMETERS = {
        **face.ModelStepSpecBase.PARAMETERS,
        face.CONFIG_KEY: ExecutionParameter(type=str, optional=True),
        SEARCH_KEY: ExecutionParameter(type=str, optional=True),
    }


class ModelOptimizerExecutor(face.ModelStepExecutor):
    CONFIG_CLASS = RecipeConfig
    OUTPUT_FORMAT = face.TFLITE_FORMAT

    def _do(self, input_dict, output_dict, exec_properties):  # Do (the base's) stages remote artifacts locally
        self._log_startup(input_dict, output_dict, exec_properties)
        output = face.single(output_dict, face.OUTPUT_MODEL_KEY)
        if exec_properties.get(SEARCH_KEY):
            from edgeopt.components.search.tfx_component import search_into_model

            search_into_model(input_dict, output, SearchConfig.from_json(exec_properties[SEARCH_KEY]), exec_properties)
            return
        recipe = RecipeConfig.from_json(exec_properties[face.CONFIG_KEY])
        data = face.training_data(input_dict, exec_properties)
        calibration = None
        if input_dict.get(face.CALIBRATION_KEY):
            calibration = face.single_uri(input_dict, face.CALIBRATION_KEY)
        # Intermediate models stay under steps/ for tracing; the served .tflite goes where the Pusher looks.
        steps = run_recipe_to_folder(
            face.single_uri(input_dict, face.MODEL_KEY),
            recipe,
            os.path.join(output.uri, STEPS_DIR),
            face.serving_dir(output),
            data=data,
            calibration_dir=calibration,
        )
        output.set_string_custom_property("recipe", recipe.name)
        output.set_string_custom_property("technique_chain", recipe.technique_chain)
        face.record_result(
            output,
            model_format=self.OUTPUT_FORMAT,
            config=recipe,
            result={key: value for key, value in steps[-1]["result"].items() if key != "tflite_path"},
        )


class ModelOptimizer(face.ModelStepComponent):
    """Runs a recipe (e.g. prune -> quantize), or with `search=` a budgeted search (the winner's .tflite, the search
    folder under search/, the step failing when no trial is within the budget), in one step; the output Model holds
    Format-Serving/model.tflite.

    Example:
      optimizer = ModelOptimizer(model=trainer.outputs["model"], examples=example_gen.outputs["examples"],
                                 config=RecipeConfig.from_yaml("configs/recipes/prune80_int8.yaml"),
                                 calibration=sampler.outputs["calibration"], module_file="trainer_module.py")
      searcher = ModelOptimizer(model=trainer.outputs["model"], examples=example_gen.outputs["examples"],
                                search=SearchConfig(trials=40), module_file="trainer_module.py")
    """

    SPEC_CLASS = ModelOptimizerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(ModelOptimizerExecutor)
    CONFIG_CLASS = RecipeConfig

    def __init__(self, model, examples, config=None, *, search=None, **kwargs):
        self._search = search
        super().__init__(model, examples, config, **kwargs)

    def config_parameters(self, config) -> dict:
        if self._search is None:
            return super().config_parameters(config)
        if config is not None:
            raise ConfigError("ModelOptimizer takes a recipe (config) or a search config (search), not both; drop one")
        return {SEARCH_KEY: face.validated_config(SearchConfig, self._search).to_json()}
