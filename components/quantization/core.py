"""Post-training quantization: the TFLite converter's dynamic-range, full-integer, float16 and 16x8 modes."""

import os

import numpy as np

from edgeopt.components._shared.data import TrainingData
from edgeopt.components._shared.errors import ConfigError
from edgeopt.components._shared.keras_bootstrap import tf
from edgeopt.components._shared.model_source import KerasSource, open_conversion_source
from edgeopt.components._shared.streaming import Inputs, count
from edgeopt.components.export.core import ConversionResult, convert_and_validate
from edgeopt.components.quantization.config import (
    AEQ_MODES,
    Granularity,
    QuantizationConfig,
    QuantizationMode,
)


def pick_calibration_examples(data: TrainingData, size: int, seed: int) -> Inputs:
    """A seeded uniform sample of the streamed training split (see `TrainingData.sample`), used when no
    calibration artifact is given."""
    return data.sample(data.train_split, size, seed)


def representative_examples(calibration_inputs: Inputs):
    """One example at a time, as the converter's representative_dataset wants it: a one-element list for a
    single-input model; for several inputs a dict keyed by input name, which TF 2.21 matches to the serving
    signature by name (a list would have to follow the converted model's tensor order, not the Keras order)."""
    if isinstance(calibration_inputs, dict):
        for index in range(count(calibration_inputs)):
            yield {name: array[index : index + 1].astype(np.float32) for name, array in calibration_inputs.items()}
    else:
        for example in calibration_inputs:
            yield [example[np.newaxis].astype(np.float32)]


def configure_converter(converter, config: QuantizationConfig, calibration_inputs: Inputs | None):
    """Sets the converter's options for one quantization mode."""
    if config.mode in AEQ_MODES:
        from edgeopt.components.quantization.int4 import configure_ai_edge_quantizer

        return configure_ai_edge_quantizer(converter, config, calibration_inputs)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if calibration_inputs is not None:
        converter.representative_dataset = lambda: representative_examples(calibration_inputs)
    # The converter's only switches for these (TF 2.21); read by every int8-weight mode.
    if config.conv_granularity == Granularity.PER_TENSOR:
        converter._experimental_disable_per_channel = True
    elif config.dense_granularity == Granularity.PER_TENSOR:
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    mode = config.mode
    if mode == QuantizationMode.FLOAT16:
        converter.target_spec.supported_types = [tf.float16]
    elif mode in (QuantizationMode.FULL_INTEGER, QuantizationMode.FULL_INTEGER_INT8_IO):
        # Integer-only ops: conversion fails loudly instead of silently keeping float fallbacks.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if mode == QuantizationMode.FULL_INTEGER_INT8_IO:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    elif mode == QuantizationMode.INT16X8:
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]


def _quantize_selectively(keras_model, config: QuantizationConfig, output_dir, calibration_inputs, eval_inputs):
    """float_layers/float_top_k (the converter's debugger) or int16x8_layers/int16x8_top_k (AI Edge Quantizer).
    Both rank the layers by the converter's own full-integer int8 error (float_top_k's mode is full_integer)."""
    from edgeopt.components.quantization.mixed16x8 import quantize_keeping_int16x8_layers
    from edgeopt.components.quantization.sensitivity import quantize_keeping_float_layers

    if config.keeps_float_layers:
        ranked_as, keep = config, quantize_keeping_float_layers
    else:
        ranked_as, keep = QuantizationConfig(mode=QuantizationMode.FULL_INTEGER), quantize_keeping_int16x8_layers
    return keep(
        keras_model,
        config,
        output_dir,
        configure=lambda converter: configure_converter(converter, ranked_as, calibration_inputs),
        calibration_inputs=calibration_inputs,
        validation_inputs=eval_inputs,
    )


def quantize(
    model_path: str | os.PathLike,
    config: QuantizationConfig,
    output_dir: str | os.PathLike,
    *,
    data: TrainingData,
    calibration_inputs: Inputs | None = None,
    allow_unsafe: bool = False,
) -> ConversionResult:
    """Converts a Keras model (float, pruned, clustered or quantization-aware trained) to a quantized .tflite.

    Args:
      model_path: SavedModel folder (tf-keras, Keras 3 export or any with a serving signature) or .keras file
        (tf-keras or Keras 3); never modified.
      config: the quantization mode and validation tolerance.
      output_dir: receives model.tflite, edgeopt_config.json and validation.json, atomically.
      data: evaluation inputs for validation and, without `calibration_inputs`, the calibration examples.
      calibration_inputs: the representative dataset (e.g. from the calibration sampler) for calibrated modes.
      allow_unsafe: accept .h5 files and Lambda layers.

    Raises:
      ConversionError: conversion failed or the result disagrees with the Keras model past the tolerance.

    Example:
      >>> quantize("model/", QuantizationConfig(mode="full_integer"), "int8/", data=data).tflite_bytes
    """
    with open_conversion_source(model_path, allow_unsafe=allow_unsafe) as source:
        if config.needs_calibration and calibration_inputs is None:
            calibration_inputs = pick_calibration_examples(data, config.calibration_examples, config.calibration_seed)
        if calibration_inputs is not None:
            calibration_inputs = source.adapt_inputs(calibration_inputs)
        eval_inputs, _ = data.take(data.eval_split, config.validation.num_examples)
        if config.keeps_float_layers or config.keeps_int16x8_layers:
            if not isinstance(source, KerasSource):
                fields = "float_layers/float_top_k" if config.keeps_float_layers else "int16x8_layers/int16x8_top_k"
                raise ConfigError(
                    f"{fields} need a tf-keras model, {model_path} converts from its "
                    "SavedModel signature; drop them, or save the model with tf-keras"
                )
            return _quantize_selectively(source.model, config, output_dir, calibration_inputs, eval_inputs)
        return convert_and_validate(
            source,
            output_dir,
            configure_converter=lambda converter: configure_converter(
                converter, config, calibration_inputs if config.needs_calibration else None
            ),
            validation=config.validation,
            validation_inputs=eval_inputs,
            config_json=config.to_json(),
            step=f"quantize[{config.mode.value}]",
        )
