"""One CSV rule: the pipeline's read step and the calibration sampler type the same CSV's columns the same way
(integer columns int64, other numbers float, the rest bytes), as TFX's CsvExampleGen does."""

import glob

from edgeopt.components._shared.csv_examples import column_kinds
from edgeopt.components._shared.keras_bootstrap import tf
from edgeopt.components.calibration.config import CalibrationConfig
from edgeopt.components.calibration.core import DATA_FILE, sample_calibration_data
from edgeopt.pipelines.steps import read_examples

CSV = "label,pixel,weight,city\n" + "".join(f"{i % 3},{i * 2},{i / 4},c{i}\n" for i in range(40))


def _kinds(path: str) -> dict[str, str]:
    (record,) = tf.data.TFRecordDataset(path, compression_type="GZIP").take(1)
    example = tf.train.Example.FromString(record.numpy())
    return {name: feature.WhichOneof("kind") for name, feature in example.features.feature.items()}


def test_column_kinds_widen_from_int_to_float_to_bytes():
    rows = [["1", "2", "x"], ["3", "2.5", "4"]]
    assert column_kinds(["a", "b", "c"], rows) == {"a": "int64", "b": "float", "c": "bytes"}


def test_the_read_step_and_the_sampler_give_one_csv_the_same_feature_types(tmp_path):
    (tmp_path / "data.csv").write_text(CSV)
    read_examples(str(tmp_path / "data.csv"), tmp_path / "examples")
    read = _kinds(glob.glob(str(tmp_path / "examples" / "Split-train" / "*"))[0])
    sample_calibration_data(tmp_path / "data.csv", CalibrationConfig(size=6, label_key="label"), tmp_path / "calib")
    sampled = _kinds(str(tmp_path / "calib" / DATA_FILE))
    expected = {"label": "int64_list", "pixel": "int64_list", "weight": "float_list", "city": "bytes_list"}
    assert read == expected
    assert sampled == expected


def test_one_fingerprint_rule_for_the_job_and_the_calibration_source(digits_examples, tmp_path):
    import shutil

    from edgeopt.components._shared.fingerprint import dataset_fingerprint
    from edgeopt.components.calibration.core import source_files, source_fingerprint

    examples = tmp_path / "examples"  # the splits alone: the job fingerprints every file of the folder
    for split in ("train", "eval"):
        shutil.copytree(digits_examples / f"Split-{split}", examples / f"Split-{split}")
    _, files = source_files(examples, ["train", "eval"])
    assert source_fingerprint(files) == dataset_fingerprint(examples)  # the same files, the same names
    _, train_only = source_files(examples, ["train"])
    assert source_fingerprint(train_only) != dataset_fingerprint(examples)
