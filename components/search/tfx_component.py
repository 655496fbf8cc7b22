"""TFX face of the search: `ModelSearcher` runs a budgeted search (Model + Examples [+ CalibrationData] -> the
winner's .tflite Model); the search folder (reports, trials table, search.db) stays beside it under search/."""

import os
import shutil

from tfx.dsl.components.base import executor_spec

from edgeopt.components._shared import tfx_component as face
from edgeopt.components._shared.errors import OptimizationNotAchievedError
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.search.config import SearchConfig
from edgeopt.components.search.core import search

SEARCH_DIR = "search"


class ModelSearcherSpec(face.ModelStepSpecBase):
    pass


def search_into_model(input_dict: dict, output, config: SearchConfig, exec_properties: dict) -> dict:
    """Runs the search into OUTPUT/search/ and publishes the winner's .tflite at Format-Serving/model.tflite with
    its numbers as custom properties; fails the step when no trial is within the budget (so nothing is pushed).
    Shared by ModelSearcher and ModelOptimizer(search=...)."""
    calibration = None
    if input_dict.get(face.CALIBRATION_KEY):
        calibration = face.single_uri(input_dict, face.CALIBRATION_KEY)
    # A retried execution reuses the output URI, so the study in search/search.db resumes instead of restarting.
    report = search(
        face.single_uri(input_dict, face.MODEL_KEY),
        config,
        os.path.join(output.uri, SEARCH_DIR),
        data=face.training_data(input_dict, exec_properties),
        calibration_dir=calibration,
    )
    summary = report["search"]
    if summary["winner"] is None:
        raise OptimizationNotAchievedError(
            f"no trial of {summary['trials']} stayed within max_accuracy_drop={config.max_accuracy_drop} pt "
            f"(see {os.path.join(output.uri, SEARCH_DIR, 'trials.md')}); raise the budget or the trials"
        )
    winner = next(c for c in report["candidates"] if c["recipe"] == summary["winner"])
    os.makedirs(face.serving_dir(output), exist_ok=True)
    shutil.copy2(winner["tflite_path"], face.tflite_path(output))
    output.set_string_custom_property("recipe", winner["recipe"])
    output.set_string_custom_property("technique_chain", "+".join(winner["steps"]))
    keys = ("tflite_bytes", "gzip_bytes", "accuracy", "accuracy_drop", "gzip_ratio", "size_ratio", "max_abs_diff",
            "top1_agreement")  # fmt: skip
    # The artifact carries the recipe that made its .tflite (as ModelOptimizer's do), and the search that chose it.
    output.set_string_custom_property("edgeopt_search_config", config.to_json())
    face.record_result(
        output,
        model_format=face.TFLITE_FORMAT,
        config=RecipeConfig.from_dict(winner["config"]),
        result={"trials": summary["trials"], **{key: winner[key] for key in keys if winner.get(key) is not None}},
    )
    return report


class ModelSearcherExecutor(face.ModelStepExecutor):
    CONFIG_CLASS = SearchConfig
    OUTPUT_FORMAT = face.TFLITE_FORMAT

    def _do(self, input_dict, output_dict, exec_properties):  # Do (the base's) stages remote artifacts locally
        self._log_startup(input_dict, output_dict, exec_properties)
        config = SearchConfig.from_json(exec_properties[face.CONFIG_KEY])
        search_into_model(input_dict, face.single(output_dict, face.OUTPUT_MODEL_KEY), config, exec_properties)


class ModelSearcher(face.ModelStepComponent):
    """Searches technique chains within an accuracy budget; the output Model holds the winner's
    Format-Serving/model.tflite, and the step fails when no trial is within the budget.

    Example:
      searcher = ModelSearcher(model=trainer.outputs["model"], examples=example_gen.outputs["examples"],
                               config=SearchConfig(trials=40), module_file="trainer_module.py")
    """

    SPEC_CLASS = ModelSearcherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(ModelSearcherExecutor)
    CONFIG_CLASS = SearchConfig
