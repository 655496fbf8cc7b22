"""Helpers that read what a model really holds."""

import numpy as np

from edgeopt.components._shared.tflite_inspect import weight_tensors


def kernels(tflite_path, type_name=None):
    """Weight tensors of rank >= 2 in a .tflite, optionally of one stored type (INT8, FLOAT32, ...)."""
    found = [t for t in weight_tensors(tflite_path) if type_name is None or t.type_name == type_name]
    assert found, f"no {type_name or ''} weight tensors in {tflite_path}"
    return found


def overall_sparsity(tensors) -> float:
    zeros = sum(int(np.sum(t.values == 0)) for t in tensors)
    return zeros / sum(t.values.size for t in tensors)


def keras_accuracy(model, data) -> float:
    inputs, labels = data.arrays(data.eval_split)
    return float(np.mean(np.asarray(model(inputs, training=False)).argmax(-1) == labels))
