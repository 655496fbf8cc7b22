"""Training input: the declarative data spec and a TFX-style module file read the same records the same way."""

import numpy as np
import pytest

from edgeopt.components._shared.data import DataSpec, load_training_data
from edgeopt.components._shared.errors import ConfigError, DataError
from edgeopt.components.demo.digits import digits_data_spec
from tests.helpers import whole_split

MODULE_FILE = """
import tensorflow as tf

def input_fn(file_pattern, batch_size):
    features = {"pixels": tf.io.FixedLenFeature([64], tf.float32), "label": tf.io.FixedLenFeature([], tf.int64)}
    def parse(record):
        parsed = tf.io.parse_single_example(record, features)
        return tf.reshape(parsed["pixels"] / 16.0, [8, 8, 1]), parsed["label"]
    return tf.data.TFRecordDataset(file_pattern, compression_type="GZIP").map(parse).batch(batch_size)
"""


def test_examples_layout_has_both_splits_and_csv(digits_examples):
    assert (digits_examples / "Split-train").is_dir() and (digits_examples / "Split-eval").is_dir()
    header = (digits_examples / "csv" / "digits.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "pixel_0" and header[-1] == "label" and len(header) == 65


def test_data_spec_reads_every_example(digits_data):
    train_x, train_y = whole_split(digits_data, "train")
    eval_x, eval_y = whole_split(digits_data, "eval")
    assert train_x.shape == (1438, 8, 8, 1) and eval_x.shape == (359, 8, 8, 1)
    assert set(np.unique(train_y)) == set(range(10))
    assert 0.0 <= train_x.min() and train_x.max() <= 1.0


def test_module_file_input_fn_gives_the_same_arrays(digits_examples, digits_data, tmp_path):
    module = tmp_path / "trainer_module.py"
    module.write_text(MODULE_FILE)
    from_module = load_training_data(digits_examples, module_file=module)
    for split in ("train", "eval"):
        np.testing.assert_allclose(whole_split(from_module, split)[0], whole_split(digits_data, split)[0])
        np.testing.assert_array_equal(whole_split(from_module, split)[1], whole_split(digits_data, split)[1])


def test_endless_input_fn_is_refused(digits_examples, tmp_path):
    module = tmp_path / "endless.py"
    module.write_text(MODULE_FILE.replace(".batch(batch_size)", ".batch(batch_size).repeat()"))
    data = load_training_data(digits_examples, module_file=module)
    with pytest.raises(DataError, match="endless dataset; return one epoch"):
        whole_split(data, "train")


def test_module_without_input_fn_is_refused(digits_examples, tmp_path):
    module = tmp_path / "empty.py"
    module.write_text("x = 1\n")
    with pytest.raises(DataError, match="defines no input_fn"):
        load_training_data(digits_examples, module_file=module)


def test_exactly_one_data_source(digits_examples):
    with pytest.raises(ConfigError, match="exactly one of data_spec"):
        load_training_data(digits_examples)


def test_missing_split_names_what_exists(digits_examples):
    spec = DataSpec(**{**digits_data_spec().to_dict(), "eval_split": "test"})
    with pytest.raises(DataError, match=r"no Split-test/ folder \(found \['Split-eval', 'Split-train'\]\)"):
        whole_split(load_training_data(digits_examples, data_spec=spec), "test")


def test_missing_feature_key_is_a_data_error(digits_examples):
    spec = DataSpec(features=[{"key": "image", "shape": [64]}], label_key="label")
    with pytest.raises(DataError, match="image"):
        whole_split(load_training_data(digits_examples, data_spec=spec), "eval")
