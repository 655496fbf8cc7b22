"""Selective 16x8: AI Edge Quantizer's static int8 with the chosen layers (by name, or the top k of the per-layer
sensitivity ranking) in 16x8, int8 weights with int16 activations.

The TFLite converter's 16x8 mode is whole-model; AI Edge Quantizer sets a16w8 op by op and inserts QUANTIZE ops
where an int8 tensor meets an int16 op. A tensor keeps its producer's precision, so a layer in 16x8 whose input
comes from an int8 op would read activations already rounded to int8 (measured on a CNN with one outlier
activation: the consumer alone in 16x8 stayed at 22 % top-1 agreement, the producer and the consumer at 100 %).
The ops that feed a chosen layer therefore emit int16 as well.

The top k are ranked by what 16x8 buys, not by the int8 error ranking float_top_k uses: QuantizationDebugger
compares each op against the float op fed the same int8 input, so an activation whose int8 range is wasted on one
outlier looks clean at its producer (rounding error ~ scale) and at its consumer (which sees the same crushed input
in both runs). Each layer is instead tried alone in 16x8 (with its feeding ops) on the calibration examples, and
the layers are ranked by how much the int8 model's output error against the float .tflite falls: one AI Edge
Quantizer run per quantized layer, once per conversion.
"""

import logging
import re
import tempfile
from pathlib import Path

import numpy as np

from edgeopt.components._shared.errors import ConfigError, ConversionError
from edgeopt.components.quantization.config import QuantizationConfig
from edgeopt.components.quantization.int4 import quantize_with_ai_edge_quantizer, quantizer_modules
from edgeopt.components.quantization.sensitivity import (
    DEBUG_EXAMPLES,
    convert_selective,
    float_layer_nodes,
    op_layers,
    rank_layers,
)

logger = logging.getLogger(__name__)


def int16x8_op_scopes(float_flatbuffer: bytes, layers_by_output: dict[str, str], layers: list[str]) -> list[str]:
    """AI Edge Quantizer op scopes (an op's output tensor names joined by ';', with a trailing ';') of the ops of
    `layers` and of the ops producing their inputs."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=float_flatbuffer)
    names = {detail["index"]: detail["name"] for detail in interpreter.get_tensor_details()}
    # No public API lists ops; _get_ops_details is what LiteRT's own analyzer uses.
    ops = interpreter._get_ops_details()
    producer = {tensor: position for position, op in enumerate(ops) for tensor in op["outputs"]}
    chosen, found = set(), set()
    for position, op in enumerate(ops):
        layer = next((layers_by_output.get(names.get(index)) for index in op["outputs"]), None)
        if layer in layers:
            found.add(layer)
            chosen.add(position)
            chosen.update(producer[tensor] for tensor in op["inputs"] if tensor in producer)
    missing = [layer for layer in layers if layer not in found]
    if missing:
        known = sorted(set(layers_by_output.values()))
        raise ConfigError(f"int16x8_layers {missing} have no op in the float .tflite; choose among {known}")
    return [
        ";".join(names[index] for index in ops[position]["outputs"] if index in names) + ";"
        for position in sorted(chosen)
    ]


def mixed_16x8_recipe(scopes: list[str]) -> list[dict]:
    """Static int8 (AI Edge Quantizer's static_wi8_ai8) on every op, then a16w8 on the ops named by `scopes`: a later
    recipe entry overrides an earlier one for the ops it matches."""
    qtyping, _, recipe_manager = quantizer_modules()
    manager = recipe_manager.RecipeManager()
    everything = qtyping.TFLOperationName.ALL_SUPPORTED
    manager.add_static_config(regex=".*", operation_name=everything, activation_num_bits=8, weight_num_bits=8)
    for scope in scopes:
        manager.add_static_config(
            regex=f"^{re.escape(scope)}$", operation_name=everything, activation_num_bits=16, weight_num_bits=8
        )
    return manager.get_quantization_recipe()


def _predict(flatbuffer: bytes, inputs: np.ndarray) -> np.ndarray:
    """The dequantized outputs of a .tflite held in memory (TfliteRunner reads files)."""
    from edgeopt.components._shared.tflite_runtime import TfliteRunner

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.tflite"
        path.write_bytes(flatbuffer)
        return TfliteRunner(path).predict(inputs)


def rank_int16x8_gains(
    float_flatbuffer: bytes, layers_by_output: dict[str, str], layers: list[str], config, calibration_inputs
) -> list[dict]:
    """Each layer alone in 16x8: the output error (mean |difference| from the float .tflite on the first 64
    calibration examples) of the int8 model with that layer in 16x8, and the gain over all-int8; best gain first."""
    inputs = np.asarray(calibration_inputs[:DEBUG_EXAMPLES])

    def error(layer_set):
        scopes = int16x8_op_scopes(float_flatbuffer, layers_by_output, layer_set)
        quantized = quantize_with_ai_edge_quantizer(float_flatbuffer, config, inputs, recipe=mixed_16x8_recipe(scopes))
        return float(np.mean(np.abs(_predict(quantized, inputs) - reference)))

    reference = _predict(float_flatbuffer, inputs)
    all_int8 = error([])
    gains = [{"layer": layer, "output_error": error([layer])} for layer in layers]
    for entry in gains:
        entry.update(all_int8_output_error=all_int8, gain=all_int8 - entry["output_error"])
    return sorted(gains, key=lambda entry: -entry["gain"])


def quantize_keeping_int16x8_layers(
    keras_model,
    config: QuantizationConfig,
    output_dir,
    *,
    configure,
    calibration_inputs,
    validation_inputs,
):
    """`quantize()` for a config with int16x8_layers/int16x8_top_k: rank the layers (TFLite's QuantizationDebugger on
    the converter's full-integer int8, set up by `configure`), quantize the float .tflite with AI Edge Quantizer
    keeping the chosen layers in 16x8, and validate like any conversion; layer_sensitivity.json and .png land beside
    the .tflite."""
    kept: dict = {}

    def configure_selective(converter):
        # Runs before convert_and_validate's conversion try-block, so an unknown layer name stays a ConfigError.
        ranking = rank_layers(keras_model, configure, calibration_inputs)
        float_layer_nodes(ranking, config.int16x8_layers, 0, field="int16x8_layers")  # unknown names: ConfigError
        try:
            float_flatbuffer = converter.convert()
        except Exception as err:  # the converter raises a zoo of types
            raise ConversionError(f"quantize[{config.mode.value}]: float TFLite conversion failed: {err}") from err
        layers_by_output = op_layers(keras_model, [layer.name for layer in keras_model.layers], float_flatbuffer)
        chosen, gains = list(config.int16x8_layers), []
        if config.int16x8_top_k:
            candidates = [entry["layer"] for entry in ranking if entry["layer"] in set(layers_by_output.values())]
            gains = rank_int16x8_gains(float_flatbuffer, layers_by_output, candidates, config, calibration_inputs)
            chosen += [entry["layer"] for entry in gains if entry["layer"] not in chosen][: config.int16x8_top_k]
        scopes = int16x8_op_scopes(float_flatbuffer, layers_by_output, chosen)
        logger.info("keeping %s in 16x8 (%d ops with int16 activations)", chosen, len(scopes))
        quantized = quantize_with_ai_edge_quantizer(
            float_flatbuffer, config, calibration_inputs, recipe=mixed_16x8_recipe(scopes)
        )
        converter.convert = lambda: quantized
        kept.update(ranking=ranking, int16x8_layers=chosen, int16x8_gains=gains)

    return convert_selective(
        keras_model, config, output_dir, configure=configure_selective, validation_inputs=validation_inputs, kept=kept,
        kept_as="16x8 layers",
    )  # fmt: skip
