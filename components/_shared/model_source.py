"""What a TFLite conversion starts from: a tf-keras model, or a SavedModel's serving signature for the models tf-keras
cannot rebuild (Keras 3 files and exports, plain tf.Module SavedModels, subclassed models).

Either way the converted model is validated against the source's own outputs on the same inputs.
"""

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt.components._shared.data import keras_inputs
from edgeopt.components._shared.errors import ModelLoadError
from edgeopt.components._shared.keras3_bridge import SAVED_MODEL_DIR, keras3_artifacts
from edgeopt.components._shared.keras_bootstrap import tf
from edgeopt.components._shared.model_format import ModelFormat, check_model_file
from edgeopt.components._shared.streaming import Inputs

logger = logging.getLogger(__name__)

SERVING_SIGNATURE = "serving_default"


@dataclass
class KerasSource:
    """A tf-keras model in memory: converted with from_keras_model, validated by calling it."""

    model: object
    description: str = "Keras model"

    def converter(self):
        return tf.lite.TFLiteConverter.from_keras_model(self.model)

    def adapt_inputs(self, inputs: Inputs) -> Inputs:
        """What the model's call takes: a dict narrowed to its input names, or a single-input model's array."""
        return keras_inputs(self.model, inputs)

    def predict_all(self, inputs: Inputs) -> dict[str, np.ndarray]:
        """Every output of the model, keyed by output name (the names the converted signature uses)."""
        outputs = self.model(self.adapt_inputs(inputs), training=False)
        if isinstance(outputs, dict):
            return {str(name): np.asarray(value, dtype=np.float32) for name, value in outputs.items()}
        if not isinstance(outputs, list | tuple):
            outputs = [outputs]
        return {
            name: np.asarray(value, dtype=np.float32)
            for name, value in zip(self.model.output_names, outputs, strict=True)
        }

    def predict(self, inputs: Inputs) -> np.ndarray:
        (output,) = self.predict_all(inputs).values()
        return output


@dataclass
class SavedModelSource:
    """A SavedModel's serving signature: converted with from_saved_model, validated by calling the signature."""

    saved_model_dir: Path
    signature_key: str = SERVING_SIGNATURE
    description: str = "SavedModel signature"

    def __post_init__(self):
        try:
            loaded = tf.saved_model.load(str(self.saved_model_dir))
        except Exception as err:  # TF raises OSError, ValueError or its own errors for a damaged SavedModel
            raise ModelLoadError(f"could not load the SavedModel {self.saved_model_dir}: {err}") from err
        signatures = dict(loaded.signatures)
        if self.signature_key not in signatures:
            raise ModelLoadError(
                f"{self.saved_model_dir} has no '{self.signature_key}' signature (found {sorted(signatures)}); "
                "save it with signatures={'serving_default': your_tf_function.get_concrete_function(spec)}"
            )
        self._loaded = loaded  # keeps the signature's variables alive
        self._function = signatures[self.signature_key]
        _, kwargs = self._function.structured_input_signature
        if len(kwargs) != 1:
            raise ModelLoadError(
                f"{self.saved_model_dir}: signature '{self.signature_key}' takes {len(kwargs)} inputs "
                f"{sorted(kwargs)}; edgeopt converts single-input models"
            )
        ((self._input_name, self._input_spec),) = kwargs.items()
        outputs = self._function.structured_outputs
        if isinstance(outputs, dict) and len(outputs) != 1:
            raise ModelLoadError(
                f"{self.saved_model_dir}: signature '{self.signature_key}' returns {len(outputs)} outputs "
                f"{sorted(outputs)}; edgeopt converts single-output models"
            )

    def converter(self):
        return tf.lite.TFLiteConverter.from_saved_model(str(self.saved_model_dir), signature_keys=[self.signature_key])

    def adapt_inputs(self, inputs: Inputs) -> Inputs:
        """The signature's one input: the array itself, or the dict entry of that name (or the dict's only one)."""
        if not isinstance(inputs, dict):
            return inputs
        if self._input_name in inputs:
            return inputs[self._input_name]
        if len(inputs) == 1:
            return next(iter(inputs.values()))
        raise ModelLoadError(
            f"{self.saved_model_dir}: signature '{self.signature_key}' takes one input '{self._input_name}', the data "
            f"gives {sorted(inputs)}; name the feature '{self._input_name}' in the data spec"
        )

    def predict_all(self, inputs: Inputs) -> dict[str, np.ndarray]:
        """The signature's output, keyed by its name (the name the converted .tflite signature uses)."""
        array = self.adapt_inputs(inputs)
        outputs = self._function(**{self._input_name: tf.constant(array, dtype=self._input_spec.dtype)})
        if not isinstance(outputs, dict):
            outputs = {"output_0": outputs}
        return {str(name): np.asarray(value, dtype=np.float32) for name, value in outputs.items()}

    def predict(self, inputs: Inputs) -> np.ndarray:
        (output,) = self.predict_all(inputs).values()
        return output


@contextlib.contextmanager
def open_conversion_source(model_path: str | os.PathLike, *, allow_unsafe: bool = False):
    """Yields a KerasSource or SavedModelSource for the model at `model_path`, checked before anything loads.

    Raises:
      UnsafeModelError, ModelLoadError: as model_format.check_model_file and model_io.load_keras_model.
    """
    from edgeopt.components._shared.model_io import load_keras_model

    inspection = check_model_file(model_path, allow_unsafe=allow_unsafe)
    if inspection.format == ModelFormat.KERAS3_FILE:
        exported = keras3_artifacts(inspection.path, allow_unsafe=allow_unsafe) / SAVED_MODEL_DIR
        yield SavedModelSource(exported, description=f"Keras 3 model {inspection.path.name} (exported)")
        return
    if inspection.format == ModelFormat.PLAIN_SAVED_MODEL or inspection.is_subclassed:
        # No Keras deserialization at all: the serving signature is a graph.
        yield SavedModelSource(inspection.path)
        return
    yield KerasSource(load_keras_model(inspection.path, allow_unsafe=allow_unsafe))
