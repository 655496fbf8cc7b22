"""Run a .tflite file through the LiteRT interpreter on float inputs, handling int8/int16 quantized I/O."""

import os

import numpy as np

CHUNK = 256


class TfliteRunner:
    """Batched inference over a single-input, single-output .tflite model.

    Inputs are float arrays in the Keras model's input space; quantized inputs are quantized with the model's own
    scale and zero point, quantized outputs dequantized, so outputs compare directly with the Keras model's.
    """

    def __init__(self, tflite_path: str | os.PathLike, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        from edgeopt.components._shared.errors import ModelLoadError
        from edgeopt.components._shared.model_format import check_tflite_file

        self.path = str(check_tflite_file(tflite_path))
        try:
            self.interpreter = Interpreter(model_path=self.path, num_threads=num_threads)
        except ValueError as err:  # LiteRT's flatbuffer verifier, e.g. on a truncated file
            raise ModelLoadError(f"{self.path} is not a valid .tflite ({err}); export it again") from err
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{self.path}: expected one input and one output, found {len(inputs)} and {len(outputs)}")
        self.input_detail, self.output_detail = inputs[0], outputs[0]
        self._batch = None

    @property
    def input_dtype(self):
        return self.input_detail["dtype"]

    @property
    def output_dtype(self):
        return self.output_detail["dtype"]

    def _prepare(self, batch_size: int):
        if self._batch != batch_size:
            shape = list(self.input_detail["shape"])
            shape[0] = batch_size
            self.interpreter.resize_tensor_input(self.input_detail["index"], shape)
            self.interpreter.allocate_tensors()
            self._batch = batch_size

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        dtype = self.input_dtype
        if np.issubdtype(dtype, np.floating):
            return x.astype(dtype)
        scale, zero_point = self.input_detail["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        if np.issubdtype(self.output_dtype, np.floating):
            return y.astype(np.float32)
        scale, zero_point = self.output_detail["quantization"]
        return (y.astype(np.float32) - zero_point) * scale

    def invoke_prepared(self, x_quantized: np.ndarray):
        """One invocation on an already quantized batch; the timed inner loop of latency measurement."""
        self.interpreter.set_tensor(self.input_detail["index"], x_quantized)
        self.interpreter.invoke()

    def predict(self, x: np.ndarray) -> np.ndarray:
        results = []
        for start in range(0, len(x), CHUNK):
            chunk = x[start : start + CHUNK]
            self._prepare(len(chunk))
            self.invoke_prepared(self.quantize_input(chunk))
            results.append(self.dequantize_output(self.interpreter.get_tensor(self.output_detail["index"])))
        return np.concatenate(results)
