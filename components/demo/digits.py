"""scikit-learn's digits (bundled with the package, no download) as TFX Examples and CSV, and a CNN baseline.

The CNN has about 280 k parameters so that its weights dominate the .tflite file and compression ratios show the
technique rather than the file's fixed overhead.
"""

import csv
import os
from importlib import resources
from pathlib import Path

import numpy as np

from edgeopt.components._shared.atomic import atomic_output_dir
from edgeopt.components._shared.console import keras_verbosity
from edgeopt.components._shared.data import DataSpec, load_training_data
from edgeopt.components._shared.keras_bootstrap import keras, tf
from edgeopt.components._shared.training import set_seeds

PIXELS_KEY = "pixels"
LABEL_KEY = "label"
TFRECORD_NAME = "data_tfrecord-00000-of-00001.gz"


def digits_data_spec() -> DataSpec:
    return DataSpec.from_yaml(resources.files("edgeopt.configs") / "data" / "digits.yaml")


def _example(pixels: np.ndarray, label: int) -> bytes:
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                PIXELS_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=pixels.astype(np.float32).tolist())),
                LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
            }
        )
    ).SerializeToString()


def write_digits_examples(output_dir: str | os.PathLike, *, eval_fraction: float = 0.2, seed: int = 0) -> Path:
    """Writes digits as gzipped tf.Example TFRecords in the ExampleGen layout, plus CSV.

    Layout: `Split-train/`, `Split-eval/` (one .gz file each) and `csv/digits.csv` (pixel_0..pixel_63, label).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    eval_count = int(round(len(order) * eval_fraction))
    splits = {"eval": order[:eval_count], "train": order[eval_count:]}
    with atomic_output_dir(output_dir) as staging:
        options = tf.io.TFRecordOptions(compression_type="GZIP")
        for split, indices in splits.items():
            folder = staging / f"Split-{split}"
            folder.mkdir()
            with tf.io.TFRecordWriter(str(folder / TFRECORD_NAME), options) as writer:
                for index in indices:
                    writer.write(_example(digits.data[index], digits.target[index]))
        (staging / "csv").mkdir()
        with open(staging / "csv" / "digits.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([f"pixel_{i}" for i in range(64)] + [LABEL_KEY])
            for index in order:
                writer.writerow([int(v) for v in digits.data[index]] + [int(digits.target[index])])
    return Path(output_dir)


def build_digits_cnn(*, filters: int = 32, dense_units: int = 256, seed: int = 0):
    """A small CNN for 8x8x1 digits ending in logits."""
    set_seeds(seed)
    return keras.Sequential(
        [
            keras.layers.Input(shape=(8, 8, 1), name="pixels"),
            keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv2D(filters * 2, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(2, name="pool"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(dense_units, activation="relu", name="dense1"),
            keras.layers.Dense(10, name="logits"),
        ],
        name="digits_cnn",
    )


def train_digits_baseline(
    examples_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    epochs: int = 15,
    filters: int = 32,
    dense_units: int = 256,
    seed: int = 0,
) -> Path:
    """Trains the digits CNN with fixed seeds and saves it as a SavedModel folder (atomically)."""
    data = load_training_data(examples_dir, data_spec=digits_data_spec())
    model = build_digits_cnn(filters=filters, dense_units=dense_units, seed=seed)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(
        data.training_dataset(32, seed=seed, shuffle_buffer=4096),
        epochs=epochs,
        steps_per_epoch=data.steps_per_epoch(32),
        verbose=keras_verbosity(),
    )
    with atomic_output_dir(output_dir) as staging:
        model.save(str(staging), include_optimizer=False)
    return Path(output_dir)
