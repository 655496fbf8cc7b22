"""`edgeopt promote`, `compare` and `sync`, and the MLflow flags of `demo` and `optimize`.

Nothing here imports mlflow when loaded: the CLI starts without it, and `--no-tracking` runs never load it.
"""

import sys

DEFAULT_SPOOL = "demo-output/mlflow-spool"
EXIT_SYNC_INCOMPLETE = 1


class NullJob:
    """Stands in for a tracked job under --no-tracking: no champion, nothing logged."""

    def champion_tflite(self) -> None:
        return None

    def log_report(self, report: dict, **kwargs) -> None:
        return None

    def mark_failed(self, reason: str) -> None:
        return None


def add_tracking_args(parser):
    """The MLflow flags of a command that runs an optimize job; its handler then finds `args.tracking_job`."""
    group = parser.add_argument_group("MLflow tracking")
    group.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///OUT/mlflow.db)"
    )
    group.add_argument("--experiment", default="edgeopt", help="MLflow experiment name (default edgeopt)")
    group.add_argument(
        "--artifact-location",
        help="artifact root of a new experiment (default: mlartifacts/ beside a SQLite database, else the server's)",
    )
    group.add_argument(
        "--register-model",
        metavar="NAME",
        help="gate against NAME@champion and register the best passing candidate as NAME@challenger",
    )
    group.add_argument("--no-tracking", action="store_true", help="log nothing to MLflow")
    parser.set_defaults(tracked=True)


def run_tracked(args) -> int:
    """Runs the command's handler; for a command with tracking flags, inside one tracked job (orchestrator `cli`).

    The job wraps the whole handler, so data preparation and training are inside the parent run as well: a failure
    in any step ends it FAILED with the reason. Handlers reach the job as `args.tracking_job`.
    """
    if not getattr(args, "tracked", False):
        return args.handler(args)
    if args.no_tracking:
        args.tracking_job = NullJob()
        return args.handler(args)
    from edgeopt.components.tracking.config import TrackingConfig
    from edgeopt.components.tracking.mlflow_tracking import tracked_job

    config = TrackingConfig(
        tracking_uri=args.tracking_uri,
        experiment_name=args.experiment,
        registered_model_name=args.register_model,
        artifact_location=args.artifact_location,
    )
    with tracked_job(config, orchestrator="cli", output_dir=args.out, verbose=1 if args.verbose else 0) as job:
        args.tracking_job = job
        return args.handler(args)


def run_promote(args) -> int:
    from edgeopt.components.tracking.mlflow_tracking import CHALLENGER_ALIAS, CHAMPION_ALIAS, promote_challenger

    old, new = promote_challenger(args.model, tracking_uri=args.tracking_uri)
    print(f"{args.model}: {CHAMPION_ALIAS} {old or '(none)'} -> {new} (the current {CHALLENGER_ALIAS})")
    return 0


def run_compare(args) -> int:
    from edgeopt.components._shared.errors import TrackingError
    from edgeopt.components.tracking.mlflow_tracking import compare_candidates
    from edgeopt.components.tracking.records import render_comparison

    rows = compare_candidates(args.experiment, tracking_uri=args.tracking_uri)
    if not rows:
        print(f"no candidate runs in experiment '{args.experiment}'", file=sys.stderr)
        return 0
    known = sorted({name for row in rows for name in row["metrics"]})
    if args.metric not in known:
        raise TrackingError(f"no candidate has metric '{args.metric}'; choose one of {known}")
    sys.stdout.write(render_comparison(rows, args.metric, args.format))
    return 0


def run_sync(args) -> int:
    from edgeopt.components.tracking.mlflow_tracking import sync_spool

    results = sync_spool(args.spool, tracking_uri=args.tracking_uri)
    if not results:
        print(f"nothing to sync in {args.spool}")
    for result in results:
        if result["synced"]:
            print(f"synced job {result['job_id']} (parent run {result['parent_run_id']})")
        else:
            print(f"job {result['job_id']} not synced, kept in {args.spool}: {result['error']}", file=sys.stderr)
    return 0 if all(result["synced"] for result in results) else EXIT_SYNC_INCOMPLETE


def add_commands(subparsers):
    """Registers `promote`, `compare` and `sync` on the `edgeopt` command's subparsers."""
    uri_help = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI)"

    promote = subparsers.add_parser("promote", help="move a registered model's champion alias to its challenger")
    promote.add_argument("--model", required=True, help="registered model name")
    promote.add_argument("--tracking-uri", help=uri_help)
    promote.set_defaults(handler=run_promote)

    compare = subparsers.add_parser("compare", help="table of candidate runs across jobs of an experiment")
    compare.add_argument("--experiment", default="edgeopt", help="experiment name (default edgeopt)")
    compare.add_argument("--tracking-uri", help=uri_help)
    compare.add_argument(
        "--metric", default="gzip_ratio", help="sort key, best first (default gzip_ratio; e.g. accuracy, speedup)"
    )
    compare.add_argument("--format", choices=("md", "csv"), default="md", help="output format (default md)")
    compare.set_defaults(handler=run_compare)

    sync = subparsers.add_parser("sync", help="upload runs spooled while MLflow was unreachable")
    sync.add_argument(
        "--spool", default=DEFAULT_SPOOL, help=f"spool folder, OUT/mlflow-spool (default {DEFAULT_SPOOL})"
    )
    sync.add_argument("--tracking-uri", help="target tracking URI (default: the URI each job was meant for)")
    sync.set_defaults(handler=run_sync)
