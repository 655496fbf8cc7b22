"""KFP face of recipes: `optimize_recipe` runs a whole recipe (Model + Dataset [+ calibration] -> .tflite Model)."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from edgeopt.components._shared.kfp_component import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def optimize_recipe(
    model: Input[Model],
    examples: Input[Dataset],
    optimized_model: Output[Model],
    metrics: Output[Metrics],
    report: Output[Markdown],
    recipe: str,
    calibration: Optional[Input[Dataset]] = None,
    data_spec: Optional[dict] = None,
    module_file: str = "",
):
    """Runs a recipe (RecipeConfig as JSON, e.g. `RecipeConfig.builtin("ptq_int8").to_json()`; JSON because KFP
    parameters cannot hold the nulls a recipe may set); the output folder holds model.tflite, each step under steps/."""
    from edgeopt.components._shared.kfp_runtime import optimize_recipe_in_folder, training_data
    from edgeopt.components.recipes.config import RecipeConfig

    settings = RecipeConfig.from_json(recipe)
    data = training_data(examples.path, data_spec, module_file)
    result = optimize_recipe_in_folder(
        model.path, settings, optimized_model.path, data, calibration and calibration.path
    )
    optimized_model.metadata.update(result["metadata"])
    for name, value in result["metrics"].items():
        metrics.log_metric(name, value)
    with open(report.path, "w") as handle:
        handle.write(result["markdown"])
