"""Benchmark helper for the memory section: synthetic sharded TFX Examples of 32x32x3 images, the small CNN trained
on them, and a child process's peak resident set.

Pixels are stored as int64 features 0..255 (the data spec scales them by 1/255: a quarter of float32's bytes on
disk). The label is learnable from the image: each class has a colour and a grating orientation and frequency; an
image is mid grey plus its class's coloured grating at a random phase, under Gaussian noise.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SIDE, CHANNELS, CLASSES = 32, 3, 10
PIXELS_KEY, LABEL_KEY = "image", "label"
SHARDS = 16
EVAL_SHARDS = 4
EVAL_EXAMPLES = 2_000
BATCH_SIZE = 32  # FineTuningConfig's default

# Runs a command to its end, its output to a log file, and prints its exit status, wall time and peak RSS. A fresh,
# small launcher per run: a child's ru_maxrss starts from the RSS of the process it was forked from (exec keeps the
# high-water mark), so forking straight from the benchmark process (TensorFlow loaded) would report that instead.
LAUNCHER = """
import json, os, subprocess, sys, time
log, command = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
with open(log, "wb") as output:
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(process.pid, 0)
print(json.dumps({"returncode": os.waitstatus_to_exitcode(status), "wall_s": time.perf_counter() - started,
                  "peak_rss_mb": usage.ru_maxrss / 1024}))
"""


def data_spec_dict() -> dict:
    """The DataSpec of the synthetic Examples, as a dict (a YAML file for the CLI, a DataSpec in-process)."""
    return {
        "features": [{"key": PIXELS_KEY, "shape": [SIDE * SIDE * CHANNELS], "dtype": "int64"}],
        "label_key": LABEL_KEY,
        "input_shape": [SIDE, SIDE, CHANNELS],
        "scale": 1 / 255,
    }


def class_patterns(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: an RGB colour in [-1, 1], a grating orientation and a frequency (cycles per image)."""
    rng = np.random.default_rng([seed, 1])
    colours = rng.uniform(-1.0, 1.0, size=(CLASSES, CHANNELS))
    angles = rng.permutation(CLASSES) * np.pi / CLASSES
    frequencies = rng.uniform(1.5, 4.5, size=CLASSES)
    return colours, angles, frequencies


def images(labels: np.ndarray, rng: np.random.Generator, *, seed: int = 0, amplitude=24.0, noise=48.0) -> np.ndarray:
    """uint8 images [n, 32, 32, 3] of the given labels (vectorized over the batch)."""
    colours, angles, frequencies = class_patterns(seed)
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) / SIDE
    along = np.cos(angles)[labels, None, None] * x + np.sin(angles)[labels, None, None] * y
    phase = rng.uniform(0, 2 * np.pi, size=(len(labels), 1, 1))
    grating = np.cos(2 * np.pi * frequencies[labels, None, None] * along + phase)
    pixels = 128 + amplitude * grating[..., None] * colours[labels, None, None, :]
    pixels += rng.normal(0.0, noise, size=pixels.shape)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def write_examples(
    folder: str | os.PathLike,
    train_examples: int,
    *,
    eval_examples: int = EVAL_EXAMPLES,
    shards: int = SHARDS,
    seed: int = 0,
) -> Path:
    """Writes `folder/Split-train/` in `shards` uncompressed TFRecord files and `folder/Split-eval/` in
    min(shards, EVAL_SHARDS). Each shard draws from its own generator seeded by (seed, split, shard), so the data
    depends only on the seed and the sizes."""
    from edgeopt.components._shared.keras_bootstrap import tf

    folder = Path(folder)
    for split_index, (split, count, split_shards) in enumerate(
        (("train", train_examples, shards), ("eval", eval_examples, min(shards, EVAL_SHARDS)))
    ):
        target = folder / f"Split-{split}"
        target.mkdir(parents=True, exist_ok=True)
        bounds = np.linspace(0, count, split_shards + 1).astype(int)
        for shard in range(split_shards):
            rng = np.random.default_rng([seed, split_index, shard])
            labels = rng.integers(0, CLASSES, size=bounds[shard + 1] - bounds[shard])
            pixels = images(labels, rng, seed=seed).reshape(len(labels), -1)
            with tf.io.TFRecordWriter(str(target / f"data_tfrecord-{shard:05d}-of-{split_shards:05d}")) as writer:
                for image, label in zip(pixels, labels.tolist(), strict=True):
                    feature = {
                        PIXELS_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=image.tolist())),
                        LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                    }
                    writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return folder


def build_cnn(seed: int = 0):
    """A small CNN for 32x32x3 images ending in logits."""
    from edgeopt.components._shared.keras_bootstrap import keras
    from edgeopt.components._shared.training import set_seeds

    set_seeds(seed)
    return keras.Sequential(
        [
            keras.layers.Input(shape=(SIDE, SIDE, CHANNELS), name="image"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(2, name="pool1"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(2, name="pool2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(64, activation="relu", name="dense1"),
            keras.layers.Dense(CLASSES, name="logits"),
        ],
        name="memory_cnn",
    )


def train_baseline(examples, output_dir, *, epochs: int = 2, seed: int = 0) -> dict:
    """Trains the CNN on `examples` through edgeopt's stream, saves it as a SavedModel folder (atomically) and
    returns its parameter count, Keras eval accuracy and training time."""
    from edgeopt.components._shared.atomic import atomic_output_dir
    from edgeopt.components._shared.data import load_training_data
    from edgeopt.components._shared.data_spec import DataSpec
    from edgeopt.components._shared.keras_bootstrap import keras

    started = time.perf_counter()
    data = load_training_data(examples, data_spec=DataSpec.from_dict(data_spec_dict()))
    model = build_cnn(seed)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(
        data.training_dataset(BATCH_SIZE, seed=seed, shuffle_buffer=4096),
        epochs=epochs,
        steps_per_epoch=data.steps_per_epoch(BATCH_SIZE),
        verbose=0,
    )
    correct = total = 0
    for inputs, labels in data.batches(data.eval_split):
        correct += int(np.sum(model.predict(inputs, verbose=0).argmax(-1) == labels))
        total += len(labels)
    with atomic_output_dir(output_dir) as staging:
        model.save(str(staging), include_optimizer=False)
    return {
        "params": int(model.count_params()),
        "epochs": epochs,
        "keras_eval_accuracy": correct / total,
        "train_s": time.perf_counter() - started,
    }


def run_measured(command: list[str], log: str | os.PathLike) -> dict:
    """Runs `command` to its end (stdout and stderr to `log`) and returns its exit status, wall time and peak
    resident set in MB: the kernel's high-water mark of the process and of the children it waited for (`os.wait4`
    in a fresh launcher, so the figure is this command's own, whatever ran before it)."""
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(log), *command], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"the launcher of {command[:2]} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)
