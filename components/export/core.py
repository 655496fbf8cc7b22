"""Convert a Keras model to .tflite and check the result against the Keras model on the same inputs."""

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgeopt.components._shared.atomic import atomic_output_dir
from edgeopt.components._shared.data import TrainingData
from edgeopt.components._shared.errors import ConversionError
from edgeopt.components._shared.model_source import KerasSource, SavedModelSource, open_conversion_source
from edgeopt.components._shared.streaming import Inputs, count, select
from edgeopt.components._shared.tflite_runtime import TfliteRunner
from edgeopt.components.export.config import ExportConfig, ValidationConfig

TFLITE_FILE = "model.tflite"
CONFIG_FILE = "edgeopt_config.json"
VALIDATION_FILE = "validation.json"


@dataclass(frozen=True)
class ConversionResult:
    """A converted model and how closely it matches the Keras model it came from."""

    tflite_path: str
    tflite_bytes: int
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    num_validation_examples: int

    def to_dict(self) -> dict:
        return asdict(self)


def compare_outputs(source, tflite_path: str | os.PathLike, inputs: Inputs) -> dict:
    """Runs both models on `inputs`; returns max and mean absolute difference over every output and the top-1
    agreement of the output that agrees least (outputs of one column, e.g. regression, agree trivially).

    `source`: a Keras model, or a model_source.KerasSource / SavedModelSource (a SavedModel's own signature).
    """
    expected = _as_source(source).predict_all(inputs)
    actual = TfliteRunner(tflite_path).predict_all(inputs)
    if len(expected) == 1 and len(actual) == 1:
        pairs = [(next(iter(expected.values())), next(iter(actual.values())))]
    elif sorted(expected) == sorted(actual):
        pairs = [(expected[name], actual[name]) for name in expected]
    else:
        raise ConversionError(f"TFLite outputs {sorted(actual)} differ from the Keras model's {sorted(expected)}")
    for keras_output, tflite_output in pairs:
        if keras_output.shape != tflite_output.shape:
            raise ConversionError(
                f"TFLite output shape {tflite_output.shape} differs from Keras output shape {keras_output.shape}"
            )
    diffs = [np.abs(keras_output - tflite_output) for keras_output, tflite_output in pairs]
    agreements = [float(np.mean(e.argmax(-1) == a.argmax(-1))) for e, a in pairs if e.ndim > 1 and e.shape[-1] > 1]
    return {
        "max_abs_diff": float(max(diff.max() for diff in diffs)),
        "mean_abs_diff": float(np.mean(np.concatenate([diff.reshape(-1) for diff in diffs]))),
        "top1_agreement": min(agreements, default=1.0),
    }


def _as_source(model):
    return model if isinstance(model, KerasSource | SavedModelSource) else KerasSource(model)


def convert_and_validate(
    keras_model,
    output_dir: str | os.PathLike,
    *,
    configure_converter: Callable,
    validation: ValidationConfig,
    validation_inputs: Inputs,
    config_json: str,
    step: str,
) -> ConversionResult:
    """Template of every conversion: convert -> write -> validate, all inside a staging folder.

    The output folder appears only when conversion and validation both succeed; it holds the .tflite, the config
    that made it and the validation numbers. `keras_model` may also be a model_source.SavedModelSource: the
    SavedModel's signature is converted and is the reference outputs.

    Raises:
      ConversionError: the converter failed, or the result disagrees with Keras past the tolerance.
    """
    source = _as_source(keras_model)
    converter = source.converter()
    configure_converter(converter)
    try:
        flatbuffer = converter.convert()
    except Exception as err:  # the converter raises a zoo of types (ConverterError, ValueError, RuntimeError)
        raise ConversionError(f"{step}: TFLite conversion failed: {err}") from err
    inputs = select(validation_inputs, slice(0, validation.num_examples))
    with atomic_output_dir(output_dir) as staging:
        tflite_path = staging / TFLITE_FILE
        tflite_path.write_bytes(flatbuffer)
        try:
            metrics = compare_outputs(source, tflite_path, inputs)
        except ConversionError:
            raise
        except Exception as err:
            raise ConversionError(f"{step}: the converted model does not run: {err}") from err
        problems = []
        if metrics["top1_agreement"] < validation.min_top1_agreement:
            problems.append(
                f"top-1 agreement {metrics['top1_agreement']:.3f} < min_top1_agreement {validation.min_top1_agreement}"
            )
        if validation.max_abs_diff is not None and metrics["max_abs_diff"] > validation.max_abs_diff:
            problems.append(f"max_abs_diff {metrics['max_abs_diff']:.3g} > {validation.max_abs_diff}")
        if problems:
            raise ConversionError(
                f"{step}: the .tflite disagrees with the Keras model on {count(inputs)} examples: "
                + "; ".join(problems)
                + " (calibrate with more representative data, or relax validation in the config)"
            )
        (staging / CONFIG_FILE).write_text(config_json)
        (staging / VALIDATION_FILE).write_text(json.dumps(metrics, indent=2))
    final = Path(output_dir) / TFLITE_FILE
    return ConversionResult(
        tflite_path=str(final),
        tflite_bytes=final.stat().st_size,
        num_validation_examples=count(inputs),
        **metrics,
    )


def export_tflite(
    model_path: str | os.PathLike,
    config: ExportConfig,
    output_dir: str | os.PathLike,
    *,
    data: TrainingData,
    allow_unsafe: bool = False,
) -> ConversionResult:
    """Exports a model as a float32 .tflite, checked against the model's own outputs on evaluation examples.

    Takes tf-keras models, Keras 3 `.keras` files and any SavedModel with a serving signature (model_source.py).

    Example:
      >>> export_tflite("pruned/", ExportConfig(), "exported/", data=data).tflite_path
      'exported/model.tflite'
    """
    with open_conversion_source(model_path, allow_unsafe=allow_unsafe) as source:
        eval_inputs, _ = data.take(data.eval_split, config.validation.num_examples)
        return convert_and_validate(
            source,
            output_dir,
            configure_converter=lambda converter: None,
            validation=config.validation,
            validation_inputs=eval_inputs,
            config_json=config.to_json(),
            step="export",
        )
