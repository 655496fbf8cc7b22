"""LiteRT's AI Edge Quantizer, applied to the converter's float .tflite: the second quantization backend (int4
weights, mixed int4/int8, and its calibrated static-range modes). It works on any .tflite, so it serves every model
edgeopt can convert."""

import logging

import numpy as np

from edgeopt.components._shared.errors import ConfigError, ConversionError
from edgeopt.components.quantization.config import (
    AEQ_STATIC_MODES,
    Int4Granularity,
    QuantizationConfig,
    QuantizationMode,
)

logger = logging.getLogger(__name__)


def quantizer_modules():
    try:
        from ai_edge_quantizer import qtyping, quantizer, recipe_manager
    except ImportError as err:  # the `search` extra
        raise ConfigError("int4 modes need LiteRT's AI Edge Quantizer: pip install 'edgeopt[search]'") from err
    return qtyping, quantizer, recipe_manager


def int4_recipe(config: QuantizationConfig) -> list[dict]:
    """The AI Edge Quantizer recipe: int4 weights on every supported op, int8 on the ops of `config.int8_layers`;
    for the static modes, the library's own static-range preset."""
    qtyping, _, recipe_manager = quantizer_modules()
    if config.mode in AEQ_STATIC_MODES:
        from ai_edge_quantizer import recipe

        return recipe.static_wi8_ai8() if config.mode == QuantizationMode.AEQ_STATIC_INT8 else recipe.static_wi8_ai16()
    granularity = {
        Int4Granularity.CHANNELWISE: qtyping.QuantGranularity.CHANNELWISE,
        Int4Granularity.BLOCKWISE_32: qtyping.QuantGranularity.BLOCKWISE_32,
        Int4Granularity.BLOCKWISE_64: qtyping.QuantGranularity.BLOCKWISE_64,
    }[config.int4_granularity]
    add = "add_weight_only_config" if config.mode == QuantizationMode.INT4_WEIGHT_ONLY else "add_dynamic_config"
    manager = recipe_manager.RecipeManager()
    everything = qtyping.TFLOperationName.ALL_SUPPORTED
    getattr(manager, add)(regex=".*", operation_name=everything, num_bits=4, granularity=granularity)
    for layer in config.int8_layers:
        # Op output tensors are named model/layer/Op; a later recipe entry overrides an earlier one for its ops.
        getattr(manager, add)(regex=f".*/{layer}/.*", operation_name=everything, num_bits=8)
    return manager.get_quantization_recipe()


def op_output_names(flatbuffer: bytes) -> list[str]:
    """Output tensor names of every op: what AI Edge Quantizer's recipe regexes are matched against."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    names = {detail["index"]: detail["name"] for detail in interpreter.get_tensor_details()}
    # No public API lists ops; _get_ops_details is what LiteRT's own analyzer uses.
    return [names[index] for op in interpreter._get_ops_details() for index in op["outputs"] if index in names]


def check_int8_layers(flatbuffer: bytes, config: QuantizationConfig):
    outputs = op_output_names(flatbuffer)
    missing = [layer for layer in config.int8_layers if not any(f"/{layer}/" in name for name in outputs)]
    if missing:
        raise ConfigError(
            f"int8_layers {missing} match no op of the .tflite (the model's last op is named after its signature, "
            f"not its layer); choose among the layers in {outputs}"
        )


def _calibration_data(flatbuffer: bytes, calibration_inputs) -> dict:
    """AI Edge Quantizer's calibration format: {signature: [{input name: one example}, ...]} (single-input models)."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=flatbuffer).get_signature_list()
    signature = next(iter(signatures))
    inputs = signatures[signature]["inputs"]
    if len(inputs) != 1:
        raise ConfigError(f"AI Edge Quantizer static modes calibrate single-input models; this one has {inputs}")
    return {signature: [{inputs[0]: example[np.newaxis].astype(np.float32)} for example in calibration_inputs]}


def quantize_with_ai_edge_quantizer(
    float_flatbuffer: bytes, config: QuantizationConfig, calibration_inputs=None, recipe: list[dict] | None = None
):
    """Quantizes a float .tflite with AI Edge Quantizer (int4 weights, int8 on `int8_layers`, or a calibrated static
    mode; `recipe` replaces the one `config` implies) and returns the new flatbuffer."""
    _, quantizer, _ = quantizer_modules()
    check_int8_layers(float_flatbuffer, config)
    try:
        model = quantizer.Quantizer(float_flatbuffer, recipe or int4_recipe(config))
        calibration = None
        if config.mode in AEQ_STATIC_MODES:
            calibration = model.calibrate(_calibration_data(float_flatbuffer, calibration_inputs))
        result = model.quantize(calibration, enable_progress_report=False)
    except ConfigError:
        raise
    except Exception as err:  # the quantizer raises ValueError, RuntimeError and its own types
        raise ConversionError(f"quantize[{config.mode.value}]: AI Edge Quantizer failed: {err}") from err
    return bytes(result.quantized_model)


def configure_ai_edge_quantizer(converter, config: QuantizationConfig, calibration_inputs=None):
    """Converts to float, quantizes with AI Edge Quantizer and makes the converter's `convert()` return the result,
    so convert_and_validate checks the .tflite against the Keras model like any other conversion. The work runs
    here, before convert_and_validate's conversion try-block, so an unmatched int8 layer stays a ConfigError."""
    try:
        float_flatbuffer = converter.convert()
    except Exception as err:  # the converter raises a zoo of types
        raise ConversionError(f"quantize[{config.mode.value}]: float TFLite conversion failed: {err}") from err
    quantized = quantize_with_ai_edge_quantizer(float_flatbuffer, config, calibration_inputs)
    converter.convert = lambda: quantized
