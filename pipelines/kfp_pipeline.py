"""A scheduled retrain-and-compress pipeline for Kubeflow Pipelines v2, also runnable with kfp.local.

read data (path or glob) -> train (the Trainer module's run_fn) -> sample calibration data -> export the float
baseline -> dsl.ParallelFor over recipes: optimize -> evaluate and gate (against the float baseline and the MLflow
champion) -> select the winner (with PipelineConfig.search, a search_model step runs beside the fan-out and its
winner joins the candidates) -> dsl.If a candidate passed: log to MLflow and register it as `challenger`;
dsl.Else: log to MLflow only.

`build_pipeline(config)` applies a PipelineConfig's deployment settings (image, pipeline root, resources per step
kind, retries, timeout, caching) and makes its data source, tracking URI and settings the parameters' defaults.
"""

from pathlib import Path
from typing import List, NamedTuple, Optional

from kfp import compiler, dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Model, Output

from edgeopt.components._shared.errors import ConfigError
from edgeopt.components._shared.kfp_component import IMAGE
from edgeopt.components._shared.kfp_logging import VERBOSE_ENV
from edgeopt.components.calibration.kfp_component import sample_calibration_data
from edgeopt.components.evaluation.kfp_component import evaluate_and_gate
from edgeopt.components.export.kfp_component import export_tflite
from edgeopt.components.recipes.kfp_component import optimize_recipe
from edgeopt.components.search.config import SearchConfig
from edgeopt.components.search.kfp_component import search_model
from edgeopt.pipelines.config import PipelineConfig
from edgeopt.pipelines.deployment import step_kind
from edgeopt.pipelines.tfjob_component import launch_tfjob

TRAINER_MODULE = "edgeopt.pipelines.digits_trainer_module"


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def read_examples(source: str, examples: Output[Dataset], eval_fraction: float = 0.2):
    """Reads CSV files (a path or glob, so each scheduled run sees the data there now) or an Examples folder."""
    from edgeopt.pipelines.steps import read_examples as run_read

    examples.metadata.update(run_read(source, examples.path, eval_fraction=eval_fraction))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_model(examples: Input[Dataset], model: Output[Model], module_file: str, epochs: int = 8):
    """Trains with a TFX-style Trainer module's run_fn (the same module the TFX pipeline uses)."""
    from edgeopt.pipelines.steps import train_with_module

    train_with_module(module_file, examples.path, model.path, {"epochs": epochs})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def fetch_champion(champion: Output[Model], tracking_uri: str = "", registered_model: str = ""):
    """Downloads the registry's `champion` .tflite into champion/model.tflite; leaves the folder empty if none."""
    import os

    os.makedirs(champion.path, exist_ok=True)
    if registered_model:
        from edgeopt.components.tracking.mlflow_tracking import download_champion_tflite

        found = download_champion_tflite(registered_model, champion.path, tracking_uri=tracking_uri or None)
        champion.metadata["version"] = found.version if found else ""


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def select_winner(
    evaluations: Input[List[Artifact]],
    candidates: Input[List[Model]],
    model: Input[Model],
    bundle: Output[Artifact],
    summary: Output[Markdown],
    selection: Optional[dict] = None,
    search_results: Optional[Input[Artifact]] = None,
) -> NamedTuple("Winner", found=bool, recipe=str):
    """Gathers the fan-out into one folder (report.json + each candidate's model.tflite) and picks the winner under
    `selection` (a SelectionConfig as a dict; default: smallest gzip size among candidates that passed). With
    `search_results` (search_model's folder), the search's winner joins the candidates with its own gate."""
    from collections import namedtuple

    from edgeopt.pipelines.steps import bundle_candidates

    candidate_dirs = {model.metadata.get("recipe"): model.path for model in candidates}
    paths = [e.path for e in evaluations]
    winner, markdown = bundle_candidates(
        paths, candidate_dirs, bundle.path, model.path, rule=selection,
        search_dir=search_results.path if search_results is not None else None,
    )  # fmt: skip
    with open(summary.path, "w") as handle:
        handle.write(markdown)
    return namedtuple("Winner", ["found", "recipe"])(bool(winner), winner or "")


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def log_to_mlflow(
    bundle: Input[Artifact],
    examples: Input[Dataset],
    register: bool,
    run_id: str,
    calibration: Optional[Input[Dataset]] = None,
    tracking_uri: str = "",
    experiment: str = "edgeopt",
    registered_model: str = "",
) -> str:
    """One MLflow parent run for this pipeline run (tagged kfp and its run id), one child per candidate; with
    `register`, the winner becomes a new version of `registered_model` with alias `challenger`."""
    import json
    import os
    import tempfile

    from edgeopt.components.tracking.config import TrackingConfig
    from edgeopt.components.tracking.mlflow_tracking import tracked_job

    with open(os.path.join(bundle.path, "report.json")) as handle:
        report = json.load(handle)
    config = TrackingConfig(
        tracking_uri=tracking_uri or None,
        experiment_name=experiment,
        registered_model_name=registered_model if register and registered_model else None,
    )
    manifest = os.path.join(calibration.path, "manifest.json") if calibration is not None else None
    with tempfile.TemporaryDirectory() as work:
        with tracked_job(config, orchestrator="kfp", output_dir=work, orchestrator_run_id=run_id) as job:
            job.log_report(report, examples=examples.path, report_dir=bundle.path, calibration_manifest=manifest)
    return job.parent_run_id or ""


PIPELINE_NAME = "edgeopt-retrain-and-compress"


def kfp_search_config(search: SearchConfig) -> dict:
    """The search config as a KFP constant: KFP cannot hold null, and dropping a null is exact for every field whose
    default is null; prune_trials_above_drop (default 10) is the one that is not."""
    if search.prune_trials_above_drop is None:
        raise ConfigError(
            "PipelineConfig.search.prune_trials_above_drop: null cannot be compiled into a KFP pipeline (KFP holds no "
            "null); set 100 (no drop exceeds 100 points, so no trial is stopped)"
        )
    return search.model_dump(mode="json", exclude_none=True)


def _apply_deployment(task, config: PipelineConfig, image: str):
    """Image, resources of the step's kind, retries and caching on one task (pipelines/deployment.py)."""
    resources = config.resources.for_kind(step_kind(task.component_spec.name))
    task.set_container_image(image)
    if resources.cpu_request:
        task.set_cpu_request(f"{resources.cpu_request:g}")
    if resources.cpu_limit:
        task.set_cpu_limit(f"{resources.cpu_limit:g}")
    if resources.memory_request_gb:
        task.set_memory_request(f"{resources.memory_request_gb:g}G")
    if resources.memory_limit_gb:
        task.set_memory_limit(f"{resources.memory_limit_gb:g}G")
    if resources.accelerator_count:
        task.set_accelerator_type(resources.accelerator_type).set_accelerator_limit(resources.accelerator_count)
    retry = config.retry
    if retry.num_retries:
        task.set_retry(
            retry.num_retries,
            backoff_duration=f"{retry.backoff_seconds}s",
            backoff_factor=retry.backoff_factor,
            backoff_max_duration=f"{retry.backoff_max_seconds}s",
        )
    task.set_caching_options(config.enable_cache)
    if config.verbose_logs:
        task.set_env_variable(VERBOSE_ENV, "1")
    return task


def build_pipeline(config: PipelineConfig | None = None, *, config_dir=None):
    """The KFP pipeline with the config's deployment settings: image, pipeline root, resources per step kind,
    retries, timeout, caching; its data source, tracking URI, registry model, recipes and settings become the
    defaults of pipeline parameters a run may override."""
    config = config or PipelineConfig()
    image = config.resolved_image()
    recipes_default = [recipe.model_dump_json() for recipe in config.load_recipes(config_dir)]
    deadline = dsl.PipelineConfig(active_deadline_seconds=config.timeout_seconds) if config.timeout_seconds else None

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Train, compress with each recipe, gate, register.",
        pipeline_root=config.pipeline_root,
        pipeline_config=deadline,
    )
    def retrain_and_compress(
        source: str = config.data_source or "",
        recipes: list = recipes_default,
        tracking_uri: str = config.tracking_uri or "",
        experiment: str = config.experiment_name,
        registered_model: str = config.registered_model or "",
        calibration_config: dict = config.calibration.model_dump(mode="json", exclude_none=True),
        evaluation_config: dict = config.evaluation.model_dump(mode="json", exclude_none=True),
        selection: dict = config.selection.to_dict(),
        trainer_epochs: int = config.trainer_epochs,
        module_file: str = TRAINER_MODULE,
    ):
        def deploy(task):
            return _apply_deployment(task, config, image)

        examples = deploy(read_examples(source=source)).outputs["examples"]
        model = deploy(train_model(examples=examples, module_file=module_file, epochs=trainer_epochs)).outputs["model"]
        beam = {"beam_pipeline_args": config.beam_pipeline_args} if config.beam_pipeline_args else {}
        calibration = deploy(sample_calibration_data(examples=examples, config=calibration_config, **beam)).outputs[
            "calibration"
        ]
        baseline = deploy(export_tflite(model=model, examples=examples, module_file=module_file)).outputs[
            "tflite_model"
        ]
        champion = deploy(fetch_champion(tracking_uri=tracking_uri, registered_model=registered_model)).outputs[
            "champion"
        ]
        with dsl.ParallelFor(recipes) as recipe:
            optimized = deploy(
                optimize_recipe(
                    model=model, examples=examples, calibration=calibration, recipe=recipe, module_file=module_file
                )
            ).outputs["optimized_model"]
            evaluation = deploy(
                evaluate_and_gate(
                    candidate=optimized,
                    baseline=baseline,
                    examples=examples,
                    champion=champion,
                    evaluation_config=evaluation_config,
                    module_file=module_file,
                )
            ).outputs["evaluation"]
        searched = {}
        if config.search is not None:  # compiled in: the search config is a constant of this pipeline, not a parameter
            searched["search_results"] = deploy(
                search_model(
                    model=model,
                    examples=examples,
                    calibration=calibration,
                    config=kfp_search_config(config.search),
                    module_file=module_file,
                    champion=champion,
                )
            ).outputs["search_results"]
        # KFP 2.17 cannot pass dsl.Collected into a dsl.If branch, so select_winner gathers the fan-out into a bundle.
        winner = deploy(
            select_winner(
                evaluations=dsl.Collected(evaluation),
                candidates=dsl.Collected(optimized),
                model=model,
                selection=selection,
                **searched,
            )
        )
        logging = {
            "bundle": winner.outputs["bundle"],
            "examples": examples,
            "calibration": calibration,
            "run_id": dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            "tracking_uri": tracking_uri,
            "experiment": experiment,
            "registered_model": registered_model,
        }
        with dsl.If(winner.outputs["found"] == True):  # noqa: E712 (a KFP condition, not a Python comparison)
            deploy(log_to_mlflow(register=True, **logging)).set_display_name("register-challenger")
        with dsl.Else():
            deploy(log_to_mlflow(register=False, **logging)).set_display_name("log-without-registering")

    return retrain_and_compress


# The pipeline with the default PipelineConfig (pipelines/compiled/retrain_and_compress.yaml).
retrain_and_compress = build_pipeline()


def pipeline_arguments(
    config: PipelineConfig, source: str, *, config_dir=None, tracking_uri: str = "", registered_model: str = ""
) -> dict:
    """The run's arguments from a PipelineConfig: recipes as dicts, calibration and evaluation settings."""
    return {
        "source": source,
        "recipes": [recipe.model_dump_json() for recipe in config.load_recipes(config_dir)],
        "tracking_uri": tracking_uri,
        "registered_model": registered_model,
        # KFP parameters cannot hold null; these configs' unset fields default to null, so dropping them is exact.
        "calibration_config": config.calibration.model_dump(mode="json", exclude_none=True),
        "evaluation_config": config.evaluation.model_dump(mode="json", exclude_none=True),
        "selection": config.selection.to_dict(),
        "trainer_epochs": config.trainer_epochs,
    }


COMPILED_DIR = Path(__file__).resolve().parent / "compiled"


def reusable_components() -> dict:
    """Every KFP component a user may load from YAML, by name: each registered technique's, then the pipeline's."""
    from edgeopt.components.registry import TECHNIQUES

    techniques = [technique.kfp() for technique in TECHNIQUES.values() if technique.kfp_component]
    components = [
        sample_calibration_data, *techniques,
        optimize_recipe, evaluate_and_gate, search_model, read_examples, train_model, fetch_champion, select_winner,
        log_to_mlflow, launch_tfjob,
    ]  # fmt: skip
    return {component.name: component for component in components}


def compile_pipeline(config: PipelineConfig, output_file: str | Path, *, config_dir=None) -> Path:
    """Compiles the pipeline with `config`'s deployment settings (image, root, resources, ...) to KFP YAML."""
    output_file = Path(output_file)
    output_file.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(config, config_dir=config_dir), str(output_file))
    return output_file


def compile_all(output_dir: str | Path = COMPILED_DIR) -> list[Path]:
    """Compiles each component to components/NAME.yaml and the pipeline to retrain_and_compress.yaml."""
    output_dir = Path(output_dir)
    (output_dir / "components").mkdir(parents=True, exist_ok=True)
    written = []
    for name, component in reusable_components().items():
        path = output_dir / "components" / f"{name.replace('-', '_')}.yaml"
        compiler.Compiler().compile(component, str(path))
        written.append(path)
    path = output_dir / "retrain_and_compress.yaml"
    compiler.Compiler().compile(retrain_and_compress, str(path))
    return [*written, path]


def run_local(config: PipelineConfig, root: str | Path, *, source: str | None = None, config_dir=None,
              tracking_uri: str | None = None, registered_model: str = "") -> dict:  # fmt: skip
    """Runs the pipeline with kfp.local's SubprocessRunner in this environment (no containers) under `root`.

    Without `source`, the digits CSV is written to root/data; MLflow defaults to root/mlflow.db.
    """
    from kfp import local

    from edgeopt.components.demo.digits import write_digits_examples

    root = Path(root).resolve()
    if source is None:
        if not (root / "data" / "csv").exists():
            write_digits_examples(root / "data")
        source = str(root / "data" / "csv" / "*.csv")
    tracking_uri = tracking_uri or f"sqlite:///{root / 'mlflow.db'}"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "pipeline"))
    arguments = pipeline_arguments(
        config, source, config_dir=config_dir, tracking_uri=tracking_uri, registered_model=registered_model
    )
    task = build_pipeline(config, config_dir=config_dir)(**arguments)
    return {"tracking_uri": tracking_uri, "pipeline_root": str(root / "pipeline"), "task": task}


if __name__ == "__main__":
    for written in compile_all():
        print(f"wrote {written}")
