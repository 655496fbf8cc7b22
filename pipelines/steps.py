"""The pipeline-only steps, as plain Python (no kfp or tfx): read data into the Examples layout, train with a
Trainer module's run_fn, and pick the winning candidate."""

import csv
import hashlib
import io
import os
from pathlib import Path
from types import SimpleNamespace

from edgeopt.components._shared.atomic import atomic_output_dir
from edgeopt.components._shared.csv_examples import column_kinds, example_from_row
from edgeopt.components._shared.data import load_module
from edgeopt.components._shared.errors import DataError
from edgeopt.components.evaluation.selection import SelectionConfig, select_winner, selection_record
from edgeopt.pipelines import fileio

TFRECORD_NAME = "data_tfrecord-00000-of-00001.gz"


def read_examples(source: str, output_dir: str | os.PathLike, *, eval_fraction: float = 0.2, seed: int = 0) -> dict:
    """Copies a TFX Examples folder, or converts CSV files (a path or glob) into one, as CsvExampleGen would:
    integer columns become int64 features, other numeric columns float, the rest bytes (`_shared/csv_examples.py`,
    the rule the calibration sampler uses too); rows go to Split-eval by a seeded hash of their text.

    Every access goes through tf.io.gfile, so `source` and `output_dir` may be gs://bucket/digits/*.csv, s3://...
    or a local path. Returns counts per split. A glob lets each scheduled run pick up whatever data is there now.
    """
    from edgeopt.components._shared.keras_bootstrap import tf

    files = fileio.gfile()
    splits = sorted(files.glob(fileio.join(source, "Split-*"))) if files.isdir(source) else []
    if splits:
        with fileio.output_dir(output_dir) as staging:
            for split_dir in splits:
                fileio.copy_tree(split_dir, fileio.join(staging, fileio.basename(split_dir)))
        return {fileio.basename(split): len(files.listdir(split)) for split in splits}
    pattern = fileio.join(source, "*.csv") if files.isdir(source) else source
    names = sorted(files.glob(pattern))
    if not names:
        raise DataError(f"no CSV files or Examples folder at {source}; pass a path or glob of the training data")
    header, rows = None, []
    for name in names:
        with files.GFile(name, "r") as handle:
            reader = csv.reader(io.StringIO(handle.read()))
            file_header = next(reader, None)
            if header is not None and file_header != header:
                raise DataError(f"{name} has another header than {names[0]}; all CSV files must share one")
            header = file_header
            rows += [row for row in reader if row]
    if not rows:
        raise DataError(f"the CSV files at {source} hold no rows")
    kinds = column_kinds(header, rows)  # as CsvExampleGen infers them, and as the calibration sampler does
    counts = {"train": 0, "eval": 0}
    with fileio.output_dir(output_dir) as staging:
        writers = {}
        options = tf.io.TFRecordOptions(compression_type="GZIP")
        for split in counts:
            files.makedirs(fileio.join(staging, f"Split-{split}"))
            writers[split] = tf.io.TFRecordWriter(fileio.join(staging, f"Split-{split}", TFRECORD_NAME), options)
        for row in rows:
            example = example_from_row(header, row, kinds)
            key = int.from_bytes(hashlib.sha256(f"{seed}:{','.join(row)}".encode()).digest()[:8], "little")
            split = "eval" if key / 2**64 < eval_fraction else "train"
            writers[split].write(example.SerializeToString())
            counts[split] += 1
        for writer in writers.values():
            writer.close()
    return counts


def train_with_module(module_file: str, examples_dir: str, output_dir: str | os.PathLike, custom_config: dict) -> Path:
    """Calls a TFX Trainer module's `run_fn(fn_args)` outside TFX, with the FnArgs fields such modules read."""
    module = load_module(module_file)
    with atomic_output_dir(output_dir) as staging:
        module.run_fn(
            SimpleNamespace(
                train_files=[fileio.join(examples_dir, "Split-train", "*")],
                eval_files=[fileio.join(examples_dir, "Split-eval", "*")],
                serving_model_dir=str(staging),
                model_run_dir=str(staging),
                custom_config=custom_config,
            )
        )
    return Path(output_dir)


def pick_winner(records: list[dict], rule: SelectionConfig | dict | None = None) -> int | None:
    """Index of the winning candidate under `rule` (components/evaluation/selection.py), None if none may win."""
    return select_winner(records, rule)


def search_winner_record(search_dir: str) -> tuple[dict, str] | None:
    """The winning trial of a search folder (search_model's output) as an evaluation record, and the folder holding
    its model.tflite; None when no trial was within the budget. The report's paths are those of the step that ran
    the search, so the .tflite is found relative to the folder's search.db."""
    import json

    files = fileio.gfile()
    with files.GFile(fileio.join(search_dir, "report.json"), "r") as handle:
        report = json.loads(handle.read())
    name = report["search"]["winner"]
    if name is None:
        return None
    winner = next(c for c in report["candidates"] if c["recipe"] == name)
    relative = os.path.relpath(os.path.dirname(winner["tflite_path"]), os.path.dirname(report["search"]["storage"]))
    return {**winner, "baseline": report["baseline"]}, fileio.join(search_dir, *Path(relative).parts)


def bundle_candidates(
    evaluation_files: list[str], candidate_dirs: dict[str, str], output_dir, model_dir, rule=None, search_dir=None
) -> tuple:
    """Gathers a fan-out's evaluations into one folder: report.json (report.json's shape, so the MLflow adapter logs
    a pipeline run exactly as a CLI job, `selection` included) and candidates/RECIPE/model.tflite. With `search_dir`
    (a search folder), the search's winning trial is one more candidate, gated on the search's budget. Returns
    (winner recipe under `rule` or None, a Markdown summary)."""
    import json

    from edgeopt.components.recipes.core import report_from_evaluations

    files = fileio.gfile()
    evaluations = []
    for path in evaluation_files:
        with files.GFile(path, "r") as handle:
            evaluations.append(json.loads(handle.read()))
    searched = search_winner_record(search_dir) if search_dir else None
    if searched:
        evaluations.append(searched[0])
        candidate_dirs = {**candidate_dirs, searched[0]["recipe"]: searched[1]}
    report = report_from_evaluations(evaluations, model_dir)
    files.makedirs(str(output_dir))
    for candidate in report["candidates"]:
        source = candidate_dirs.get(candidate["recipe"])
        candidate["tflite_path"] = None
        if source and files.exists(fileio.join(source, "model.tflite")):
            target = fileio.join(output_dir, "candidates", candidate["recipe"], "model.tflite")
            files.makedirs(fileio.join(output_dir, "candidates", candidate["recipe"]))
            files.copy(fileio.join(source, "model.tflite"), target, overwrite=True)
            candidate["tflite_path"] = target
    candidates = report["candidates"]
    report["selection"] = selection_record(candidates, rule)
    with files.GFile(fileio.join(output_dir, "report.json"), "w") as handle:
        handle.write(json.dumps(report, indent=2))
    winner = report["selection"]["winner"]
    rows = "\n".join(
        f"| {c['recipe']} | {c['accuracy']:.4f} | {c['gzip_ratio']:.2f} | {'pass' if c['gate']['passed'] else 'FAIL'} |"
        for c in candidates
    )
    markdown = (
        f"winner: {winner or 'none passed'}\n\n| recipe | accuracy | gzip x | gate |\n|---|---:|---:|---|\n{rows}\n"
    )
    with files.GFile(fileio.join(output_dir, "report.md"), "w") as handle:
        handle.write(markdown)
    return winner, markdown
