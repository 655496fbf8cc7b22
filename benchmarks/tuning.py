"""Benchmark helper: the tuning sweep behind the prune80_int8 and cluster16_int8 targets, on the digits CNN.

Each variant is one recipe (a training step, then full-integer int8) run through the core's `run_recipe`, measured
against the float baseline of the main run. For every variant the same trained SavedModel is also converted once
more with per-tensor int8 quantization of Dense layers (the converter's private
`_experimental_disable_per_channel_quantization_for_dense_layers`, which edgeopt's QuantizationConfig does not
expose) to separate what the recipe does from what per-channel quantization does to shared and zero weights.
For the largest kernel of each .tflite it reports distinct int8 values, their order-0 entropy and gzip's bits per
weight: the numbers that bound the gzip ratio.
"""

import gzip
from pathlib import Path

import numpy as np

from edgeopt.components._shared.keras_bootstrap import tf
from edgeopt.components._shared.model_io import load_keras_model
from edgeopt.components._shared.tflite_inspect import stored_tensors
from edgeopt.components.evaluation.config import EvaluationConfig
from edgeopt.components.evaluation.core import Evaluation, compare, evaluate_tflite
from edgeopt.components.quantization.config import QuantizationConfig
from edgeopt.components.quantization.core import configure_converter, pick_calibration_examples
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.recipes.core import run_recipe

CLUSTER = {"number_of_clusters": 16, "epochs": 3, "learning_rate": 0.0001}
PRUNE = {"target_sparsity": 0.8, "epochs": 12, "learning_rate": 0.0005}

VARIANTS = {
    "ptq int8, no training (ptq_int8)": {},
    "cluster16 kmeans++ (old default)": {"cluster": {**CLUSTER, "centroid_init": "kmeans_plus_plus"}},
    "cluster16 linear (new default)": {"cluster": {**CLUSTER, "centroid_init": "linear"}},
    "cluster16 density_based": {"cluster": {**CLUSTER, "centroid_init": "density_based"}},
    "cluster8 kmeans++": {"cluster": {**CLUSTER, "number_of_clusters": 8}},
    "prune 0.80, 6 epochs (old default)": {"prune": {**PRUNE, "epochs": 6}},
    "prune 0.80, 12 epochs (new default)": {"prune": PRUNE},
    # The digits CNN's kernels hold 283,424 weights, 262,144 of them in dense1: 86.5 % there is 80 % of all of them.
    "prune dense1 only to 0.865 (80 % of all kernels)": {
        "prune": {**PRUNE, "target_sparsity": 0.865, "skip_layers": ["conv1", "conv2", "logits"]}
    },
    "prune 0.85, 12 epochs": {"prune": {**PRUNE, "target_sparsity": 0.85}},
    "prune 0.90, 12 epochs": {"prune": {**PRUNE, "target_sparsity": 0.9}},
}
QUICK_VARIANTS = (
    "ptq int8, no training (ptq_int8)",
    "cluster16 kmeans++ (old default)",
    "cluster16 linear (new default)",
    "prune 0.80, 12 epochs (new default)",
)


def kernel_stats(tflite_path) -> dict:
    """Distinct values, order-0 entropy and gzip bits per weight of the file's largest int8 tensor."""
    tensor = max(stored_tensors(tflite_path), key=lambda t: t.values.size)
    values = tensor.values.reshape(-1)
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return {
        "tensor": tensor.name.split(";")[0],
        "weights": int(values.size),
        "distinct_values": int(len(counts)),
        "entropy_bits": float(-(p * np.log2(p)).sum()),
        "gzip_bits": 8.0 * len(gzip.compress(values.tobytes(), compresslevel=9, mtime=0)) / values.size,
        "zero_share": float(np.mean(values == 0)),
    }


def quantization_param_bytes(tflite_path) -> int:
    """Bytes of quantization parameters in the flatbuffer: a float32 scale and an int64 zero point per channel."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(tflite_path))
    total = 0
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            quantization = tensor.quantization
            if quantization is not None:
                total += 4 * len(quantization.scale if quantization.scale is not None else [])
                total += 8 * len(quantization.zeroPoint if quantization.zeroPoint is not None else [])
    return total


def convert_per_tensor_dense(model_dir, data, out_path: Path) -> Path:
    """Full-integer int8 exactly as edgeopt's quantize step, except Dense kernels get one scale per tensor."""
    model = load_keras_model(model_dir)
    config = QuantizationConfig(mode="full_integer")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    configure_converter(
        converter, config, pick_calibration_examples(data, config.calibration_examples, config.calibration_seed)
    )
    converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(converter.convert())
    return out_path


def measure(path, data, baseline: Evaluation, evaluation: EvaluationConfig) -> dict:
    evaluated = evaluate_tflite(path, data, evaluation)
    comparison = compare(evaluated, baseline)
    return {
        "tflite_bytes": evaluated.tflite_bytes,
        "gzip_bytes": evaluated.gzip_bytes,
        "size_ratio": comparison.size_ratio,
        "gzip_ratio": comparison.gzip_ratio,
        "accuracy": evaluated.accuracy,
        "accuracy_drop": comparison.accuracy_drop,
        "largest_kernel": kernel_stats(path),
        "quant_param_bytes": quantization_param_bytes(path),
    }


def sweep(model_dir, data, baseline: Evaluation, work: Path, *, quick: bool = False) -> list[dict]:
    evaluation = EvaluationConfig(warmup_runs=1, timed_runs=5)  # latency is measured elsewhere
    rows = []
    for index, (name, step) in enumerate(VARIANTS.items()):
        if quick and name not in QUICK_VARIANTS:
            continue
        training = [{"technique": technique, "config": config} for technique, config in step.items()]
        recipe = RecipeConfig(name=f"variant_{index}", steps=[*training, {"technique": "quantize"}])
        folder = work / recipe.name
        tflite, records = run_recipe(model_dir, recipe, folder, data=data, verbose=0)
        row = {"variant": name, "steps": step, **measure(tflite, data, baseline, evaluation)}
        trained = records[0]["output"] if training else model_dir
        row["result"] = {
            key: value
            for record in records
            for key, value in record["result"].items()
            if key in ("achieved_sparsity", "max_unique_values")
        }
        per_tensor = convert_per_tensor_dense(trained, data, folder / "per_tensor_dense" / "model.tflite")
        row["per_tensor_dense"] = measure(per_tensor, data, baseline, evaluation)
        per_tensor_gzip = row["per_tensor_dense"]["gzip_ratio"]
        print(
            f"[bench] tuning {name}: gzip x {row['gzip_ratio']:.2f} (per-tensor Dense {per_tensor_gzip:.2f}), "
            f"drop {row['accuracy_drop']:.2f} pt",
            flush=True,
        )
        rows.append(row)
    return rows
