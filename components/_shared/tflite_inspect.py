"""Read the constant tensors stored in a .tflite flatbuffer: what the file really holds, byte for byte."""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_NUMPY_TYPES = {
    "FLOAT32": np.float32,
    "FLOAT16": np.float16,
    "INT32": np.int32,
    "INT16": np.int16,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT64": np.int64,
}


@dataclass(frozen=True)
class StoredTensor:
    name: str
    type_name: str
    shape: tuple[int, ...]
    values: np.ndarray
    #: Quantization scales stored with the tensor: 0 for float, 1 per tensor, one per channel otherwise.
    scale_count: int = 0

    @property
    def sparsity(self) -> float:
        return float(np.mean(self.values == 0))


def stored_tensors(tflite_path: str | os.PathLike) -> list[StoredTensor]:
    """Every tensor of the main subgraph that has data in a buffer (weights, biases, constants)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    type_names = {value: name for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
    model = flatbuffer_utils.read_model(str(tflite_path))
    tensors = []
    for tensor in model.subgraphs[0].tensors:
        buffer = model.buffers[tensor.buffer]
        if buffer.data is None or len(buffer.data) == 0:
            continue
        type_name = type_names[tensor.type]
        if type_name not in _NUMPY_TYPES:
            continue
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
        shape = tuple(int(dim) for dim in tensor.shape)
        values = np.frombuffer(bytes(buffer.data), dtype=_NUMPY_TYPES[type_name]).reshape(shape)
        quantization = tensor.quantization
        scales = quantization.scale if quantization is not None and quantization.scale is not None else []
        tensors.append(StoredTensor(name, type_name, shape, values, len(scales)))
    return tensors


def weight_tensors(tflite_path: str | os.PathLike) -> list[StoredTensor]:
    """Kernels of convolutions and fully connected layers: stored tensors of rank 2 or more."""
    return [tensor for tensor in stored_tensors(tflite_path) if len(tensor.shape) >= 2]


def non_weight_bytes_share(tflite_path: str | os.PathLike) -> float:
    """Share of the file that is not constant tensor data (graph structure, metadata): the fixed overhead."""
    size = Path(tflite_path).stat().st_size
    data = sum(tensor.values.nbytes for tensor in stored_tensors(tflite_path))
    return max(0.0, 1.0 - data / size)
