"""A production-shaped TFX pipeline with an optimize step after the Trainer, run with LocalDagRunner or compiled
for Kubeflow with KubeflowV2DagRunner.

CsvExampleGen -> StatisticsGen -> SchemaGen -> Trainer -> CalibrationSampler -> TFLiteExporter (float baseline)
  -> per recipe (and with PipelineConfig.search, a search): ModelOptimizer -> CompressionEvaluator (ModelBlessing)
  -> Pusher (pushes only blessed .tflite)
  -> MlflowReporter (one parent run per pipeline run, a child per candidate, the challenger registered)
"""

import os
from pathlib import Path

from tfx import v1 as tfx

from edgeopt.components._shared.data import is_module_name
from edgeopt.components._shared.errors import ConfigError, EdgeoptError
from edgeopt.components.calibration.tfx_component import CalibrationSampler
from edgeopt.components.evaluation.config import GateConfig
from edgeopt.components.evaluation.tfx_component import CompressionEvaluator
from edgeopt.components.export.tfx_component import TFLiteExporter
from edgeopt.components.recipes.tfx_component import ModelOptimizer
from edgeopt.components.tracking.config import TrackingConfig
from edgeopt.components.tracking.tfx_component import MlflowReporter
from edgeopt.pipelines.config import PipelineConfig
from edgeopt.pipelines.deployment import step_kind

# A module name, not a file path: it resolves wherever edgeopt is installed, the Kubeflow image included.
TRAINER_MODULE = "edgeopt.pipelines.digits_trainer_module"
TRAIN_STEPS = 45  # one epoch of the digits train split at batch 32; the module's run_fn sets its own epochs
#: Component id suffix (Optimize_search, ...) and serving folder of the search branch (PipelineConfig.search).
SEARCH_BRANCH = "search"
# Beam's in-process runner: the default DirectRunner first tries Prism, which downloads a binary at run time.
BEAM_PIPELINE_ARGS = ["--runner=FnApiRunner"]


def create_pipeline(
    config: PipelineConfig,
    *,
    data_root: str,
    pipeline_root: str,
    serving_root: str,
    metadata_path: str | None = None,
    config_dir: str | None = None,
    module_file: str = TRAINER_MODULE,
    beam_pipeline_args: list[str] | None = None,
    tracking: TrackingConfig | None = None,
) -> tfx.dsl.Pipeline:
    """Builds the pipeline; every edgeopt component validates its config here, before anything runs.

    Args:
      config: recipes, calibration and evaluation settings.
      data_root: folder with the CSV files CsvExampleGen reads (or a RuntimeParameter).
      pipeline_root: where TFX writes artifacts.
      serving_root: the Pushers write blessed .tflite files under serving_root/RECIPE/.
      metadata_path: SQLite MLMD file (LocalDagRunner); None when compiling for Kubeflow.
      config_dir: folder relative recipe paths in the config are resolved against.
      module_file: the Trainer module's import name; its run_fn trains, its input_fn feeds the fine-tuning steps.
      beam_pipeline_args: for the Beam-based steps (default: the config's `beam_pipeline_args`, else
        BEAM_PIPELINE_ARGS, Beam's in-process FnApiRunner).
      tracking: where MlflowReporter logs the run and registers the challenger (None: no MLflow step).
    """
    recipes = config.load_recipes(config_dir)
    example_gen = tfx.components.CsvExampleGen(input_base=data_root)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    trainer = tfx.components.Trainer(
        run_fn=f"{module_file}.run_fn",
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=TRAIN_STEPS),
        eval_args=tfx.proto.EvalArgs(num_steps=5),
        custom_config={"epochs": config.trainer_epochs},
    )
    examples = example_gen.outputs["examples"]
    sampler = CalibrationSampler(examples=examples, config=config.calibration)
    baseline = TFLiteExporter(model=trainer.outputs["model"], examples=examples, module_file=module_file).with_id(
        "BaselineExporter"
    )
    components = [example_gen, statistics_gen, schema_gen, trainer, sampler, baseline]
    evaluations = []
    # Each branch: (name, the optimizer's recipe or search config, its gate); a search gates on its budget.
    branches = [(recipe.name, {"config": recipe}, recipe.gate) for recipe in recipes]
    if config.search is not None:
        branches.append(
            (SEARCH_BRANCH, {"search": config.search}, GateConfig(max_accuracy_drop=config.search.max_accuracy_drop))
        )
    for name, optimizer_config, gate in branches:
        optimizer = ModelOptimizer(
            model=trainer.outputs["model"],
            examples=examples,
            calibration=sampler.outputs["calibration"],
            module_file=module_file,
            **optimizer_config,
        ).with_id(f"Optimize_{name}")
        evaluator = CompressionEvaluator(
            model=optimizer.outputs["output_model"],
            baseline_model=baseline.outputs["output_model"],
            examples=examples,
            gate=gate,
            evaluation=config.evaluation,
            module_file=module_file,
        ).with_id(f"Evaluate_{name}")
        pusher = tfx.components.Pusher(
            model=optimizer.outputs["output_model"],
            model_blessing=evaluator.outputs["blessing"],
            push_destination=tfx.proto.PushDestination(
                filesystem=tfx.proto.PushDestination.Filesystem(base_directory=f"{serving_root.rstrip('/')}/{name}")
            ),
        ).with_id(f"Push_{name}")
        components += [optimizer, evaluator, pusher]
        evaluations.append(evaluator.outputs["evaluation"])
    if tracking is not None:
        components.append(
            MlflowReporter(
                evaluations=evaluations,
                model=trainer.outputs["model"],
                examples=examples,
                calibration=sampler.outputs["calibration"],
                tracking=tracking,
                selection=config.selection,
            )
        )
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=(
            tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path) if metadata_path else None
        ),
        beam_pipeline_args=(
            beam_pipeline_args if beam_pipeline_args is not None else config.beam_pipeline_args or BEAM_PIPELINE_ARGS
        ),
    )


def run_local(config: PipelineConfig, root: str | os.PathLike, *, config_dir=None, tracking_uri=None) -> dict:
    """Runs the pipeline with LocalDagRunner (Beam DirectRunner) under `root`; returns where things are.

    The digits CSV is written to root/data on first use; MLMD is root/metadata.sqlite; MLflow defaults to
    root/mlflow.db.
    """
    from edgeopt.components.demo.digits import write_digits_examples

    root = Path(root).resolve()
    data_root = root / "data" / "csv"
    if not data_root.exists():
        write_digits_examples(root / "data")
    paths = {
        "data_root": str(data_root),
        "pipeline_root": str(root / "pipeline"),
        "serving_root": str(root / "serving"),
        "metadata_path": str(root / "metadata.sqlite"),
    }
    tracking = TrackingConfig(
        tracking_uri=tracking_uri or f"sqlite:///{root / 'mlflow.db'}",
        experiment_name=config.experiment_name,
        registered_model_name=config.registered_model,
    )
    pipeline = create_pipeline(config, config_dir=config_dir, tracking=tracking, **paths)
    paths["tracking_uri"] = tracking.tracking_uri
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return paths


def _resource_spec(resources):
    """A step's resources as the ResourceSpec KubeflowV2DagRunner reads from `with_platform_config`."""
    from kfp.pipeline_spec import pipeline_spec_pb2 as pipeline_pb2

    spec = pipeline_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
    if resources.cpu_limit:
        spec.cpu_limit = resources.cpu_limit
    if resources.memory_limit_gb:
        spec.memory_limit = resources.memory_limit_gb
    if resources.accelerator_count:
        spec.accelerator.type = resources.accelerator_type
        spec.accelerator.count = resources.accelerator_count
    return spec


def compile_for_kubeflow(
    config: PipelineConfig, output_file: str | os.PathLike, *, config_dir=None, module_file: str = TRAINER_MODULE
) -> str:
    """Compiles the pipeline to Kubeflow Pipelines v2 / Vertex AI JSON with KubeflowV2DagRunner.

    It names `config.resolved_image()`, writes under `config.pipeline_root`, pushes under
    `config.serving_destination`, reports to MLflow at `config.tracking_uri`, and gives every step the limits of
    its kind (`config.resources`). The data folder is the runtime parameter `data_root` (default
    `config.data_source`). Nothing here opens the pipeline root: only a Trainer `module_file` given as a file path
    would (TFX packages it into a wheel under the root), so the module is an import name.
    """
    if not is_module_name(module_file):
        raise ConfigError(
            f"module_file {module_file} is a file path; compiling for Kubeflow needs an import name installed in the "
            "image (a path would be packaged into a wheel under the pipeline root at compile time)"
        )
    output_file = Path(output_file)
    data_root = tfx.dsl.experimental.RuntimeParameter(
        name="data_root", ptype=str, default=config.data_source or "/data/csv"
    )
    tracking = TrackingConfig(
        tracking_uri=config.tracking_uri,
        experiment_name=config.experiment_name,
        registered_model_name=config.registered_model,
    )
    pipeline = create_pipeline(
        config,
        data_root=data_root,
        pipeline_root=config.pipeline_root or "/pipeline-root",
        serving_root=config.serving_destination or "/serving",
        config_dir=config_dir,
        module_file=module_file,
        tracking=tracking,
    )
    for component in pipeline.components:
        component.with_platform_config(_resource_spec(config.resources.for_kind(step_kind(component.id))))
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=config.resolved_image()),
        output_dir=str(output_file.parent),
        output_filename=output_file.name,
    )
    runner.run(pipeline, write_out=True)
    if not output_file.exists():
        raise EdgeoptError(f"KubeflowV2DagRunner wrote no {output_file}")
    return str(output_file)
