"""`edgeopt pipeline run|compile --engine tfx|kfp` and `edgeopt schedule`: the ready-made pipelines."""

import json
import sys
from pathlib import Path

ENGINES = ("tfx", "kfp")


def _load_config(path):
    from edgeopt.pipelines.config import PipelineConfig

    if path is None:
        return PipelineConfig(), None
    return PipelineConfig.from_yaml(path), str(Path(path).resolve().parent)


def run_pipeline(args) -> int:
    config, config_dir = _load_config(args.config)
    if args.engine == "tfx":
        from edgeopt.pipelines.tfx_pipeline import run_local

        paths = run_local(config, args.root, config_dir=config_dir, tracking_uri=args.tracking_uri)
        print(
            f"pipeline {config.pipeline_name} finished; MLMD {paths['metadata_path']}; MLflow {paths['tracking_uri']}"
        )
        print(f"blessed models pushed under {paths['serving_root']}")
        return 0
    from edgeopt.pipelines.kfp_pipeline import run_local

    result = run_local(
        config,
        args.root,
        source=args.source,
        config_dir=config_dir,
        tracking_uri=args.tracking_uri,
        registered_model=args.register_model or config.registered_model or "",
    )
    print(f"pipeline finished; artifacts under {result['pipeline_root']}; MLflow at {result['tracking_uri']}")
    return 0


# `pipeline compile` flags that override PipelineConfig fields.
COMPILE_OVERRIDES = {
    "image": "image",
    "pipeline_root": "pipeline_root",
    "source": "data_source",
    "serving_destination": "serving_destination",
    "tracking_uri": "tracking_uri",
    "register_model": "registered_model",
}


def _with_overrides(config, args):
    from edgeopt.pipelines.config import PipelineConfig

    overrides = {field: getattr(args, flag) for flag, field in COMPILE_OVERRIDES.items() if getattr(args, flag, None)}
    if getattr(args, "no_cache", False):
        overrides["enable_cache"] = False
    if getattr(args, "verbose_logs", False):
        overrides["verbose_logs"] = True
    return PipelineConfig(**{**config.model_dump(mode="json"), **overrides}) if overrides else config


def _warn_without_tracking(tracking_uri):
    if not tracking_uri:
        print(
            "warning: no MLflow tracking URI (--tracking-uri or the config's tracking_uri): each pod would log to "
            "its own ./mlruns and lose it when it ends",
            file=sys.stderr,
        )


def compile_pipeline(args) -> int:
    config, config_dir = _load_config(args.config)
    config = _with_overrides(config, args)
    _warn_without_tracking(config.tracking_uri)
    if args.engine == "tfx":
        from edgeopt.pipelines.tfx_pipeline import compile_for_kubeflow

        print(f"wrote {compile_for_kubeflow(config, args.out, config_dir=config_dir)}")
        return 0
    from edgeopt.pipelines.kfp_pipeline import compile_pipeline as compile_kfp

    print(f"wrote {compile_kfp(config, args.out, config_dir=config_dir)}")
    return 0


def schedule_pipeline(args) -> int:
    from edgeopt.pipelines.kfp_pipeline import pipeline_arguments
    from edgeopt.pipelines.schedule import recurring_run_request, submit

    config, config_dir = _load_config(args.config)
    _warn_without_tracking(args.tracking_uri)
    params = pipeline_arguments(
        config, args.source, config_dir=config_dir, tracking_uri=args.tracking_uri, registered_model=args.register_model
    )
    request = recurring_run_request(
        args.cron, pipeline_package=args.package, params=params, experiment=args.experiment, job_name=args.job_name
    )
    if args.dry_run:
        print(json.dumps(request.to_dict(), indent=2))
        return 0
    created = submit(request, args.host)
    print(f"created recurring run {getattr(created, 'recurring_run_id', created)} on {args.host}")
    return 0


def add_commands(commands):
    pipeline = commands.add_parser("pipeline", help="run or compile the ready-made optimize pipeline")
    actions = pipeline.add_subparsers(dest="pipeline_command", required=True)
    run = actions.add_parser(
        "run", help="run it here (tfx: LocalDagRunner + SQLite MLMD; kfp: kfp.local SubprocessRunner, no containers)"
    )
    run.add_argument("--engine", choices=ENGINES, required=True)
    run.add_argument("--root", required=True, help="folder for data, artifacts, metadata and pushed models")
    run.add_argument("--config", help="pipeline YAML (default: the settings of configs/pipelines/digits.yaml)")
    run.add_argument("--source", help="kfp: CSV path or glob, or an Examples folder (default: digits in ROOT/data)")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///ROOT/mlflow.db)")
    run.add_argument("--register-model", help="kfp: registry model for the challenger (default: the config's)")
    run.set_defaults(handler=run_pipeline)

    compile_ = actions.add_parser(
        "compile",
        help="compile it for Kubeflow or Vertex AI (tfx: KubeflowV2DagRunner JSON; kfp: YAML); flags override config",
    )
    compile_.add_argument("--engine", choices=ENGINES, required=True)
    compile_.add_argument("--out", required=True, help="output file (.json for tfx, .yaml for kfp)")
    compile_.add_argument("--config", help="pipeline YAML (PipelineConfig: image, resources, retry, selection, ...)")
    compile_.add_argument(
        "--image",
        help="image every step runs in, IMAGE[:TAG] or IMAGE@sha256:DIGEST (default: the config's image, else "
        "$EDGEOPT_KFP_IMAGE, else edgeopt:VERSION, which no registry serves)",
    )
    compile_.add_argument("--pipeline-root", help="artifact root, e.g. gs://bucket/edgeopt (default: the config's)")
    compile_.add_argument(
        "--source", help="default data: kfp a CSV path or glob (gs://bucket/digits/*.csv); tfx the CSV folder"
    )
    compile_.add_argument("--serving-destination", help="tfx: folder blessed models are pushed under (gs://...)")
    compile_.add_argument("--tracking-uri", help="MLflow tracking URI the pods log to, e.g. http://mlflow:5000")
    compile_.add_argument("--register-model", help="registry model that receives the challenger")
    compile_.add_argument("--no-cache", action="store_true", help="turn off step caching")
    compile_.add_argument(
        "--verbose-logs", action="store_true", help="kfp: each step logs its full executor input (default: one line)"
    )
    compile_.set_defaults(handler=compile_pipeline)

    schedule = commands.add_parser("schedule", help="create a Kubeflow recurring run of the compiled KFP pipeline")
    schedule.add_argument("--host", required=True, help="Kubeflow Pipelines API endpoint, e.g. http://ml-pipeline:8888")
    schedule.add_argument("--cron", required=True, help="six-field cron, seconds first: '0 0 3 * * *' = 03:00 daily")
    schedule.add_argument("--experiment", default="edgeopt", help="KFP experiment (default edgeopt)")
    schedule.add_argument("--job-name", help="recurring run name (default EXPERIMENT-retrain-and-compress)")
    schedule.add_argument(
        "--package", default="pipelines/compiled/retrain_and_compress.yaml", help="compiled pipeline YAML"
    )
    schedule.add_argument("--source", required=True, help="data path or glob each run reads (new data each time)")
    schedule.add_argument("--config", help="pipeline YAML (recipes, calibration, evaluation)")
    schedule.add_argument("--tracking-uri", default="", help="MLflow tracking URI the runs log to")
    schedule.add_argument("--register-model", default="edgeopt-digits", help="registry model for the challenger")
    schedule.add_argument("--dry-run", action="store_true", help="print the request instead of sending it")
    schedule.set_defaults(handler=schedule_pipeline)
