"""Non-finite data never reaches the converter or the optimizer: NaN/Inf examples are dropped and counted (or
refused with --non-finite fail), and a non-finite fine-tuning loss stops training with a typed error (issue 12.2).

Before: 10 % Inf in the training split made the built-in ptq_int8 segfault (exit 139) in the converter's
calibration; NaN gave "unsupported scale value (inf)"."""

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits

from edgeopt.components._shared.errors import DataError, TrainingDivergedError
from edgeopt.components._shared.finite import StopOnNonFiniteLoss, drop_non_finite
from edgeopt.components._shared.keras_bootstrap import keras, tf
from tests.reliability.conftest import optimize_args


def _example(pixels, label) -> bytes:
    feature = {
        "pixels": tf.train.Feature(float_list=tf.train.FloatList(value=pixels.tolist())),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _digits_with(tmp_path, bad_value: float, fraction: float = 0.1):
    """Digits Examples whose train split holds `fraction` examples with a `bad_value` pixel."""
    digits = load_digits()
    pixels, labels = digits.data.astype(np.float32), digits.target
    examples = tmp_path / f"examples_{bad_value}"
    train = pixels[:1400].copy()
    bad_rows = np.arange(0, 1400, int(1 / fraction))
    train[bad_rows, 10] = bad_value
    for split, split_pixels, split_labels in (("train", train, labels[:1400]), ("eval", pixels[1400:], labels[1400:])):
        (examples / f"Split-{split}").mkdir(parents=True)
        with tf.io.TFRecordWriter(str(examples / f"Split-{split}" / "data.tfrecord")) as writer:
            for row, label in zip(split_pixels, split_labels, strict=True):
                writer.write(_example(row, label))
    return examples, len(bad_rows)


@pytest.mark.parametrize("bad_value", [np.inf, np.nan])
def test_builtin_ptq_int8_drops_non_finite_training_examples(cli, tiny_model, tmp_path, bad_value):
    examples, bad = _digits_with(tmp_path, bad_value)
    out = tmp_path / "out"
    code, _, err = cli(
        *optimize_args(tiny_model, examples, out, "configs/recipes/ptq_int8.yaml", extra=["--no-tracking"])
    )
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["non_finite_dropped"] == {"train": bad, "eval": 0}
    (candidate,) = report["candidates"]
    assert candidate["gate"]["passed"] and candidate["accuracy"] > 0.8


def test_non_finite_fail_refuses_the_data_before_anything_is_created(cli, tiny_model, tmp_path):
    examples, bad = _digits_with(tmp_path, np.inf)
    out = tmp_path / "out"
    code, _, err = cli(*optimize_args(tiny_model, examples, out, extra=["--non-finite", "fail"]))
    assert code == 2
    assert f"{bad} of 1400 examples of split 'train'" in err and "--non-finite drop" in err
    assert not out.exists()


def test_drop_non_finite_counts_and_refuses_all_bad():
    inputs = np.array([[1.0, 2.0], [np.nan, 0.0], [np.inf, 1.0], [3.0, 4.0]], dtype=np.float32)
    labels = np.array([0, 1, 2, 3])
    kept, kept_labels, dropped = drop_non_finite(inputs, labels, policy="drop", what="test")
    assert dropped == 2 and kept.tolist() == [[1.0, 2.0], [3.0, 4.0]] and kept_labels.tolist() == [0, 3]
    with pytest.raises(DataError, match="every one of the 2 examples of test holds NaN or Inf"):
        drop_non_finite(inputs[1:3], labels[1:3], policy="drop", what="test")


def test_a_non_finite_loss_stops_fine_tuning_naming_epoch_and_step():
    model = keras.Sequential([keras.layers.Input(shape=(4,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    inputs = np.ones((32, 4), dtype=np.float32)
    inputs[20] = np.nan  # the third batch of 8
    with pytest.raises(TrainingDivergedError, match=r"became nan at epoch 1, step 3; check the training data"):
        model.fit(
            inputs, np.zeros(32), batch_size=8, epochs=2, shuffle=False, callbacks=[StopOnNonFiniteLoss()], verbose=0
        )
