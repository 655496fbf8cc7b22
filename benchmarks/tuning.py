"""Benchmark helper: the tuning sweep behind the prune80_int8, cluster16_int8 and ptq_int8 targets, on the digits CNN.

Each variant is one training step (or none) through the technique's core function, then full-integer int8 twice
from the same trained SavedModel: Dense kernels per channel (the converter's default) and per tensor
(QuantizationConfig.dense_granularity), measured against the float baseline of the main run. For the largest kernel
of each .tflite it reports distinct int8 values, their order-0 entropy and gzip's bits per weight: the numbers that
bound the gzip ratio.
"""

import gzip
from pathlib import Path

import numpy as np

from edgeopt.components._shared.tflite_inspect import stored_tensors
from edgeopt.components.evaluation.config import EvaluationConfig
from edgeopt.components.evaluation.core import Evaluation, compare, evaluate_tflite
from edgeopt.components.quantization.config import QuantizationConfig
from edgeopt.components.quantization.core import quantize
from edgeopt.components.registry import TECHNIQUES

CLUSTER = {"number_of_clusters": 16, "epochs": 3, "learning_rate": 0.0001}
PRUNE = {"target_sparsity": 0.8, "epochs": 12, "learning_rate": 0.0005}
GRANULARITIES = ("per_channel", "per_tensor")

VARIANTS = {
    "ptq int8, no training": {},
    "cluster16 kmeans++": {"cluster": {**CLUSTER, "centroid_init": "kmeans_plus_plus"}},
    "cluster16 linear (recipe)": {"cluster": {**CLUSTER, "centroid_init": "linear"}},
    "cluster8 kmeans++": {"cluster": {**CLUSTER, "number_of_clusters": 8}},
    "prune 0.80 unstructured": {"prune": PRUNE},
    "prune 0.80, 2x1 blocks": {"prune": {**PRUNE, "block_size": [2, 1]}},
    "prune 0.80, 4x1 blocks (recipe)": {"prune": {**PRUNE, "block_size": [4, 1]}},
    "prune 0.80, 8x1 blocks": {"prune": {**PRUNE, "block_size": [8, 1]}},
    "prune 0.85 unstructured": {"prune": {**PRUNE, "target_sparsity": 0.85}},
}
QUICK_VARIANTS = (
    "ptq int8, no training",
    "cluster16 linear (recipe)",
    "prune 0.80 unstructured",
    "prune 0.80, 4x1 blocks (recipe)",
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
        folder = work / f"variant_{index}"
        trained, result = model_dir, {}
        for technique_name, config in step.items():
            technique = TECHNIQUES[technique_name]
            trained = folder / technique_name
            outcome = technique.function()(model_dir, technique.config()(**config), trained, data=data)
            result = {
                key: value
                for key, value in outcome.to_dict().items()
                if key in ("achieved_sparsity", "max_unique_values")
            }
        row = {"variant": name, "steps": step, "result": result}
        for granularity in GRANULARITIES:
            config = QuantizationConfig(mode="full_integer", dense_granularity=granularity)
            converted = quantize(trained, config, folder / granularity, data=data)
            row[granularity] = measure(converted.tflite_path, data, baseline, evaluation)
        print(
            f"[bench] tuning {name}: gzip x {row['per_channel']['gzip_ratio']:.2f} per-channel Dense, "
            f"{row['per_tensor']['gzip_ratio']:.2f} per-tensor; drop {row['per_tensor']['accuracy_drop']:.2f} pt",
            flush=True,
        )
        rows.append(row)
    return rows
