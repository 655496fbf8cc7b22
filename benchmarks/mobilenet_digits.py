"""Benchmark helper: the second model, a MobileNetV2 (width 0.35) trained on the demo's digits resized to 32x32.

The 32x32 data is written as a second TFX Examples folder (same split as the demo's Examples) read through the data
spec in benchmarks/digits32.yaml, so the core's own data path feeds training, calibration and evaluation.
"""

import os
from pathlib import Path

import numpy as np

from edgeopt.components._shared.atomic import atomic_output_dir
from edgeopt.components._shared.data import DataSpec, load_training_data
from edgeopt.components._shared.keras_bootstrap import keras, tf
from edgeopt.components._shared.training import set_seeds
from edgeopt.components.demo.digits import LABEL_KEY, PIXELS_KEY, TFRECORD_NAME, digits_data_spec

SMALL_SPLIT = 100_000  # the benchmarks' splits (digits, 8x8 and 32x32) are small: read them whole

SPEC_FILE = Path(__file__).resolve().parent / "digits32.yaml"
SIDE = 32


def digits32_data_spec() -> DataSpec:
    return DataSpec.from_yaml(SPEC_FILE)


def write_digits32_examples(digits_examples: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """Resizes every split of the demo's 8x8 Examples to 32x32 (bilinear) and writes them in the same layout."""
    source = load_training_data(digits_examples, data_spec=digits_data_spec())
    spec = digits_data_spec()
    with atomic_output_dir(output_dir) as staging:
        options = tf.io.TFRecordOptions(compression_type="GZIP")
        for split in (spec.train_split, spec.eval_split):
            inputs, labels = source.take(split, SMALL_SPLIT)
            # Back to raw 0..16 intensities: the 32x32 spec applies the same 1/16 scale as the demo's.
            resized = tf.image.resize(inputs / spec.scale, (SIDE, SIDE), method="bilinear").numpy()
            folder = staging / f"Split-{split}"
            folder.mkdir()
            with tf.io.TFRecordWriter(str(folder / TFRECORD_NAME), options) as writer:
                for image, label in zip(resized, labels, strict=True):
                    feature = {
                        PIXELS_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=image.reshape(-1).tolist())),
                        LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
                    }
                    writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return Path(output_dir)


def build_mobilenet_v2(*, alpha: float = 0.35, seed: int = 0):
    """tf_keras's MobileNetV2 (depthwise separable blocks, BatchNorm, ReLU6), random init, 32x32x1 in, 10 classes.

    BatchNorm momentum goes from Keras's 0.999 to 0.9: with about 45 steps per epoch the slow moving averages stay
    near their initial values for the whole run and the model predicts one class in inference mode.
    """
    set_seeds(seed)
    model = keras.applications.MobileNetV2(
        input_shape=(SIDE, SIDE, 1), alpha=alpha, weights=None, classes=10, classifier_activation="softmax"
    )
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    return model


def train_mobilenet_baseline(
    examples_dir: str | os.PathLike, output_dir: str | os.PathLike, *, epochs: int = 24, seed: int = 0, verbose: int = 0
) -> tuple[Path, dict]:
    """Trains the MobileNetV2 on the 32x32 Examples and saves it as a SavedModel folder (atomically)."""
    data = load_training_data(examples_dir, data_spec=digits32_data_spec())
    model = build_mobilenet_v2(seed=seed)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    inputs, labels = data.take(data.train_split, SMALL_SPLIT)
    model.fit(inputs, labels, epochs=epochs, batch_size=32, shuffle=True, verbose=verbose)
    eval_inputs, eval_labels = data.take(data.eval_split, SMALL_SPLIT)
    accuracy = float(np.mean(model.predict(eval_inputs, verbose=0).argmax(-1) == eval_labels))
    with atomic_output_dir(output_dir) as staging:
        model.save(str(staging), include_optimizer=False)
    return Path(output_dir), {"params": int(model.count_params()), "keras_eval_accuracy": accuracy}
