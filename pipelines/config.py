"""PipelineConfig: what the ready-made pipelines run, one YAML (configs/pipelines/*.yaml) for TFX and Kubeflow."""

import re
from importlib import resources
from pathlib import Path

import pydantic

from edgeopt.components._shared.config_base import StrictConfig
from edgeopt.components._shared.errors import ConfigError
from edgeopt.components.calibration.config import CalibrationConfig
from edgeopt.components.evaluation.config import EvaluationConfig
from edgeopt.components.evaluation.selection import SelectionConfig
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.search.config import SearchConfig
from edgeopt.pipelines.deployment import RetryPolicy, StepResourcesByKind

# NAME[:TAG][@sha256:DIGEST], NAME being lowercase path components with an optional registry host[:port].
_IMAGE_REFERENCE = re.compile(
    r"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)


def is_image_reference(image: str) -> bool:
    """REGISTRY/NAME[:TAG] or REGISTRY/NAME@sha256:<64 hex digits>, as a container runtime pulls it."""
    return bool(_IMAGE_REFERENCE.fullmatch(image))


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
    search: SearchConfig | None = pydantic.Field(
        None,
        description=(
            "Also run a budgeted search (edgeopt search) beside the recipes: TFX adds ModelOptimizer(search=...) with "
            "its evaluator and pusher (id suffix `search`), KFP a search_model step whose winner joins the "
            "selection. Null: recipes only."
        ),
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
    image: str | None = pydantic.Field(
        None,
        description=(
            "Container image the steps run in on Kubeflow / Vertex AI (built from the Dockerfile and pushed), e.g. "
            "registry.example.com/ml/edgeopt:0.1.0 or ...@sha256:DIGEST. Unset: EDGEOPT_KFP_IMAGE, else "
            "edgeopt:VERSION, which no registry serves."
        ),
    )
    pipeline_root: str | None = pydantic.Field(
        None,
        description="Where the compiled pipeline writes artifacts (gs://bucket/root, s3://..., or a path in the pod).",
    )
    data_source: str | None = pydantic.Field(
        None,
        description=(
            "Default of the data parameter: KFP a CSV path or glob (gs://bucket/digits/*.csv) or an Examples folder; "
            "TFX the folder CsvExampleGen reads. A run may override it."
        ),
    )
    serving_destination: str | None = pydantic.Field(
        None, description="TFX: folder the Pushers write blessed .tflite files under (gs://bucket/serving)."
    )
    tracking_uri: str | None = pydantic.Field(
        None,
        description="MLflow tracking URI the pods log to (http://mlflow:5000). Unset: pods log locally and lose it.",
    )
    resources: StepResourcesByKind = pydantic.Field(
        default_factory=StepResourcesByKind, description="CPU, memory and accelerators per kind of step."
    )
    retry: RetryPolicy = pydantic.Field(default_factory=RetryPolicy, description="Retries of a failed KFP step.")
    timeout_seconds: int | None = pydantic.Field(
        None,
        gt=0,
        description=(
            "KFP on Kubernetes: the run is stopped after this many seconds (a platform spec Vertex AI does not "
            "accept; there, use the job's own timeout). Null: no limit."
        ),
    )
    enable_cache: bool = pydantic.Field(True, description="Reuse results of steps whose inputs did not change.")
    beam_pipeline_args: list[str] | None = pydantic.Field(
        None,
        description=(
            "Beam options of the calibration sampler (KFP) or of every Beam step (TFX), e.g. "
            "['--runner=DataflowRunner', '--project=P', '--region=R', '--temp_location=gs://B/tmp', "
            "'--sdk_container_image=IMAGE']; checked by the sampler's rule (components/calibration/README.md, "
            "'Runners'). Unset: Beam's in-process runner."
        ),
    )
    verbose_logs: bool = pydantic.Field(
        False, description="KFP: log each step's full executor input (~140 lines of JSON) instead of one line."
    )
    selection: SelectionConfig = pydantic.Field(
        default_factory=SelectionConfig, description="Which passing candidate becomes the challenger."
    )
    registered_model: str | None = pydantic.Field(
        "edgeopt-digits",
        description="MLflow registry model that receives the best passing candidate as `challenger` (null: none).",
    )
    experiment_name: str = pydantic.Field("edgeopt", description="MLflow experiment of the pipeline's runs.")

    @pydantic.field_validator("image")
    @classmethod
    def _image_reference(cls, image):
        if image is not None and not is_image_reference(image):
            raise ValueError(
                f"'{image}' is not an image reference; use REGISTRY/NAME[:TAG] or REGISTRY/NAME@sha256:<64 hex digits>"
            )
        return image

    @pydantic.field_validator("beam_pipeline_args")
    @classmethod
    def _beam_options(cls, beam_pipeline_args):
        if beam_pipeline_args is not None:
            from edgeopt.components.calibration.beam_options import sampler_options

            sampler_options(beam_pipeline_args)
        return beam_pipeline_args

    def resolved_image(self) -> str:
        """The config's image, else EDGEOPT_KFP_IMAGE, else edgeopt:VERSION (the same default the components name)."""
        from edgeopt.components._shared.kfp_component import default_image

        return self.image or default_image()

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
