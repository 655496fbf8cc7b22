"""Inputs are validated before anything is created: a bad recipe, model, data split, calibration artifact or --out
is a typed error (exit 2) naming the file and the fix, and leaves no --out and no mlflow.db (issue 12.3, 12.7)."""

import gzip
import shutil

import pytest

from edgeopt.components._shared.data import load_training_data
from edgeopt.components._shared.errors import ConfigError
from edgeopt.components.cli_jobs import load_recipes
from edgeopt.components.demo.digits import digits_data_spec
from edgeopt.components.recipes.config import RecipeConfig
from tests.helpers import whole_split
from tests.reliability.conftest import optimize_args, start_edgeopt


def _broken_examples(digits_examples, tmp_path, how):
    """A copy of the digits Examples whose train split is broken in one of the ways users hit."""
    examples = tmp_path / "examples"
    shutil.copytree(digits_examples, examples)
    train = examples / "Split-train"
    (shard,) = train.iterdir()
    if how == "truncated":
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    elif how == "garbage":
        shard.write_bytes(gzip.compress(b"<html>not a TFRecord</html>" * 50))
    elif how == "empty":
        shard.write_bytes(gzip.compress(b""))
    elif how == "missing":
        shutil.rmtree(train)
    elif how == "not_example":
        from edgeopt.components._shared.keras_bootstrap import tf

        shard.unlink()
        with tf.io.TFRecordWriter(str(shard), tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
            writer.write(b"\x0a\x03not an Example proto")
    return examples


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "missing", "not_example"])
def test_a_broken_train_split_fails_the_job_before_any_recipe(cli, tiny_model, digits_examples, tmp_path, how):
    examples = _broken_examples(digits_examples, tmp_path, how)
    out = tmp_path / "out"
    code, stdout, err = cli(*optimize_args(tiny_model, examples, out))
    assert code == 2
    assert "error:" in err and "train" in err and "Traceback" not in err
    assert not out.exists()  # no recipe ran, no store was created


def test_a_bad_recipe_file_is_named_before_anything_is_created(cli, tiny_model, digits_examples, tmp_path):
    syntax = tmp_path / "syntax.yaml"
    syntax.write_text("name: broken\nsteps: [\n  - technique: quantize\n")
    out = tmp_path / "out"
    code, _, err = cli(*optimize_args(tiny_model, digits_examples, out, syntax))
    assert code == 2 and "syntax.yaml is not valid YAML at line" in err and "fix its syntax" in err
    code, _, err = cli(*optimize_args(tiny_model, digits_examples, out, tmp_path / "nope.yaml"))
    assert code == 2 and "nope.yaml does not exist" in err and "edgeopt recipes" in err
    assert not out.exists()
    with pytest.raises(ConfigError, match="syntax.yaml"):
        load_recipes([syntax])
    with pytest.raises(ConfigError, match="no built-in recipe 'nope'"):
        RecipeConfig.builtin("nope")


def test_a_missing_model_is_refused_before_anything_is_created(cli, digits_examples, tmp_path):
    out = tmp_path / "out"
    code, _, err = cli(*optimize_args(tmp_path / "no_model", digits_examples, out))
    assert code == 2 and "does not exist" in err
    assert not out.exists()


def test_an_unwritable_out_is_refused_up_front(cli, tiny_model, digits_examples, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, _, err = cli(*optimize_args(tiny_model, digits_examples, blocker / "out"))
    assert code == 2 and "is not writable" in err and "choose a folder you can write to" in err
    code, _, err = cli(*optimize_args(tiny_model, digits_examples, blocker))
    assert code == 2 and "is a file; pass a folder path" in err
    assert blocker.read_text() == "not a folder"


def test_a_wrong_calibration_artifact_is_named_by_its_own_path(cli, tiny_model, digits_examples, tmp_path):
    artifact = tmp_path / "calibration"
    artifact.mkdir()
    (artifact / "manifest.json").write_text('{"data_file": "data.tfrecord.gz", "count": 3}')
    (artifact / "data.tfrecord.gz").write_bytes(b"garbage")
    out = tmp_path / "out"
    code, _, err = cli(*optimize_args(tiny_model, digits_examples, out, extra=["--calibration", artifact]))
    assert code == 2 and f"calibration artifact {artifact / 'data.tfrecord.gz'}" in err
    assert not out.exists()


def test_calibration_sweep_rejects_size_zero_before_any_work(cli, tiny_model, digits_examples, tmp_path):
    out = tmp_path / "sweep"
    code, _, err = cli(
        "calibration-sweep", "--model", tiny_model, "--examples", digits_examples, "--data-spec",
        "configs/data/digits.yaml", "--sizes", "0,100", "--out", out,
    )  # fmt: skip
    assert code == 2 and "--sizes '0,100' holds sizes below 1 ([0])" in err
    assert not out.exists()


def test_an_input_fn_with_two_inputs_is_a_typed_data_error(cli, tiny_model, digits_examples, tmp_path):
    module = tmp_path / "two_inputs.py"
    module.write_text(
        "import tensorflow as tf\n"
        "def input_fn(file_pattern, batch_size):\n"
        "    x = tf.zeros([4, 64])\n"
        "    return tf.data.Dataset.from_tensor_slices(((x, x), tf.zeros([4], tf.int64))).batch(batch_size)\n"
    )
    out = tmp_path / "out"
    args = optimize_args(tiny_model, digits_examples, out)
    args[args.index("--data-spec") : args.index("--data-spec") + 2] = ["--module-file", module]
    code, _, err = cli(*args)
    assert code == 2 and "yields the model inputs as a tuple of 2 tensors" in err and "Traceback" not in err
    assert not out.exists()


def test_data_is_read_once_per_split_with_the_typed_error(digits_examples):
    data = load_training_data(digits_examples, data_spec=digits_data_spec())
    inputs, labels = whole_split(data, data.train_split)
    assert len(inputs) == len(labels) > 1000 and data.dropped_non_finite == {"train": 0}


@pytest.mark.slow
def test_a_truncated_shard_in_the_sampler_is_a_data_error_without_traceback(digits_examples, tmp_path):
    examples = _broken_examples(digits_examples, tmp_path, "truncated")
    out = tmp_path / "calibration"
    job = start_edgeopt("sample", "--examples", examples, "--size", 50, "--out", out)  # the real terminal output
    _, err = job.communicate(timeout=300)
    assert job.returncode == 2 and "is truncated or not a TFRecord" in err and "rewrite the shard" in err
    assert "Traceback" not in err  # Beam logs one with its error; the CLI keeps it for -v
    assert not out.exists()
