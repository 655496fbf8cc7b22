"""What a TFLite conversion starts from: a tf-keras model, or a SavedModel's serving signature for the models tf-keras
cannot rebuild (Keras 3 files and exports, plain tf.Module SavedModels, subclassed models).

Either way the converted model is validated against the source's own outputs on the same inputs.
"""

import atexit
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt.components._shared.errors import ConversionError, ModelLoadError
from edgeopt.components._shared.keras_bootstrap import tf
from edgeopt.components._shared.model_format import ModelFormat, check_model_file

logger = logging.getLogger(__name__)

SERVING_SIGNATURE = "serving_default"
#: Seconds a Keras 3 export subprocess may take (importing TensorFlow and Keras 3 takes ~10 s on 2 CPU cores).
KERAS3_EXPORT_TIMEOUT_S = 600

# Runs in a fresh interpreter without TF_USE_LEGACY_KERAS, so `import keras` is Keras 3. safe_mode stays on
# unless the caller opted in: the config was already checked for Lambda layers and unknown classes.
_KERAS3_EXPORT_SCRIPT = """
import sys
import keras
model = keras.saving.load_model(sys.argv[1], compile=False, safe_mode=sys.argv[3] == "safe")
model.export(sys.argv[2])
"""


@dataclass
class KerasSource:
    """A tf-keras model in memory: converted with from_keras_model, validated by calling it."""

    model: object
    description: str = "Keras model"

    def converter(self):
        return tf.lite.TFLiteConverter.from_keras_model(self.model)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(inputs, training=False), dtype=np.float32)


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

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        outputs = self._function(**{self._input_name: tf.constant(inputs, dtype=self._input_spec.dtype)})
        if isinstance(outputs, dict):
            (outputs,) = outputs.values()
        return np.asarray(outputs, dtype=np.float32)


def export_keras3_saved_model(keras_file: Path, output_dir: Path, *, allow_unsafe: bool = False):
    """Exports a Keras 3 `.keras` file as a SavedModel (model.export) in a subprocess that imports Keras 3.

    This process runs tf-keras (TF_USE_LEGACY_KERAS=1, for tfmot); Keras 3 cannot load in it.
    """
    env = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    mode = "unsafe" if allow_unsafe else "safe"
    command = [sys.executable, "-c", _KERAS3_EXPORT_SCRIPT, str(keras_file), str(output_dir), mode]
    try:
        completed = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=KERAS3_EXPORT_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise ConversionError(f"exporting the Keras 3 model {keras_file} took over {err.timeout} s") from err
    if completed.returncode != 0:
        last_lines = "\n".join(completed.stderr.strip().splitlines()[-5:])
        raise ModelLoadError(
            f"Keras 3 could not load and export {keras_file} (exit {completed.returncode}): {last_lines}; "
            "check that it loads with keras.saving.load_model, or export it yourself with model.export(DIR) and "
            "pass DIR"
        )
    logger.info("exported the Keras 3 model %s as a SavedModel in %s", keras_file, output_dir)


_KERAS3_EXPORTS: dict[tuple, Path] = {}


def _keras3_export_cached(keras_file: Path, allow_unsafe: bool) -> Path:
    """One export per Keras 3 file (and version of it) per process: a job converts it once per PTQ recipe, and each
    export starts a Keras 3 interpreter. The exports live in one temporary folder removed at exit."""
    stat = keras_file.stat()
    key = (str(keras_file.resolve()), stat.st_size, stat.st_mtime_ns, allow_unsafe)
    if key not in _KERAS3_EXPORTS or not _KERAS3_EXPORTS[key].exists():
        folder = Path(tempfile.mkdtemp(prefix="edgeopt-keras3-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        export_keras3_saved_model(keras_file, folder / "saved_model", allow_unsafe=allow_unsafe)
        _KERAS3_EXPORTS[key] = folder / "saved_model"
    return _KERAS3_EXPORTS[key]


@contextlib.contextmanager
def open_conversion_source(model_path: str | os.PathLike, *, allow_unsafe: bool = False):
    """Yields a KerasSource or SavedModelSource for the model at `model_path`, checked before anything loads.

    Raises:
      UnsafeModelError, ModelLoadError: as model_format.check_model_file and model_io.load_keras_model.
    """
    from edgeopt.components._shared.model_io import load_keras_model

    inspection = check_model_file(model_path, allow_unsafe=allow_unsafe)
    if inspection.format == ModelFormat.KERAS3_FILE:
        exported = _keras3_export_cached(inspection.path, allow_unsafe)
        yield SavedModelSource(exported, description=f"Keras 3 model {inspection.path.name} (exported)")
        return
    if inspection.format == ModelFormat.PLAIN_SAVED_MODEL or inspection.is_subclassed:
        # No Keras deserialization at all: the serving signature is a graph.
        yield SavedModelSource(inspection.path)
        return
    yield KerasSource(load_keras_model(inspection.path, allow_unsafe=allow_unsafe))
