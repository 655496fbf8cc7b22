"""The hand-written baseline: the official TensorFlow Model Optimization tutorials' flows, plain tfmot plus the
TFLite converter, no edgeopt import anywhere in this file.

Two kinds of flow, on a trained Keras model (SavedModel folder) and TFX-layout Examples (gzipped tf.Example):
  as written: each tutorial's own code and defaults, only the data swapped for ours:
    - post_training_integer_quant: 100 representative images, TFLITE_BUILTINS_INT8, uint8 input and output;
    - pruning_with_keras: PolynomialDecay 0.50 -> 0.80, end_step = 2 epochs of batch-128 steps, validation_split
      0.1, then strip_pruning and the converter with Optimize.DEFAULT (dynamic range);
    - clustering_example: 16 clusters, LINEAR init, Adam 1e-5, 1 epoch of batch 500, then Optimize.DEFAULT;
    - training_example (QAT): quantize_model, 1 epoch on the first 1000 training images, batch 500, then
      Optimize.DEFAULT.
  matched: the same tfmot calls written by hand with the hyperparameters of edgeopt's recipe (epochs, learning
    rate, batch size, schedule, calibration count, full-integer int8 with float I/O), so sizes, accuracies and wall
    times compare like for like with edgeopt's core.
Each flow returns the .tflite it wrote, its bytes, gzip bytes (level 9, as edgeopt measures), the tutorials' own
zip measure (zipfile ZIP_DEFLATED), accuracy on the eval split and its wall time (model load to measured .tflite).

Usage (prints JSON): scripts/in-env python benchmarks/tutorial_baseline.py --model DIR --examples DIR --out DIR
  [--input-shape 8,8,1] [--scale 0.0625]
"""

import argparse
import glob
import gzip
import json
import os
import random
import tempfile
import time
import zipfile

# The tutorials' setup for TF >= 2.16: tfmot needs Keras 2 (tf_keras), chosen before TensorFlow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402


def load_split(examples_dir, split, *, input_shape=(8, 8, 1), scale=1 / 16, feature="pixels", label="label"):
    """(images, labels) of one split of a TFX Examples folder, as the tutorials hold MNIST: numpy arrays."""
    files = sorted(glob.glob(os.path.join(examples_dir, f"Split-{split}", "*")))
    spec = {
        feature: tf.io.FixedLenFeature([int(np.prod(input_shape))], tf.float32),
        label: tf.io.FixedLenFeature([], tf.int64),
    }
    images, labels = [], []
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(1024):
        parsed = tf.io.parse_example(batch, spec)
        images.append(parsed[feature].numpy().reshape(-1, *input_shape) * scale)
        labels.append(parsed[label].numpy())
    return np.concatenate(images).astype(np.float32), np.concatenate(labels)


def get_gzipped_model_size(file):
    """The tutorials' helper: bytes of the file zipped with ZIP_DEFLATED."""
    _, zipped_file = tempfile.mkstemp(".zip")
    with zipfile.ZipFile(zipped_file, "w", compression=zipfile.ZIP_DEFLATED) as f:
        f.write(file)
    size = os.path.getsize(zipped_file)
    os.remove(zipped_file)
    return size


def gzip9_size(file):
    with open(file, "rb") as handle:
        return len(gzip.compress(handle.read(), compresslevel=9, mtime=0))


def evaluate_model(tflite_file, test_images, test_labels):
    """The tutorials' evaluation loop: one image at a time, quantizing the input when the model takes integers."""
    interpreter = tf.lite.Interpreter(model_path=tflite_file)
    interpreter.allocate_tensors()
    input_details = interpreter.get_input_details()[0]
    output_index = interpreter.get_output_details()[0]["index"]
    predictions = []
    for test_image in test_images:
        if input_details["dtype"] != np.float32:
            input_scale, input_zero_point = input_details["quantization"]
            test_image = test_image / input_scale + input_zero_point
        test_image = np.expand_dims(test_image, axis=0).astype(input_details["dtype"])
        interpreter.set_tensor(input_details["index"], test_image)
        interpreter.invoke()
        predictions.append(np.argmax(interpreter.get_tensor(output_index)[0]))
    return float(np.mean(np.array(predictions) == test_labels))


def write_tflite(tflite_model, out_dir, name):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.tflite")
    with open(path, "wb") as f:
        f.write(tflite_model)
    return path


def measured(path, test_images, test_labels, started, **extra):
    return {
        "tflite_path": path,
        "tflite_bytes": os.path.getsize(path),
        "gzip_bytes": gzip9_size(path),
        "zip_bytes": get_gzipped_model_size(path),
        "accuracy": evaluate_model(path, test_images, test_labels),
        "seconds": time.perf_counter() - started,
        **extra,
    }


def kernel_sparsity(model):
    """Share of zeros over every Dense/Conv2D kernel of a stripped model."""
    zeros = total = 0
    for layer in model.layers:
        if type(layer).__name__ in ("Dense", "Conv2D"):
            kernel = layer.kernel.numpy()
            zeros += int(np.sum(kernel == 0))
            total += kernel.size
    return zeros / total if total else 0.0


def seed_everything(seed=0):
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    keras.utils.set_random_seed(seed)


def load_model(model_dir):
    return keras.models.load_model(model_dir, compile=False)


def from_logits(model):
    activation = getattr(model.layers[-1], "activation", None)
    return getattr(activation, "__name__", "") != "softmax"


# ---- the tutorials as written ---------------------------------------------------------------------------------------


def float_baseline(model_dir, data, out_dir):
    """The float TFLite model every tutorial converts for comparison, and the zipped Keras .h5 they compare to."""
    started = time.perf_counter()
    model = load_model(model_dir)
    path = write_tflite(tf.lite.TFLiteConverter.from_keras_model(model).convert(), out_dir, "float")
    keras_file = os.path.join(out_dir, "baseline.h5")
    keras.models.save_model(model, keras_file, include_optimizer=False)
    return measured(path, *data["test"], started, keras_h5_zip_bytes=get_gzipped_model_size(keras_file))


def ptq_int8_as_written(model_dir, data, out_dir):
    started = time.perf_counter()
    model = load_model(model_dir)
    train_images = data["train"][0]

    def representative_data_gen():
        for input_value in tf.data.Dataset.from_tensor_slices(train_images).batch(1).take(100):
            yield [input_value]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_data_gen
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    path = write_tflite(converter.convert(), out_dir, "ptq_int8_as_written")
    return measured(path, *data["test"], started)


def prune_as_written(model_dir, data, out_dir):
    started = time.perf_counter()
    model = load_model(model_dir)
    train_images, train_labels = data["train"]
    prune_low_magnitude = tfmot.sparsity.keras.prune_low_magnitude
    # Compute end step to finish pruning after 2 epochs.
    batch_size = 128
    epochs = 2
    validation_split = 0.1  # 10% of training set will be used for validation set.
    num_images = train_images.shape[0] * (1 - validation_split)
    end_step = np.ceil(num_images / batch_size).astype(np.int32) * epochs
    pruning_params = {
        "pruning_schedule": tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=0.50, final_sparsity=0.80, begin_step=0, end_step=end_step
        )
    }
    model_for_pruning = prune_low_magnitude(model, **pruning_params)
    model_for_pruning.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits(model)),
        metrics=["accuracy"],
    )
    model_for_pruning.fit(
        train_images,
        train_labels,
        batch_size=batch_size,
        epochs=epochs,
        validation_split=validation_split,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
        verbose=0,
    )
    model_for_export = tfmot.sparsity.keras.strip_pruning(model_for_pruning)
    sparsity = kernel_sparsity(model_for_export)
    pruned = write_tflite(
        tf.lite.TFLiteConverter.from_keras_model(model_for_export).convert(), out_dir, "pruned_as_written"
    )
    converter = tf.lite.TFLiteConverter.from_keras_model(model_for_export)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    path = write_tflite(converter.convert(), out_dir, "pruned_quantized_as_written")
    return {
        "pruned_float": measured(pruned, *data["test"], started),
        "pruned_quantized": measured(path, *data["test"], started),
        "achieved_sparsity": sparsity,
        "schedule": {"end_step": int(end_step), "frequency": 100, "steps_per_epoch": int(end_step // epochs)},
    }


def cluster_as_written(model_dir, data, out_dir):
    started = time.perf_counter()
    model = load_model(model_dir)
    train_images, train_labels = data["train"]
    cluster_weights = tfmot.clustering.keras.cluster_weights
    CentroidInitialization = tfmot.clustering.keras.CentroidInitialization
    clustering_params = {"number_of_clusters": 16, "cluster_centroids_init": CentroidInitialization.LINEAR}
    clustered_model = cluster_weights(model, **clustering_params)
    # Use smaller learning rate for fine-tuning clustered model
    opt = keras.optimizers.Adam(learning_rate=1e-5)
    clustered_model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits(model)),
        optimizer=opt,
        metrics=["accuracy"],
    )
    clustered_model.fit(train_images, train_labels, batch_size=500, epochs=1, validation_split=0.1, verbose=0)
    final_model = tfmot.clustering.keras.strip_clustering(clustered_model)
    clustered = write_tflite(
        tf.lite.TFLiteConverter.from_keras_model(final_model).convert(), out_dir, "clustered_as_written"
    )
    converter = tf.lite.TFLiteConverter.from_keras_model(final_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    path = write_tflite(converter.convert(), out_dir, "clustered_quantized_as_written")
    return {
        "clustered_float": measured(clustered, *data["test"], started),
        "clustered_quantized": measured(path, *data["test"], started),
    }


def qat_as_written(model_dir, data, out_dir):
    started = time.perf_counter()
    model = load_model(model_dir)
    train_images, train_labels = data["train"]
    quantize_model = tfmot.quantization.keras.quantize_model
    q_aware_model = quantize_model(model)
    q_aware_model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits(model)),
        metrics=["accuracy"],
    )
    train_images_subset = train_images[0:1000]
    train_labels_subset = train_labels[0:1000]
    q_aware_model.fit(
        train_images_subset, train_labels_subset, batch_size=500, epochs=1, validation_split=0.1, verbose=0
    )
    converter = tf.lite.TFLiteConverter.from_keras_model(q_aware_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    path = write_tflite(converter.convert(), out_dir, "qat_as_written")
    return measured(path, *data["test"], started)


AS_WRITTEN = {
    "ptq_int8": ptq_int8_as_written,
    "prune": prune_as_written,
    "cluster": cluster_as_written,
    "qat": qat_as_written,
}


# ---- the same tfmot calls with edgeopt's recipe hyperparameters ------------------------------------------------------


def calibration_images(train_images, count, seed=0):
    order = np.random.default_rng(seed).permutation(len(train_images))
    return train_images[order[:count]]


def int8_converter(model, calibration, *, per_tensor_dense=False):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([image[np.newaxis]] for image in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter._experimental_disable_per_channel_quantization_for_dense_layers = per_tensor_dense
    return converter


def fit(model, data, *, epochs, batch_size, learning_rate, logits, callbacks=()):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=logits),
        metrics=["accuracy"],
    )
    model.fit(*data["train"], batch_size=batch_size, epochs=epochs, shuffle=True, callbacks=list(callbacks), verbose=0)


def matched(technique, model_dir, data, out_dir, params):
    """One of ptq_int8 / prune / cluster / qat with `params` from an edgeopt recipe, then full-integer int8.

    Like edgeopt's job it also converts and measures the float baseline, so both produce the same numbers.
    """
    started = time.perf_counter()
    seed_everything(params.get("seed", 0))
    model = load_model(model_dir)
    logits = from_logits(model)
    baseline = write_tflite(tf.lite.TFLiteConverter.from_keras_model(model).convert(), out_dir, "float_matched")
    baseline_accuracy = evaluate_model(baseline, *data["test"])
    extra = {}
    if technique == "prune":
        steps_per_epoch = int(np.ceil(len(data["train"][0]) / params["batch_size"]))
        total = params["epochs"] * steps_per_epoch
        ramp = max(1, int(total * params["ramp_fraction"]) - 1)
        frequency = max(1, ramp // params["mask_updates"])
        end_step = frequency * max(1, ramp // frequency)
        schedule = tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=params["initial_sparsity"],
            final_sparsity=params["target_sparsity"],
            begin_step=0,
            end_step=end_step,
            frequency=frequency,
        )
        block_size = tuple(params.get("block_size", (1, 1)))

        def prune_layer(layer):
            if not isinstance(layer, keras.layers.Dense | keras.layers.Conv2D):
                return layer
            # tfmot prunes in blocks only on 2-D weights: Dense kernels get the block, Conv2D stays unstructured.
            block = block_size if isinstance(layer, keras.layers.Dense) else (1, 1)
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule, block_size=block)

        model = keras.models.clone_model(model, clone_function=prune_layer)
        fit(model, data, logits=logits, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()], **_training(params))
        model = tfmot.sparsity.keras.strip_pruning(model)
        extra["achieved_sparsity"] = kernel_sparsity(model)
    elif technique == "cluster":
        init = getattr(tfmot.clustering.keras.CentroidInitialization, params["centroid_init"].upper())
        model = tfmot.clustering.keras.cluster_weights(
            model, number_of_clusters=params["number_of_clusters"], cluster_centroids_init=init
        )
        fit(model, data, logits=logits, **_training(params))
        model = tfmot.clustering.keras.strip_clustering(model)
    elif technique == "qat":
        model = tfmot.quantization.keras.quantize_model(model)
        fit(model, data, logits=logits, **_training(params))
    elif technique != "ptq_int8":
        raise ValueError(f"unknown technique {technique}")
    calibration = calibration_images(data["train"][0], params.get("calibration_examples", 200))
    per_tensor_dense = params.get("dense_granularity") == "per_tensor"
    converter = int8_converter(model, calibration, per_tensor_dense=per_tensor_dense)
    path = write_tflite(converter.convert(), out_dir, f"{technique}_matched")
    return measured(path, *data["test"], started, baseline_accuracy=baseline_accuracy, **extra)


def _training(params):
    return {key: params[key] for key in ("epochs", "batch_size", "learning_rate")}


def load_data(examples_dir, *, input_shape=(8, 8, 1), scale=1 / 16):
    return {
        "train": load_split(examples_dir, "train", input_shape=input_shape, scale=scale),
        "test": load_split(examples_dir, "eval", input_shape=input_shape, scale=scale),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="trained Keras SavedModel folder")
    parser.add_argument("--examples", required=True, help="TFX Examples folder (Split-train/, Split-eval/)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--input-shape", default="8,8,1")
    parser.add_argument("--scale", type=float, default=1 / 16)
    args = parser.parse_args()
    data = load_data(args.examples, input_shape=tuple(int(v) for v in args.input_shape.split(",")), scale=args.scale)
    results = {"float": float_baseline(args.model, data, args.out)}
    for name, flow in AS_WRITTEN.items():
        results[name] = flow(args.model, data, args.out)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
