"""TFX Trainer module for the digits pipeline: `run_fn` trains the CNN, `input_fn` reads CsvExampleGen's records.

edgeopt's training-time steps (Pruner, QuantizationAwareTrainer, ...) take this same file and call its `input_fn`,
exactly as a user passes their own Trainer module.
"""

from edgeopt.components._shared.keras_bootstrap import keras, tf
from edgeopt.components.demo.digits import build_digits_cnn

PIXEL_KEYS = [f"pixel_{index}" for index in range(64)]
LABEL_KEY = "label"
EPOCHS = 8
FEATURES = {key: tf.io.FixedLenFeature([1], tf.int64) for key in PIXEL_KEYS}
FEATURES[LABEL_KEY] = tf.io.FixedLenFeature([], tf.int64)


def input_fn(file_pattern, batch_size):
    """One epoch of (8x8x1 images in [0, 1], labels) from gzipped tf.Example files (one pixel per feature)."""
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted(name for pattern in patterns for name in tf.io.gfile.glob(pattern))
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size)

    def to_pair(serialized):
        parsed = tf.io.parse_example(serialized, FEATURES)
        pixels = tf.concat([tf.cast(parsed[key], tf.float32) for key in PIXEL_KEYS], axis=-1) / 16.0
        return tf.reshape(pixels, [-1, 8, 8, 1]), parsed[LABEL_KEY]

    return dataset.map(to_pair)


def run_fn(fn_args):
    """TFX Trainer entry point: trains on the train split, saves a SavedModel to serving_model_dir."""
    model = build_digits_cnn(filters=fn_args.custom_config.get("filters", 32) if fn_args.custom_config else 32)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    epochs = (fn_args.custom_config or {}).get("epochs", EPOCHS)
    model.fit(
        input_fn(fn_args.train_files, 32), validation_data=input_fn(fn_args.eval_files, 256), epochs=epochs, verbose=2
    )
    model.save(fn_args.serving_model_dir, include_optimizer=False)
