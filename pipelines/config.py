"""PipelineConfig: what the ready-made pipelines run, one YAML (configs/pipelines/*.yaml) for TFX and Kubeflow."""

from importlib import resources
from pathlib import Path

import pydantic

from edgeopt.components._shared.config_base import StrictConfig
from edgeopt.components._shared.errors import ConfigError
from edgeopt.components.calibration.config import CalibrationConfig
from edgeopt.components.evaluation.config import EvaluationConfig
from edgeopt.components.recipes.config import RecipeConfig


class PipelineConfig(StrictConfig):
    """A train -> sample calibration data -> optimize -> evaluate -> push pipeline on the digits data."""

    pipeline_name: str = pydantic.Field(
        "edgeopt-digits", pattern=r"^[a-z0-9][a-z0-9-]*$", description="Pipeline name (MLMD context, KFP name)."
    )
    recipes: list[str] = pydantic.Field(
        default_factory=lambda: ["ptq_int8", "prune80_int8"],
        min_length=1,
        description="Recipes to run in parallel: built-in names (configs/recipes/NAME.yaml) or paths to YAML files.",
    )
    calibration: CalibrationConfig = pydantic.Field(
        default_factory=lambda: CalibrationConfig(size=300, label_key="label"),
        description="Calibration sampler settings.",
    )
    evaluation: EvaluationConfig = pydantic.Field(
        default_factory=lambda: EvaluationConfig(timed_runs=50, warmup_runs=5),
        description="How candidates are measured.",
    )
    trainer_epochs: pydantic.PositiveInt = pydantic.Field(8, description="Epochs of the Trainer's run_fn.")
    image: str = pydantic.Field(
        "edgeopt:0.1.0", description="Container image the steps run in on Kubeflow (built from the Dockerfile)."
    )
    enable_cache: bool = pydantic.Field(True, description="Reuse results of steps whose inputs did not change.")
    registered_model: str | None = pydantic.Field(
        "edgeopt-digits",
        description="MLflow registry model that receives the best passing candidate as `challenger` (null: none).",
    )
    experiment_name: str = pydantic.Field("edgeopt", description="MLflow experiment of the pipeline's runs.")

    def load_recipes(self, base_dir: str | Path | None = None) -> list[RecipeConfig]:
        """Resolves names to the built-in recipes and relative paths against `base_dir` (the config's folder)."""
        recipes = []
        for entry in self.recipes:
            if entry.endswith((".yaml", ".yml")):
                path = Path(entry) if Path(entry).is_absolute() or base_dir is None else Path(base_dir) / entry
            else:
                path = Path(str(resources.files("edgeopt.configs") / "recipes" / f"{entry}.yaml"))
            if not path.exists():
                raise ConfigError(f"PipelineConfig.recipes: {entry} is neither a built-in recipe nor an existing file")
            recipes.append(RecipeConfig.from_yaml(path))
        names = [recipe.name for recipe in recipes]
        if len(set(names)) != len(names):
            raise ConfigError(f"PipelineConfig.recipes: recipe names repeat in {names}; each needs its own name")
        return recipes
