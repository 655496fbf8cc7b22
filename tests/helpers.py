"""Helpers that read what a model really holds."""

import numpy as np

from edgeopt.components._shared.tflite_inspect import weight_tensors


def kernels(tflite_path, type_name=None):
    """Weight tensors of rank >= 2 in a .tflite, optionally of one stored type (INT8, FLOAT32, ...)."""
    found = [t for t in weight_tensors(tflite_path) if type_name is None or t.type_name == type_name]
    assert found, f"no {type_name or ''} weight tensors in {tflite_path}"
    return found


def activation_types(tflite_path) -> dict[str, str]:
    """Stored type of every tensor that is no constant (activations, inputs and outputs), by tensor name."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    names = {value: name for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
    model = flatbuffer_utils.read_model(str(tflite_path))
    return {
        tensor.name.decode(): names[tensor.type]
        for tensor in model.subgraphs[0].tensors
        if model.buffers[tensor.buffer].data is None
    }


def op_names(tflite_path) -> set[str]:
    """Names of the builtin operators the .tflite's graph runs (CONV_2D, MUL, ...)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = flatbuffer_utils.read_model(str(tflite_path))
    return {names[max(code.builtinCode, code.deprecatedBuiltinCode)] for code in model.operatorCodes}


def overall_sparsity(tensors) -> float:
    zeros = sum(int(np.sum(t.values == 0)) for t in tensors)
    return zeros / sum(t.values.size for t in tensors)


def whole_split(data, split):
    """A small test split as (inputs, labels) numpy arrays: tests may hold their tiny data; the product streams."""
    from edgeopt.components._shared.streaming import concatenate

    batches = list(data.batches(split))
    return concatenate([inputs for inputs, _ in batches]), np.concatenate([labels for _, labels in batches])


def keras_accuracy(model, data) -> float:
    inputs, labels = whole_split(data, data.eval_split)
    return float(np.mean(np.asarray(model(inputs, training=False)).argmax(-1) == labels))


class Untouchable:
    """Training data that fails if read: proves a refusal happened before any work."""

    def __getattr__(self, name):
        raise AssertionError(f"the data was read ({name}) before the refusal")


def save_tiny_subclassed_model(path):
    """A subclassed tf-keras model (Flatten -> Dense 10 on 8x8x1), saved as a SavedModel at `path`."""
    import numpy as np

    from edgeopt.components._shared.keras_bootstrap import keras

    class TinySubclassed(keras.Model):
        def __init__(self):
            super().__init__(name="tiny_subclassed")
            self.flatten, self.dense = keras.layers.Flatten(), keras.layers.Dense(10)

        def call(self, inputs):
            return self.dense(self.flatten(inputs))

    model = TinySubclassed()
    model(np.zeros((1, 8, 8, 1), np.float32))
    model.save(path)
    return path
