"""Run a .tflite file through the LiteRT interpreter on float inputs, handling int8/int16 quantized I/O."""

import os

import numpy as np

from edgeopt.components._shared.errors import DataError
from edgeopt.components._shared.tasks import match_output_name

CHUNK = 256


class TfliteRunner:
    """Batched inference over a .tflite model, inputs and outputs matched by their signature names.

    Inputs are float arrays in the Keras model's input space: one array for a single-input model, or a dict keyed by
    the Keras input names (the converter keeps them as the serving signature's input names). Quantized inputs are
    quantized with the model's own scale and zero point, quantized outputs dequantized, so outputs compare directly
    with the Keras model's. Outputs are keyed by the signature's output names (the Keras output layer names).
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
        signatures = self.interpreter.get_signature_list()
        if signatures:
            # The first (for a converted Keras model, the only: serving_default) signature runs subgraph 0, so its
            # tensor indices are the interpreter's and the timed loop can set tensors without the runner's resize.
            runner = self.interpreter.get_signature_runner(next(iter(signatures)))
            self.inputs = dict(runner.get_input_details())
            self.outputs = dict(runner.get_output_details())
        else:  # a flatbuffer without signatures: tensor order and tensor names
            self.inputs = {detail["name"]: detail for detail in self.interpreter.get_input_details()}
            self.outputs = {detail["name"]: detail for detail in self.interpreter.get_output_details()}
        self._batch = None
        # A model whose inputs have a dynamic batch dimension (-1 in the signature) runs CHUNK examples per
        # invocation; one exported with a fixed batch runs them one at a time.
        dynamic = all(len(d.get("shape_signature", ())) and d["shape_signature"][0] == -1 for d in self.inputs.values())
        self._chunk = CHUNK if dynamic else 1

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self.outputs)

    @property
    def input_detail(self) -> dict:
        """The first input's details (all inputs share the quantization mode)."""
        return next(iter(self.inputs.values()))

    @property
    def output_detail(self) -> dict:
        return next(iter(self.outputs.values()))

    @property
    def input_dtype(self):
        return self.input_detail["dtype"]

    @property
    def output_dtype(self):
        return self.output_detail["dtype"]

    def by_name(self, inputs) -> dict[str, np.ndarray]:
        """Inputs keyed by signature name: a lone array feeds the only input; dict keys must name every input
        (extra keys, e.g. unused features of a TFX input_fn, are ignored)."""
        if not isinstance(inputs, dict):
            if len(self.inputs) != 1:
                raise DataError(f"{self.path} has inputs {self.input_names}; pass a dict of arrays keyed by them")
            return {self.input_names[0]: self._with_rank(np.asarray(inputs), self.input_detail)}
        if len(self.inputs) == 1 and len(inputs) == 1:
            return {self.input_names[0]: self._with_rank(np.asarray(next(iter(inputs.values()))), self.input_detail)}
        missing = [name for name in self.inputs if name not in inputs]
        if missing:
            raise DataError(f"{self.path} needs inputs {missing}, which the data does not give (it has {list(inputs)})")
        return {name: self._with_rank(np.asarray(inputs[name]), self.inputs[name]) for name in self.inputs}

    @staticmethod
    def _with_rank(array: np.ndarray, detail: dict) -> np.ndarray:
        # A scalar feature may arrive as [batch] where the model's Input is [batch, 1], as Keras accepts it.
        shape = list(detail["shape"])
        if array.ndim == len(shape) - 1 and int(np.prod(shape[1:])) == 1:
            return array.reshape(len(array), *shape[1:])
        return array

    def _prepare(self, batch_size: int):
        if self._batch != batch_size:
            for detail in self.inputs.values():
                shape = list(detail["shape"])
                shape[0] = batch_size
                self.interpreter.resize_tensor_input(detail["index"], shape)
            self.interpreter.allocate_tensors()
            self._batch = batch_size

    @staticmethod
    def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
        dtype = detail["dtype"]
        if np.issubdtype(dtype, np.floating):
            return x.astype(dtype)
        scale, zero_point = detail["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)

    @staticmethod
    def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
        if np.issubdtype(detail["dtype"], np.floating):
            return y.astype(np.float32)
        scale, zero_point = detail["quantization"]
        return (y.astype(np.float32) - zero_point) * scale

    def quantize_inputs(self, inputs) -> dict[str, np.ndarray]:
        """Inputs by name, each cast or quantized to what its tensor holds."""
        return {name: self._quantize(array, self.inputs[name]) for name, array in self.by_name(inputs).items()}

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        return self._quantize(x, self.input_detail)

    def dequantize_output(self, y: np.ndarray, name: str | None = None) -> np.ndarray:
        return self._dequantize(y, self.outputs[name] if name is not None else self.output_detail)

    def invoke_prepared(self, prepared: dict[str, np.ndarray]):
        """One invocation on already quantized inputs (from `quantize_inputs`); the timed inner loop of latency."""
        for name, array in prepared.items():
            self.interpreter.set_tensor(self.inputs[name]["index"], array)
        self.interpreter.invoke()

    def predict_all(self, inputs) -> dict[str, np.ndarray]:
        """Every output, dequantized, for a batch of any size."""
        named = self.by_name(inputs)
        total = len(next(iter(named.values())))
        results = {name: [] for name in self.outputs}
        start = 0
        while start < total:
            size = min(self._chunk, total - start)
            self._prepare(size)
            chunk = {name: array[start : start + size] for name, array in named.items()}
            self.invoke_prepared(self.quantize_inputs(chunk))
            for name, detail in self.outputs.items():
                results[name].append(self._dequantize(self.interpreter.get_tensor(detail["index"]), detail))
            start += size
        return {name: np.concatenate(parts) for name, parts in results.items()}

    def output_name(self, output: str | None) -> str:
        """The signature output for a Keras output name; the first output when `output` is None."""
        if output is None:
            return self.output_names[0]
        found = match_output_name(self.output_names, output)
        if found is None:
            raise DataError(
                f"{self.path} has no output '{output}'; its outputs are {self.output_names}: name one as `output`"
            )
        return found

    def predict(self, inputs, output: str | None = None) -> np.ndarray:
        """One output (by Keras output name; default the first), dequantized."""
        return self.predict_all(inputs)[self.output_name(output)]
