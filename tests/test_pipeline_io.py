"""The pipeline steps read and write through tf.io.gfile: run on TF's in-memory `ram://` filesystem (offline), they
behave exactly as on local files, so gs://bucket/digits/*.csv (the README's example) takes the same code path."""

import json
import uuid

import pytest
from kfp import dsl

from edgeopt.components._shared.errors import DataError
from edgeopt.components._shared.keras_bootstrap import tf
from edgeopt.pipelines.kfp_pipeline import read_examples as read_examples_component
from edgeopt.pipelines.steps import TFRECORD_NAME, bundle_candidates, read_examples

gfile = tf.io.gfile


@pytest.fixture
def ram_root():
    root = f"ram://edgeopt-{uuid.uuid4().hex[:8]}"
    gfile.makedirs(root)
    yield root
    gfile.rmtree(root)


def records(path: str) -> list[bytes]:
    return [record.numpy() for record in tf.data.TFRecordDataset(path, compression_type="GZIP")]


def split_csv_into(digits_examples, folder: str) -> int:
    """The digits CSV as two files with one header each (a glob must gather both); returns the row count."""
    lines = (digits_examples / "csv" / "digits.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    gfile.makedirs(folder)
    for index, part in enumerate((rows[:900], rows[900:])):
        with gfile.GFile(f"{folder}/part-{index}.csv", "w") as handle:
            handle.write("\n".join([header, *part]) + "\n")
    return len(rows)


def test_read_step_takes_a_glob_on_another_filesystem(digits_examples, ram_root, tmp_path):
    rows = split_csv_into(digits_examples, f"{ram_root}/digits")
    counts = read_examples(f"{ram_root}/digits/*.csv", f"{ram_root}/examples")
    assert counts["train"] + counts["eval"] == rows and 0.1 < counts["eval"] / rows < 0.3
    ram_train = records(f"{ram_root}/examples/Split-train/{TFRECORD_NAME}")
    assert len(ram_train) == counts["train"]
    # The same rows from a local copy give the same examples, byte for byte.
    (tmp_path / "csv").mkdir()
    for name in gfile.listdir(f"{ram_root}/digits"):
        gfile.copy(f"{ram_root}/digits/{name}", str(tmp_path / "csv" / name))
    assert read_examples(str(tmp_path / "csv" / "*.csv"), tmp_path / "local") == counts
    assert records(str(tmp_path / "local" / "Split-train" / TFRECORD_NAME)) == ram_train


def test_read_step_copies_an_examples_folder_between_filesystems(digits_examples, ram_root, tmp_path):
    counts = read_examples(str(digits_examples), f"{ram_root}/copy")
    assert counts == {"Split-eval": 1, "Split-train": 1}
    remote = f"{ram_root}/copy/Split-eval/{TFRECORD_NAME}"
    assert records(remote) == records(str(digits_examples / "Split-eval" / TFRECORD_NAME))
    read_examples(f"{ram_root}/copy", tmp_path / "back")
    assert records(str(tmp_path / "back" / "Split-eval" / TFRECORD_NAME)) == records(remote)


def test_kfp_read_component_accepts_a_remote_glob(digits_examples, ram_root, tmp_path):
    rows = split_csv_into(digits_examples, f"{ram_root}/digits")
    examples = dsl.Dataset(name="examples", uri=str(tmp_path / "examples"), metadata={})
    read_examples_component.python_func(source=f"{ram_root}/digits/*.csv", examples=examples)
    assert examples.metadata["train"] + examples.metadata["eval"] == rows
    assert (tmp_path / "examples" / "Split-train" / TFRECORD_NAME).is_file()


def test_nothing_at_the_source_is_a_data_error_and_leaves_no_output(ram_root):
    with pytest.raises(DataError, match="no CSV files or Examples folder at ram://.*pass a path or glob"):
        read_examples(f"{ram_root}/missing/*.csv", f"{ram_root}/out")
    gfile.makedirs(f"{ram_root}/bad")
    with gfile.GFile(f"{ram_root}/bad/a.csv", "w") as handle:
        handle.write("x,label\n1,2\n")
    with gfile.GFile(f"{ram_root}/bad/b.csv", "w") as handle:
        handle.write("y,label\n1,2\n")
    with pytest.raises(DataError, match="another header"):
        read_examples(f"{ram_root}/bad/*.csv", f"{ram_root}/out")
    assert not gfile.exists(f"{ram_root}/out")


def test_select_step_bundles_from_and_to_another_filesystem(ram_root, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "saved_model.pb").write_bytes(b"model")
    evaluations, candidate_dirs = [], {}
    for recipe, gzip_bytes in (("big", 900), ("small", 300)):
        record = {
            "recipe": recipe, "accuracy": 0.9, "gzip_bytes": gzip_bytes, "gzip_ratio": 1000 / gzip_bytes,
            "gate": {"passed": True, "reasons": []}, "baseline": {"tflite_bytes": 2000, "gzip_bytes": 1000},
        }  # fmt: skip
        evaluations.append(f"{ram_root}/evaluations/{recipe}.json")
        gfile.makedirs(f"{ram_root}/evaluations")
        with gfile.GFile(evaluations[-1], "w") as handle:
            handle.write(json.dumps(record))
        candidate_dirs[recipe] = f"{ram_root}/candidates/{recipe}"
        gfile.makedirs(candidate_dirs[recipe])
        with gfile.GFile(f"{candidate_dirs[recipe]}/model.tflite", "wb") as handle:
            handle.write(recipe.encode() * 10)
    winner, _ = bundle_candidates(evaluations, candidate_dirs, f"{ram_root}/bundle", model_dir)
    assert winner == "small"
    with gfile.GFile(f"{ram_root}/bundle/report.json") as handle:
        report = json.loads(handle.read())
    assert report["selection"]["winner"] == "small"
    small = report["candidates"][1]
    assert small["tflite_path"] == f"{ram_root}/bundle/candidates/small/model.tflite"
    with gfile.GFile(small["tflite_path"], "rb") as handle:
        assert handle.read() == b"small" * 10
