"""The Beam calibration sampler: deterministic across runs and parallelism, stratified, strict about bad input."""

import json
import math
import subprocess

import numpy as np
import pytest

from edgeopt.components._shared.errors import DataError
from edgeopt.components._shared.keras_bootstrap import tf
from edgeopt.components.calibration.config import CalibrationConfig
from edgeopt.components.calibration.core import (
    MANIFEST_FILE,
    allocate,
    load_calibration_inputs,
    sample_calibration_data,
)
from edgeopt.components.evaluation.config import EvaluationConfig
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.recipes.core import optimize
from tests.helpers import whole_split

TWO_WORKERS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def write_examples(folder, rows, split="train", name="data-00000.gz"):
    """rows: (pixels list, label or None) -> a Split-NAME/ folder of gzipped tf.Example."""
    target = folder / f"Split-{split}"
    target.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(target / name), tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
        for pixels, label in rows:
            feature = {"pixels": tf.train.Feature(float_list=tf.train.FloatList(value=pixels))}
            if label is not None:
                feature["label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return folder


@pytest.fixture(scope="module")
def proportional(digits_examples, tmp_path_factory):
    config = CalibrationConfig(size=100, seed=7, label_key="label")
    return sample_calibration_data(digits_examples, config, tmp_path_factory.mktemp("cal") / "a")


def test_same_seed_same_bytes_and_another_seed_other_bytes(digits_examples, proportional, tmp_path):
    again = sample_calibration_data(
        digits_examples, CalibrationConfig(size=100, seed=7, label_key="label"), tmp_path / "b"
    )
    assert again.data_sha256 == proportional.data_sha256
    assert (tmp_path / "b" / "data.tfrecord.gz").read_bytes() == open(proportional.data_path, "rb").read()
    other = sample_calibration_data(
        digits_examples, CalibrationConfig(size=100, seed=8, label_key="label"), tmp_path / "c"
    )
    assert other.data_sha256 != proportional.data_sha256


@pytest.mark.slow
def test_two_worker_processes_give_the_same_sample(digits_examples, proportional, tmp_path):
    config = CalibrationConfig(size=100, seed=7, label_key="label")
    parallel = sample_calibration_data(digits_examples, config, tmp_path / "mp", beam_pipeline_args=TWO_WORKERS)
    assert parallel.data_sha256 == proportional.data_sha256


def test_proportional_counts_are_within_one_of_target(proportional):
    manifest = proportional.manifest
    source = {label: count for label, count in manifest["source_per_class"].items()}
    total = sum(source.values())
    assert sum(manifest["per_class"].values()) == manifest["count"] == 100
    for label, count in manifest["per_class"].items():
        assert abs(count - 100 * source[label] / total) <= 1


def test_written_records_match_the_manifest(proportional, digits_data):
    labels = [
        tf.train.Example.FromString(record.numpy()).features.feature["label"].int64_list.value[0]
        for record in tf.data.TFRecordDataset(proportional.data_path, compression_type="GZIP")
    ]
    counted = {str(label): labels.count(label) for label in sorted(set(labels))}
    assert counted == proportional.manifest["per_class"]
    inputs = load_calibration_inputs(proportional.output_dir, digits_data)
    assert inputs.shape == (100, 8, 8, 1)


def test_manifest_stats_describe_sample_and_source(proportional, digits_data):
    manifest = json.loads(open(f"{proportional.output_dir}/{MANIFEST_FILE}").read())
    train_pixels = whole_split(digits_data, "train")[0] * 16  # the data spec scales pixels by 1/16
    assert manifest["source_stats"]["pixels"]["mean"] == pytest.approx(train_pixels.mean(), rel=1e-6)
    assert manifest["source_stats"]["pixels"]["max"] == 16.0
    sample = manifest["sample_stats"]["pixels"]
    assert 0 <= sample["min"] <= sample["mean"] <= sample["max"] <= 16
    for key in ("count", "per_class", "source_per_class", "seed", "source_fingerprint", "data_sha256"):
        assert key in manifest
    assert manifest["dropped_non_finite"] == 0


def test_balanced_takes_the_same_count_per_class(digits_examples, tmp_path):
    result = sample_calibration_data(
        digits_examples, CalibrationConfig(size=95, label_key="label", stratification="balanced"), tmp_path / "bal"
    )
    counts = list(result.manifest["per_class"].values())
    assert sum(counts) == 95 and max(counts) - min(counts) <= 1


@pytest.mark.parametrize("stratification", ["proportional", "balanced"])
def test_allocation_sums_to_size_and_respects_class_counts(stratification):
    rng = np.random.default_rng(0)
    for _ in range(300):
        counts = {label: int(n) for label, n in enumerate(rng.integers(1, 60, size=rng.integers(1, 8)))}
        size = int(rng.integers(1, sum(counts.values()) + 1))
        quota = allocate(size, counts, stratification)
        assert sum(quota.values()) == size
        assert all(0 <= quota[label] <= counts[label] for label in counts)
        if stratification == "proportional":
            total = sum(counts.values())
            assert all(abs(quota[label] - size * counts[label] / total) < 1 for label in counts)


def test_non_finite_examples_are_dropped_and_counted(tmp_path):
    good = [([float(i % 5), 1.0], i % 2) for i in range(40)]
    bad = [([math.nan, 1.0], 0)] * 3 + [([1.0, math.inf], 1)] * 2 + [([-math.inf, 0.0], 1)]
    write_examples(tmp_path / "src", good + bad)
    result = sample_calibration_data(tmp_path / "src", CalibrationConfig(size=40, label_key="label"), tmp_path / "out")
    assert result.manifest["dropped_non_finite"] == 6
    assert result.manifest["source_count"] == 40
    values = [
        tf.train.Example.FromString(record.numpy()).features.feature["pixels"].float_list.value
        for record in tf.data.TFRecordDataset(result.data_path, compression_type="GZIP")
    ]
    assert len(values) == 40 and all(math.isfinite(v) for row in values for v in row)


def test_taking_everything_needs_opt_in_and_says_so(tmp_path):
    write_examples(tmp_path / "src", [([1.0], i % 3) for i in range(12)])
    with pytest.raises(DataError, match="asked for 50 examples but the source holds 12 valid ones"):
        sample_calibration_data(tmp_path / "src", CalibrationConfig(size=50, label_key="label"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    config = CalibrationConfig(size=50, label_key="label", take_all_if_smaller=True)
    result = sample_calibration_data(tmp_path / "src", config, tmp_path / "out")
    assert result.count == 12 and result.manifest["took_everything"] is True


def _corrupt_payload(folder):
    write_examples(folder, [([1.0], 0)] * 5)
    target = folder / "Split-train" / "broken-00001.gz"
    with tf.io.TFRecordWriter(str(target), tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
        writer.write(b"\xff\xfe this is not a protocol buffer")
    return folder


def _not_gzip(folder):
    write_examples(folder, [([1.0], 0)] * 5)
    (folder / "Split-train" / "plain-00001.gz").write_bytes(b"plain text, not gzip")
    return folder


@pytest.mark.parametrize(
    ("make_source", "config", "message"),
    [
        (lambda d: write_examples(d, []), {}, "the source is empty"),
        (lambda d: (d / "Split-train").mkdir(parents=True) or d, {}, "the source is empty"),
        (lambda d: write_examples(d, [([1.0], None)] * 5), {}, "has no label feature 'label'"),
        (_corrupt_payload, {}, r"unparseable record in .*broken-00001\.gz"),
        (
            lambda d: write_examples(d, [([1.0, 2.0], 0)] * 5 + [([1.0], 1)] * 5),
            {},
            r"feature 'pixels' has \[1, 2\] values in different records",
        ),
        (lambda d: write_examples(d, [([1.0], 0)] * 5), {"splits": ["eval"]}, r"no Split-eval/ folder"),
        (_not_gzip, {}, r"plain-00001\.gz is not gzip-compressed"),
    ],
    ids=["no-records", "no-files", "missing-label", "unparseable", "shape-differs", "missing-split", "not-gzip"],
)
def test_bad_input_gives_its_error_and_no_output(make_source, config, message, tmp_path):
    source = make_source(tmp_path / "src")
    with pytest.raises(DataError, match=message):
        sample_calibration_data(source, CalibrationConfig(size=3, label_key="label", **config), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]


def test_csv_source_is_sampled_like_examples(digits_examples, tmp_path):
    result = sample_calibration_data(
        digits_examples / "csv", CalibrationConfig(size=60, label_key="label"), tmp_path / "csv"
    )
    assert result.count == 60
    assert sum(result.manifest["source_per_class"].values()) == 1797


def test_int8_recipe_converts_with_the_artifact(tiny_model, digits_data, proportional, tmp_path):
    recipe = RecipeConfig(name="int8", steps=[{"technique": "quantize", "config": {"mode": "full_integer"}}])
    report = optimize(
        tiny_model,
        [recipe],
        tmp_path / "job",
        data=digits_data,
        evaluation=EvaluationConfig(timed_runs=5, warmup_runs=1),
        calibration_dir=proportional.output_dir,
    )
    assert report["calibration"]["source"] == "calibration artifact"
    assert report["calibration"]["data_sha256"] == proportional.data_sha256
    (candidate,) = report["candidates"]
    assert candidate["gate"]["passed"], candidate["gate"]


@pytest.mark.slow
def test_cli_sample_twice_writes_identical_data(digits_examples, tmp_path):
    digests = []
    for run in ("one", "two"):
        result = subprocess.run(
            ["edgeopt", "sample", "--examples", str(digits_examples), "--size", "120", "--seed", "3",
             "--label-key", "label", "--out", str(tmp_path / run)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        digests.append(json.loads((tmp_path / run / MANIFEST_FILE).read_text())["data_sha256"])
        assert f"data_sha256 {digests[-1]}" in result.stdout
    assert digests[0] == digests[1]
