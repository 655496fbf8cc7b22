"""`edgeopt pipeline run|compile --engine tfx|kfp` and `edgeopt schedule`: the ready-made pipelines."""

import json
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


def compile_pipeline(args) -> int:
    config, config_dir = _load_config(args.config)
    if args.engine == "tfx":
        from edgeopt.pipelines.tfx_pipeline import compile_for_kubeflow

        print(f"wrote {compile_for_kubeflow(config, args.out, config_dir=config_dir)}")
        return 0
    from kfp import compiler

    from edgeopt.pipelines.kfp_pipeline import retrain_and_compress

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(retrain_and_compress, args.out)
    print(f"wrote {args.out}")
    return 0


def schedule_pipeline(args) -> int:
    from edgeopt.pipelines.kfp_pipeline import pipeline_arguments
    from edgeopt.pipelines.schedule import recurring_run_request, submit

    config, config_dir = _load_config(args.config)
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

    compile_ = actions.add_parser("compile", help="compile it for Kubeflow (tfx: KubeflowV2DagRunner JSON; kfp: YAML)")
    compile_.add_argument("--engine", choices=ENGINES, required=True)
    compile_.add_argument("--out", required=True, help="output file (.json for tfx, .yaml for kfp)")
    compile_.add_argument("--config", help="pipeline YAML")
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
