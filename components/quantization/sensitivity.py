"""Per-layer quantization sensitivity with TFLite's QuantizationDebugger, and selective quantization that keeps the
most sensitive layers in float.

A layer's sensitivity is the RMSE between its int8 output and the float output of the same op (fed the same
quantized input), divided by the output's quantization scale: about 0.29 (1/sqrt(12)) is pure rounding error; a
layer far above it loses information to int8 and is the first to keep in float.
"""

import csv
import io
import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from edgeopt.components._shared.atomic import atomic_output_file
from edgeopt.components._shared.errors import ConfigError, ConversionError
from edgeopt.components._shared.keras_bootstrap import tf

logger = logging.getLogger(__name__)

SENSITIVITY_JSON = "layer_sensitivity.json"
SENSITIVITY_PNG = "layer_sensitivity.png"
#: The rounding error of a uniform quantizer in units of its scale: the floor every well-quantized layer sits at.
ROUNDING_FLOOR = 1 / math.sqrt(12)
DEBUG_EXAMPLES = 64


def _debug_dataset(inputs: np.ndarray):
    def generate():
        for example in inputs[:DEBUG_EXAMPLES]:
            yield [example[np.newaxis].astype(np.float32)]

    return generate


def _debugger(keras_model, configure, inputs: np.ndarray, denylisted_nodes: list[str] | None = None):
    """A QuantizationDebugger on a fresh converter of `keras_model` set up by `configure(converter)`."""
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    configure(converter)
    # Layers kept in float need float kernels beside the int8 ones.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denylisted_nodes or None)
    return tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=_debug_dataset(inputs), debug_options=options
    )


def layer_of_tensor(tensor_name: str, layer_names: list[str]) -> str | None:
    """The Keras layer an op's output tensor belongs to: TFLite names fused ops `model/layer/Op;model/layer/Op2`."""
    parts = {part for piece in tensor_name.split(";") for part in piece.split("/")}
    matches = [name for name in layer_names if name in parts]
    return max(matches, key=len) if matches else None


def op_layers(keras_model, layer_names: list[str], flatbuffer: bytes | None = None) -> dict[str, str]:
    """Output tensor name -> Keras layer for every op of the model's float .tflite (`flatbuffer`, or converted here).

    Most ops' outputs carry their layer's name, but the model's last op is named after the signature
    (`StatefulPartitionedCall:0`); its weights (inputs after the first, the activation) still carry the layer's name.
    """
    from ai_edge_litert.interpreter import Interpreter

    if flatbuffer is None:
        flatbuffer = tf.lite.TFLiteConverter.from_keras_model(keras_model).convert()
    interpreter = Interpreter(model_content=flatbuffer)
    names = {detail["index"]: detail["name"] for detail in interpreter.get_tensor_details()}
    layers = {}
    # No public API lists ops; _get_ops_details is what LiteRT's own analyzer uses.
    for op in interpreter._get_ops_details():
        inputs = [names[i] for i in op["inputs"] if i in names]
        outputs = [names[i] for i in op["outputs"] if i in names]
        candidates = [layer_of_tensor(name, layer_names) for name in [*outputs, *inputs[1:], *inputs[:1]]]
        layer = next((found for found in candidates if found), None)
        if layer:
            layers.update({name: layer for name in outputs})
    return layers


def rank_layers(keras_model, configure, inputs: np.ndarray) -> list[dict]:
    """Runs the debugger on `inputs` and ranks Keras layers by their worst op's RMSE/scale, most sensitive first.

    Args:
      keras_model: the float model (not modified).
      configure: sets the converter up for the quantization being examined (e.g. full integer, per-tensor Dense).
      inputs: calibration and debug examples (the first 64 are replayed through both models).

    Returns:
      One dict per quantized layer: layer, rmse_over_scale, mean_squared_error, max_abs_error, scale, tensors.
    """
    try:
        debugger = _debugger(keras_model, configure, inputs)
        debugger.run()
        dump = io.StringIO()
        debugger.layer_statistics_dump(dump)
    except Exception as err:  # the debugger raises converter errors of many types
        raise ConversionError(f"layer sensitivity: the quantization debugger failed: {err}") from err
    layer_names = [layer.name for layer in keras_model.layers]
    layers_by_output = op_layers(keras_model, layer_names)
    by_layer: dict[str, dict] = {}
    for row in csv.DictReader(io.StringIO(dump.getvalue())):
        scale = float(row["scale"] or "nan")
        mse = float(row["mean_squared_error"])
        layer = layers_by_output.get(row["tensor_name"]) or layer_of_tensor(row["tensor_name"], layer_names)
        if layer is None or not scale > 0:
            continue
        entry = by_layer.setdefault(layer, {"layer": layer, "rmse_over_scale": -1.0, "tensors": [], "op_names": []})
        entry["tensors"].append(row["tensor_name"])
        entry["op_names"].append(row["op_name"])
        ratio = math.sqrt(mse) / scale
        if ratio > entry["rmse_over_scale"]:
            entry.update(
                rmse_over_scale=ratio,
                mean_squared_error=mse,
                max_abs_error=float(row["max_abs_error"]),
                scale=scale,
            )
    return sorted(by_layer.values(), key=lambda entry: -entry["rmse_over_scale"])


def float_layer_nodes(
    ranking: list[dict], float_layers: list[str], float_top_k: int, field: str = "float_layers"
) -> tuple[list[str], list[str]]:
    """The layers to keep (named ones, then the top k of the ranking not named) and their TFLite nodes; `field` names
    the config field in the error for an unknown name."""
    known = {entry["layer"]: entry for entry in ranking}
    unknown = [name for name in float_layers if name not in known]
    if unknown:
        raise ConfigError(f"{field} {unknown} name no quantized layer of this model; choose from {sorted(known)}")
    chosen = list(float_layers)
    chosen += [entry["layer"] for entry in ranking if entry["layer"] not in chosen][:float_top_k]
    nodes = [tensor for name in chosen for tensor in known[name]["tensors"]]
    return chosen, nodes


def selective_quantize(keras_model, configure, inputs: np.ndarray, float_layers: list[str], float_top_k: int):
    """Quantizes like `configure` but keeps `float_layers` and the `float_top_k` most sensitive layers in float.

    Returns (flatbuffer bytes, the sensitivity ranking, the layers kept in float).
    """
    ranking = rank_layers(keras_model, configure, inputs)
    chosen, nodes = float_layer_nodes(ranking, float_layers, float_top_k)
    logger.info("keeping %s in float (%d TFLite nodes)", chosen, len(nodes))
    try:
        flatbuffer = _debugger(keras_model, configure, inputs, denylisted_nodes=nodes).get_nondebug_quantized_model()
    except Exception as err:
        raise ConversionError(f"selective quantization keeping {chosen} in float failed: {err}") from err
    return flatbuffer, ranking, chosen


def write_sensitivity(
    ranking: list[dict],
    output_dir: str | os.PathLike,
    float_layers: list[str] = (),
    int16x8_layers: list[str] = (),
    int16x8_gains: list[dict] = (),
) -> Path:
    """Writes layer_sensitivity.json (the ranking, the layers kept in float or 16x8, and with int16x8_top_k what
    16x8 gained per layer) and layer_sensitivity.png (a bar per layer) into `output_dir`."""
    output_dir = Path(output_dir)
    document = {"metric": "rmse_over_scale", "rounding_floor": ROUNDING_FLOOR, "float_layers": list(float_layers),
                "int16x8_layers": list(int16x8_layers), "int16x8_gains": list(int16x8_gains),
                "layers": ranking}  # fmt: skip
    with atomic_output_file(output_dir / SENSITIVITY_JSON) as staging:
        staging.write_text(json.dumps(document, indent=2))
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 0.35 * len(ranking) + 1.2), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    names = [entry["layer"] for entry in ranking][::-1]
    values = [entry["rmse_over_scale"] for entry in ranking][::-1]
    kept = {**{name: "tab:orange" for name in float_layers}, **{name: "tab:green" for name in int16x8_layers}}
    colors = [kept.get(name, "tab:blue") for name in names]
    ax.barh(names, values, color=colors)
    ax.axvline(ROUNDING_FLOOR, color="0.5", linestyle="--", label="rounding floor (1/sqrt 12)")
    ax.set_xlabel("int8 output RMSE / output scale (orange: kept in float, green: 16x8)")
    ax.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    with atomic_output_file(output_dir / SENSITIVITY_PNG) as staging:
        figure.savefig(staging, format="png")
    return output_dir / SENSITIVITY_JSON


def quantize_keeping_float_layers(
    keras_model, config, output_dir, *, configure, calibration_inputs: np.ndarray, validation_inputs: np.ndarray
):
    """`quantize()` for a config with float_layers/float_top_k: the same conversion template and validation, with
    the debugger's selective model as the converter's output; layer_sensitivity.json and .png land beside the
    .tflite."""
    kept: dict = {}

    def configure_selective(converter):
        # Runs before convert_and_validate's conversion try-block, so an unknown layer name stays a ConfigError.
        configure(converter)
        flatbuffer, kept["ranking"], kept["float_layers"] = selective_quantize(
            keras_model, configure, calibration_inputs, config.float_layers, config.float_top_k
        )
        converter.convert = lambda: flatbuffer  # the debugger converted with converters of its own

    return convert_selective(
        keras_model, config, output_dir, configure=configure_selective, validation_inputs=validation_inputs,
        kept=kept, kept_as="float layers",
    )  # fmt: skip


def convert_selective(keras_model, config, output_dir, *, configure, validation_inputs, kept: dict, kept_as: str):
    """The tail every selective quantization shares: convert through `configure` (which ranks the layers, fills
    `kept` with write_sensitivity's arguments and hands the converter the selective flatbuffer), validate the
    result against the Keras model, and write layer_sensitivity.json/.png beside the .tflite."""
    from edgeopt.components.export.core import convert_and_validate

    result = convert_and_validate(
        keras_model,
        output_dir,
        configure_converter=configure,
        validation=config.validation,
        validation_inputs=validation_inputs,
        config_json=config.to_json(),
        step=f"quantize[{config.mode.value}, {kept_as}]",
    )
    write_sensitivity(output_dir=output_dir, **kept)
    return result
