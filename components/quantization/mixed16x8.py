"""Selective 16x8: AI Edge Quantizer's static int8 with the chosen layers (by name, or the top k of the per-layer
sensitivity ranking) in 16x8, int8 weights with int16 activations.

The TFLite converter's 16x8 mode is whole-model; AI Edge Quantizer sets a16w8 op by op and inserts QUANTIZE ops
where an int8 tensor meets an int16 op. A tensor keeps its producer's precision, so a layer in 16x8 whose input
comes from an int8 op would read activations already rounded to int8 (measured on a CNN with one outlier
activation: the consumer alone in 16x8 stayed at 22 % top-1 agreement, the producer and the consumer at 100 %).
The ops that feed a chosen layer therefore emit int16 as well.
"""

import logging
import re

from edgeopt.components._shared.errors import ConfigError, ConversionError
from edgeopt.components.quantization.config import QuantizationConfig
from edgeopt.components.quantization.int4 import quantize_with_ai_edge_quantizer, quantizer_modules
from edgeopt.components.quantization.sensitivity import float_layer_nodes, op_layers, rank_layers, write_sensitivity

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


def quantize_keeping_int16x8_layers(
    keras_model,
    config: QuantizationConfig,
    output_dir,
    *,
    rank_configure,
    calibration_inputs,
    validation_inputs,
):
    """`quantize()` for a config with int16x8_layers/int16x8_top_k: rank the layers (TFLite's QuantizationDebugger on
    the converter's full-integer int8, set up by `rank_configure`), quantize the float .tflite with AI Edge Quantizer
    keeping the chosen layers in 16x8, and validate like any conversion; layer_sensitivity.json and .png land beside
    the .tflite."""
    from edgeopt.components.export.core import convert_and_validate

    kept: dict = {}

    def configure(converter):
        # Runs before convert_and_validate's conversion try-block, so an unknown layer name stays a ConfigError.
        ranking = rank_layers(keras_model, rank_configure, calibration_inputs)
        chosen, _ = float_layer_nodes(ranking, config.int16x8_layers, config.int16x8_top_k, field="int16x8_layers")
        try:
            float_flatbuffer = converter.convert()
        except Exception as err:  # the converter raises a zoo of types
            raise ConversionError(f"quantize[{config.mode.value}]: float TFLite conversion failed: {err}") from err
        layers_by_output = op_layers(keras_model, [layer.name for layer in keras_model.layers], float_flatbuffer)
        scopes = int16x8_op_scopes(float_flatbuffer, layers_by_output, chosen)
        logger.info("keeping %s in 16x8 (%d ops with int16 activations)", chosen, len(scopes))
        quantized = quantize_with_ai_edge_quantizer(
            float_flatbuffer, config, calibration_inputs, recipe=mixed_16x8_recipe(scopes)
        )
        converter.convert = lambda: quantized
        kept.update(ranking=ranking, layers=chosen)

    result = convert_and_validate(
        keras_model,
        output_dir,
        configure_converter=configure,
        validation=config.validation,
        validation_inputs=validation_inputs,
        config_json=config.to_json(),
        step=f"quantize[{config.mode.value}, 16x8 layers]",
    )
    write_sensitivity(kept["ranking"], output_dir, int16x8_layers=kept["layers"])
    return result
