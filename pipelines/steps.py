"""The pipeline-only steps, as plain Python (no kfp or tfx): read data into the Examples layout, train with a
Trainer module's run_fn, and pick the winning candidate."""

import csv
import glob
import hashlib
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

from edgeopt.components._shared.atomic import atomic_output_dir
from edgeopt.components._shared.data import is_module_name
from edgeopt.components._shared.errors import DataError
from edgeopt.components.evaluation.selection import SelectionConfig, select_winner, selection_record

TFRECORD_NAME = "data_tfrecord-00000-of-00001.gz"


def read_examples(source: str, output_dir: str | os.PathLike, *, eval_fraction: float = 0.2, seed: int = 0) -> dict:
    """Copies a TFX Examples folder, or converts CSV files (a path or glob) into one, as CsvExampleGen would:
    integer columns become int64 features, others float; rows go to Split-eval by a seeded hash of their text.

    Returns counts per split. A glob lets each scheduled run pick up whatever data is there now.
    """
    from edgeopt.components._shared.keras_bootstrap import tf

    if os.path.isdir(source) and glob.glob(os.path.join(source, "Split-*")):
        with atomic_output_dir(output_dir) as staging:
            for split_dir in sorted(glob.glob(os.path.join(source, "Split-*"))):
                shutil.copytree(split_dir, staging / os.path.basename(split_dir))
        return {Path(p).name: len(os.listdir(p)) for p in sorted(glob.glob(os.path.join(output_dir, "Split-*")))}
    files = sorted(glob.glob(os.path.join(source, "*.csv"))) if os.path.isdir(source) else sorted(glob.glob(source))
    if not files:
        raise DataError(f"no CSV files or Examples folder at {source}; pass a path or glob of the training data")
    header, rows = None, []
    for name in files:
        with open(name, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            file_header = next(reader, None)
            if header is not None and file_header != header:
                raise DataError(f"{name} has another header than {files[0]}; all CSV files must share one")
            header = file_header
            rows += [row for row in reader if row]
    if not rows:
        raise DataError(f"the CSV files at {source} hold no rows")
    integer_columns = {
        column for column, name in enumerate(header) if all(_is_int(row[column]) for row in rows)
    }  # fmt: skip
    counts = {"train": 0, "eval": 0}
    with atomic_output_dir(output_dir) as staging:
        writers = {}
        options = tf.io.TFRecordOptions(compression_type="GZIP")
        for split in counts:
            (staging / f"Split-{split}").mkdir()
            writers[split] = tf.io.TFRecordWriter(str(staging / f"Split-{split}" / TFRECORD_NAME), options)
        for row in rows:
            feature = {}
            for column, (name, text) in enumerate(zip(header, row, strict=True)):
                if column in integer_columns:
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(text)]))
                else:
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(text)]))
            key = int.from_bytes(hashlib.sha256(f"{seed}:{','.join(row)}".encode()).digest()[:8], "little")
            split = "eval" if key / 2**64 < eval_fraction else "train"
            writers[split].write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
            counts[split] += 1
        for writer in writers.values():
            writer.close()
    return counts


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def train_with_module(module_file: str, examples_dir: str, output_dir: str | os.PathLike, custom_config: dict) -> Path:
    """Calls a TFX Trainer module's `run_fn(fn_args)` outside TFX, with the FnArgs fields such modules read."""
    import importlib
    import importlib.util

    if is_module_name(module_file):
        module = importlib.import_module(module_file)
    else:
        spec = importlib.util.spec_from_file_location("edgeopt_trainer_module", module_file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    with atomic_output_dir(output_dir) as staging:
        module.run_fn(
            SimpleNamespace(
                train_files=[os.path.join(examples_dir, "Split-train", "*")],
                eval_files=[os.path.join(examples_dir, "Split-eval", "*")],
                serving_model_dir=str(staging),
                model_run_dir=str(staging),
                custom_config=custom_config,
            )
        )
    return Path(output_dir)


def pick_winner(records: list[dict], rule: SelectionConfig | dict | None = None) -> int | None:
    """Index of the winning candidate under `rule` (components/evaluation/selection.py), None if none may win."""
    return select_winner(records, rule)


def bundle_candidates(
    evaluation_files: list[str], candidate_dirs: dict[str, str], output_dir, model_dir, rule=None
) -> tuple:
    """Gathers a fan-out's evaluations into one folder: report.json (report.json's shape, so the MLflow adapter logs
    a pipeline run exactly as a CLI job, `selection` included) and candidates/RECIPE/model.tflite. Returns (winner
    recipe under `rule` or None, a Markdown summary)."""
    import json

    from edgeopt.components.recipes.core import report_from_evaluations

    report = report_from_evaluations([json.loads(Path(path).read_text()) for path in evaluation_files], model_dir)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for candidate in report["candidates"]:
        source = candidate_dirs.get(candidate["recipe"])
        candidate["tflite_path"] = None
        if source and os.path.exists(os.path.join(source, "model.tflite")):
            target = output_dir / "candidates" / candidate["recipe"] / "model.tflite"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.join(source, "model.tflite"), target)
            candidate["tflite_path"] = str(target)
    candidates = report["candidates"]
    report["selection"] = selection_record(candidates, rule)
    (output_dir / "report.json").write_text(json.dumps(report, indent=2))
    winner = report["selection"]["winner"]
    rows = "\n".join(
        f"| {c['recipe']} | {c['accuracy']:.4f} | {c['gzip_ratio']:.2f} | {'pass' if c['gate']['passed'] else 'FAIL'} |"
        for c in candidates
    )
    markdown = (
        f"winner: {winner or 'none passed'}\n\n| recipe | accuracy | gzip x | gate |\n|---|---:|---:|---|\n{rows}\n"
    )
    (output_dir / "report.md").write_text(markdown)
    return winner, markdown
