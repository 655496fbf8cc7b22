"""A scheduled retrain-and-compress pipeline for Kubeflow Pipelines v2, also runnable with kfp.local.

read data (path or glob) -> train (the Trainer module's run_fn) -> sample calibration data -> export the float
baseline -> dsl.ParallelFor over recipes: optimize -> evaluate and gate (against the float baseline and the MLflow
champion) -> select the winner -> dsl.If a candidate passed: log to MLflow and register it as `challenger`;
dsl.Else: log to MLflow only.
"""

from pathlib import Path
from typing import List, NamedTuple, Optional

from kfp import compiler, dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Model, Output

from edgeopt.components._shared.kfp_component import IMAGE
from edgeopt.components.calibration.kfp_component import sample_calibration_data
from edgeopt.components.evaluation.kfp_component import evaluate_and_gate
from edgeopt.components.export.kfp_component import export_tflite
from edgeopt.components.recipes.kfp_component import optimize_recipe
from edgeopt.pipelines.config import PipelineConfig

TRAINER_MODULE = "edgeopt.pipelines.digits_trainer_module"


@dsl.component(base_image=IMAGE)
def read_examples(source: str, examples: Output[Dataset], eval_fraction: float = 0.2):
    """Reads CSV files (a path or glob, so each scheduled run sees the data there now) or an Examples folder."""
    from edgeopt.pipelines.steps import read_examples as run_read

    examples.metadata.update(run_read(source, examples.path, eval_fraction=eval_fraction))


@dsl.component(base_image=IMAGE)
def train_model(examples: Input[Dataset], model: Output[Model], module_file: str, epochs: int = 8):
    """Trains with a TFX-style Trainer module's run_fn (the same module the TFX pipeline uses)."""
    from edgeopt.pipelines.steps import train_with_module

    train_with_module(module_file, examples.path, model.path, {"epochs": epochs})


@dsl.component(base_image=IMAGE)
def fetch_champion(champion: Output[Model], tracking_uri: str = "", registered_model: str = ""):
    """Downloads the registry's `champion` .tflite into champion/model.tflite; leaves the folder empty if none."""
    import os

    os.makedirs(champion.path, exist_ok=True)
    if registered_model:
        from edgeopt.components.tracking.mlflow_tracking import download_champion_tflite

        found = download_champion_tflite(registered_model, champion.path, tracking_uri=tracking_uri or None)
        champion.metadata["version"] = found.version if found else ""


@dsl.component(base_image=IMAGE)
def select_winner(
    evaluations: Input[List[Artifact]],
    candidates: Input[List[Model]],
    model: Input[Model],
    bundle: Output[Artifact],
    summary: Output[Markdown],
) -> NamedTuple("Winner", found=bool, recipe=str):
    """Gathers the fan-out into one folder (report.json + each candidate's model.tflite) and picks the best
    candidate that passed its gate (highest accuracy, then smallest gzip size)."""
    from collections import namedtuple

    from edgeopt.pipelines.steps import bundle_candidates

    candidate_dirs = {model.metadata.get("recipe"): model.path for model in candidates}
    winner, markdown = bundle_candidates([e.path for e in evaluations], candidate_dirs, bundle.path, model.path)
    with open(summary.path, "w") as handle:
        handle.write(markdown)
    return namedtuple("Winner", ["found", "recipe"])(bool(winner), winner or "")


@dsl.component(base_image=IMAGE)
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


@dsl.pipeline(name="edgeopt-retrain-and-compress", description="Train, compress with each recipe, gate, register.")
def retrain_and_compress(
    source: str,
    recipes: list,
    tracking_uri: str = "",
    experiment: str = "edgeopt",
    registered_model: str = "",
    calibration_config: dict = {"size": 300, "label_key": "label"},  # noqa: B006 (KFP needs a literal default)
    evaluation_config: dict = {"timed_runs": 50, "warmup_runs": 5},  # noqa: B006
    trainer_epochs: int = 8,
    module_file: str = TRAINER_MODULE,
):
    examples = read_examples(source=source).outputs["examples"]
    model = train_model(examples=examples, module_file=module_file, epochs=trainer_epochs).outputs["model"]
    calibration = sample_calibration_data(examples=examples, config=calibration_config).outputs["calibration"]
    baseline = export_tflite(model=model, examples=examples, module_file=module_file).outputs["tflite_model"]
    champion = fetch_champion(tracking_uri=tracking_uri, registered_model=registered_model).outputs["champion"]
    with dsl.ParallelFor(recipes) as recipe:
        optimized = optimize_recipe(
            model=model, examples=examples, calibration=calibration, recipe=recipe, module_file=module_file
        ).outputs["optimized_model"]
        evaluation = evaluate_and_gate(
            candidate=optimized,
            baseline=baseline,
            examples=examples,
            champion=champion,
            evaluation_config=evaluation_config,
            module_file=module_file,
        ).outputs["evaluation"]
    # KFP 2.17 cannot pass dsl.Collected into a dsl.If branch, so select_winner gathers the fan-out into one bundle.
    winner = select_winner(evaluations=dsl.Collected(evaluation), candidates=dsl.Collected(optimized), model=model)
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
        log_to_mlflow(register=True, **logging).set_display_name("register-challenger")
    with dsl.Else():
        log_to_mlflow(register=False, **logging).set_display_name("log-without-registering")


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
        "trainer_epochs": config.trainer_epochs,
    }


COMPILED_DIR = Path(__file__).resolve().parent / "compiled"


def reusable_components() -> dict:
    """Every KFP component a user may load from YAML, by name."""
    from edgeopt.components.clustering.kfp_component import cluster_weights
    from edgeopt.components.distillation.kfp_component import distill
    from edgeopt.components.factorization.kfp_component import factorize
    from edgeopt.components.pruning.kfp_component import prune
    from edgeopt.components.qat.kfp_component import quantization_aware_train
    from edgeopt.components.quantization.kfp_component import quantize

    components = [
        sample_calibration_data, quantize, quantization_aware_train, prune, cluster_weights, factorize, distill,
        export_tflite,
        optimize_recipe, evaluate_and_gate, read_examples, train_model, fetch_champion, select_winner, log_to_mlflow,
    ]  # fmt: skip
    return {component.name: component for component in components}


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
    task = retrain_and_compress(**arguments)
    return {"tracking_uri": tracking_uri, "pipeline_root": str(root / "pipeline"), "task": task}


if __name__ == "__main__":
    for written in compile_all():
        print(f"wrote {written}")
