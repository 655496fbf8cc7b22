"""`edgeopt sample` and `edgeopt calibration-sweep`: the calibration sampler from the command line."""

import json
import sys

from edgeopt.components._shared.cli_args import add_model_and_data_args, parse_sizes


def run_sample(args) -> int:
    from edgeopt.components.calibration.config import CalibrationConfig
    from edgeopt.components.calibration.core import sample_calibration_data

    config = CalibrationConfig(
        size=args.size,
        seed=args.seed,
        label_key=args.label_key,
        stratification="balanced" if args.balanced else "proportional",
        splits=args.split or ["train"],
        take_all_if_smaller=args.take_all,
    )
    result = sample_calibration_data(args.examples, config, args.out, beam_pipeline_args=args.beam_args)
    manifest = result.manifest
    print(f"wrote {result.count} examples to {result.data_path}")
    print(f"data_sha256 {result.data_sha256}")
    print(f"per_class {json.dumps(manifest['per_class'])}  dropped_non_finite {manifest['dropped_non_finite']}")
    return 0


def run_sweep(args) -> int:
    from edgeopt.components._shared.data import load_training_data
    from edgeopt.components.calibration.config import CalibrationConfig
    from edgeopt.components.calibration.sweep import calibration_sweep
    from edgeopt.components.evaluation.config import EvaluationConfig
    from edgeopt.components.recipes.core import evaluate_baseline

    sizes = parse_sizes(args.sizes, "--sizes")  # before the baseline export, so a typo costs nothing
    data = load_training_data(args.examples, data_spec=args.data_spec, module_file=args.module_file)
    baseline, _ = evaluate_baseline(args.model, args.out, data=data, evaluation=EvaluationConfig(timed_runs=1))
    rows = calibration_sweep(
        args.model,
        args.examples,
        sizes,
        args.out,
        data=data,
        calibration=CalibrationConfig(seed=args.seed, label_key=args.label_key),
        baseline_accuracy=baseline.accuracy,
        beam_pipeline_args=args.beam_args,
    )
    print(f"float baseline accuracy {baseline.accuracy:.4f}")
    print("| size | taken | int8 accuracy | drop (pt) |\n|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['size']} | {row['count']} | {row['accuracy']:.4f} | {row['accuracy_drop']:.2f} |")
    return 0


def _beam_args(parser):
    parser.add_argument(
        "--beam-arg",
        dest="beam_args",
        action="append",
        default=[],
        help="Beam pipeline argument, passed unchanged (repeatable), e.g. --beam-arg=--direct_num_workers=2",
    )


def add_commands(commands):
    sample = commands.add_parser("sample", help="sample calibration data with Apache Beam")
    sample.add_argument("--examples", required=True, help="TFX Examples folder (Split-NAME/) or CSV file/folder")
    sample.add_argument("--split", action="append", help="split to sample from (repeatable; default train)")
    sample.add_argument("--size", type=int, required=True, help="number of examples N")
    sample.add_argument("--seed", type=int, default=0, help="hash seed (default 0)")
    sample.add_argument("--label-key", help="integer label feature to stratify by")
    sample.add_argument("--balanced", action="store_true", help="same count per class instead of proportional")
    sample.add_argument("--take-all", action="store_true", help="take every example when the source holds fewer than N")
    sample.add_argument("--out", required=True, help="output folder (data.tfrecord.gz + manifest.json)")
    _beam_args(sample)
    sample.set_defaults(handler=run_sample)

    sweep = commands.add_parser("calibration-sweep", help="int8 accuracy at several calibration sizes")
    add_model_and_data_args(sweep)
    sweep.add_argument("--sizes", default="50,100,300,1000", help="comma-separated sizes (default 50,100,300,1000)")
    sweep.add_argument("--seed", type=int, default=0, help="hash seed (default 0)")
    sweep.add_argument("--label-key", help="integer label feature to stratify by")
    sweep.add_argument("--out", required=True, help="output folder")
    _beam_args(sweep)
    sweep.set_defaults(handler=run_sweep)


if __name__ == "__main__":
    sys.exit("use the edgeopt command")
