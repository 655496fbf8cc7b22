"""`edgeopt search`: the budgeted search from the command line, tracked like `optimize`."""

import sys
from pathlib import Path

from edgeopt.components._shared.cli_args import add_model_and_data_args
from edgeopt.components._shared.errors import ConfigError
from edgeopt.components.tracking import cli_commands as tracking_commands

BUDGET_KEYS = ("max_accuracy_drop",)


def parse_budget(text: str) -> float:
    """`max_accuracy_drop=1.0` -> 1.0; the only budget today is the accuracy drop in points."""
    key, separator, value = text.partition("=")
    if not separator or key.strip() not in BUDGET_KEYS:
        raise ConfigError(
            f"--budget '{text}' is not KEY=VALUE with KEY in {list(BUDGET_KEYS)}; e.g. max_accuracy_drop=1.0"
        )
    try:
        return float(value)
    except ValueError as err:
        raise ConfigError(f"--budget '{text}': '{value}' is not a number of accuracy points") from err


def search_config(args):
    from edgeopt.components.evaluation.config import EvaluationConfig
    from edgeopt.components.search.config import SearchConfig

    data = SearchConfig.from_yaml(args.config).to_dict() if args.config else {}
    overrides = {
        "max_accuracy_drop": parse_budget(args.budget) if args.budget else None,
        "objectives": args.objective,
        "trials": args.trials,
        "timeout_s": args.timeout,
        "seed": args.seed,
        "study_name": args.study_name,
        "families": args.family,
        "start_from_recipes": args.start_from,
        "max_float_layers": args.max_float_layers,
        "max_int16x8_layers": args.max_int16x8_layers,
    }
    data.update({key: value for key, value in overrides.items() if value is not None})
    data["evaluation"] = EvaluationConfig(
        num_threads=args.threads, timed_runs=args.timed_runs, warmup_runs=args.warmup_runs
    ).to_dict()
    return SearchConfig.from_dict(data)


def prepare_search(args):
    """Validates everything the search reads before `run_job` locks --out: the config, where it would run, the
    model path, the data (a preflight pass, as `optimize` does) and the calibration artifact."""
    from edgeopt.components._shared.distribution import Distribution, resolve_distribution
    from edgeopt.components._shared.model_io import resolve_model_path
    from edgeopt.components.cli_jobs import checked_training_data

    args.search_config = search_config(args)
    if resolve_distribution(Distribution.AUTO) == Distribution.MULTI_WORKER:
        raise ConfigError(
            "edgeopt search runs its trials in one process, and TF_CONFIG describes a multi-worker cluster (every "
            "worker would have to draw the same trials in step); run the search on one machine without TF_CONFIG "
            "(its GPUs train each trial), then `edgeopt optimize --recipe` the winner's recipe across the cluster"
        )
    resolve_model_path(args.model)
    args.data = checked_training_data(
        args.examples, data_spec=args.data_spec, module_file=args.module_file, non_finite=args.non_finite
    )
    if args.calibration:
        from edgeopt.components.calibration.core import load_calibration_inputs

        load_calibration_inputs(args.calibration, args.data)


def run_search(args) -> int:
    from edgeopt.components.calibration.core import MANIFEST_FILE
    from edgeopt.components.search.core import search
    from edgeopt.components.search.outputs import PARETO_JSON, TRIALS_MD

    config = args.search_config
    out = Path(args.out)
    report = search(
        args.model,
        config,
        out,
        data=args.data,
        calibration_dir=args.calibration,
        champion_tflite=args.tracking_job.champion_tflite(),
        allow_unsafe=args.allow_unsafe_model,
    )
    manifest = Path(args.calibration) / MANIFEST_FILE if args.calibration else None
    args.tracking_job.log_report(report, examples=args.examples, calibration_manifest=manifest)
    print((out / TRIALS_MD).read_text())
    summary = report["search"]
    winner = summary["winner"]
    if winner is None:
        print(f"no trial within max_accuracy_drop={config.max_accuracy_drop} pt", file=sys.stderr)
    else:
        chosen = next(c for c in report["candidates"] if c["recipe"] == winner)
        print(
            f"winner {winner} ({'+'.join(chosen['steps'])}): {chosen['gzip_bytes']} gzip bytes "
            f"({chosen['gzip_ratio']:.2f}x), accuracy drop {chosen['accuracy_drop']:.2f} pt"
        )
    print(f"wrote {out / 'report.json'}, {out / PARETO_JSON}, {out / TRIALS_MD}; study in {summary['storage']}")
    return 0


def add_commands(commands):
    """Registers `search` on the `edgeopt` command's subparsers."""
    parser = commands.add_parser("search", help="search technique chains for the best model within an accuracy budget")
    add_model_and_data_args(parser)
    parser.add_argument("--out", required=True, help="output folder (trials, reports, search.db for resuming)")
    parser.add_argument("--config", help="SearchConfig YAML; the flags below override its fields")
    parser.add_argument("--budget", help="accuracy budget, e.g. max_accuracy_drop=1.0 (default 1.0 pt)")
    parser.add_argument(
        "--objective",
        action="append",
        choices=("gzip_bytes", "tflite_bytes", "latency_p50"),
        help="what to minimise (repeat for two objectives; default gzip_bytes)",
    )
    parser.add_argument("--trials", type=int, help="total trials of the study, resumed ones included (default 20)")
    parser.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    parser.add_argument("--seed", type=int, help="sampler and fine-tuning seed (default 0)")
    parser.add_argument("--study-name", help="study name in OUT/search.db (default edgeopt-search)")
    parser.add_argument(
        "--family",
        action="append",
        choices=("ptq", "prune", "cluster", "prune_cluster", "distill", "distill_prune"),
        help="technique chain to search (repeatable; default ptq, prune, cluster, prune_cluster)",
    )
    parser.add_argument(
        "--start-from",
        action="append",
        metavar="RECIPE",
        help="built-in recipe whose chain runs as a first trial (repeatable), e.g. ptq_int8",
    )
    parser.add_argument("--max-float-layers", type=int, help="keep up to this many sensitive layers float (default 0)")
    parser.add_argument(
        "--max-int16x8-layers",
        type=int,
        help="aeq_static_int8 trials keep up to this many sensitive layers in 16x8 (default 0)",
    )
    parser.add_argument("--calibration", help="calibration artifact from `edgeopt sample` for full-integer trials")
    parser.add_argument(
        "--non-finite",
        choices=("drop", "fail"),
        default="drop",
        help="examples holding NaN or Inf: drop and count them in report.json (default), or fail the search",
    )
    parser.add_argument(
        "--allow-unsafe-model", action="store_true", help="accept .h5 files and Lambda layers (they run stored code)"
    )
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads for latency (default 1)")
    parser.add_argument("--timed-runs", type=int, default=50, help="timed invocations per trial (default 50)")
    parser.add_argument("--warmup-runs", type=int, default=5, help="warm-up invocations per trial (default 5)")
    parser.add_argument(
        "-q", "--quiet", dest="verbose", action="store_const", const=0, default=2, help="warnings and errors only"
    )
    tracking_commands.add_tracking_args(parser)
    parser.set_defaults(handler=run_search, prepare=prepare_search)
