"""`edgeopt pipeline run|compile --engine tfx`: the ready-made pipeline from the command line."""

from pathlib import Path

ENGINES = ("tfx",)


def _load_config(path):
    from edgeopt.pipelines.config import PipelineConfig

    if path is None:
        return PipelineConfig(), None
    return PipelineConfig.from_yaml(path), str(Path(path).resolve().parent)


def run_pipeline(args) -> int:
    from edgeopt.pipelines.tfx_pipeline import run_local

    config, config_dir = _load_config(args.config)
    paths = run_local(config, args.root, config_dir=config_dir)
    print(f"pipeline {config.pipeline_name} finished; MLMD {paths['metadata_path']}")
    print(f"blessed models pushed under {paths['serving_root']}")
    return 0


def compile_pipeline(args) -> int:
    from edgeopt.pipelines.tfx_pipeline import compile_for_kubeflow

    config, config_dir = _load_config(args.config)
    print(f"wrote {compile_for_kubeflow(config, args.out, config_dir=config_dir)}")
    return 0


def add_commands(commands):
    pipeline = commands.add_parser("pipeline", help="run or compile the ready-made optimize pipeline")
    actions = pipeline.add_subparsers(dest="pipeline_command", required=True)
    run = actions.add_parser("run", help="run it locally (TFX: LocalDagRunner with Beam DirectRunner and SQLite MLMD)")
    run.add_argument("--engine", choices=ENGINES, required=True)
    run.add_argument("--root", required=True, help="folder for data, artifacts, MLMD and pushed models")
    run.add_argument("--config", help="pipeline YAML (default: configs/pipelines/digits.yaml settings)")
    run.set_defaults(handler=run_pipeline)
    compile_ = actions.add_parser("compile", help="compile it for Kubeflow (TFX: KubeflowV2DagRunner JSON)")
    compile_.add_argument("--engine", choices=ENGINES, required=True)
    compile_.add_argument("--out", required=True, help="output file (.json)")
    compile_.add_argument("--config", help="pipeline YAML")
    compile_.set_defaults(handler=compile_pipeline)
