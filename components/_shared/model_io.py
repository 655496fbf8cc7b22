"""Load and save Keras models through tf-keras, refusing formats that execute code unless the caller opts in."""

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

from edgeopt.components._shared.atomic import atomic_output_dir
from edgeopt.components._shared.errors import ModelLoadError, UnsafeModelError
from edgeopt.components._shared.keras_bootstrap import keras
from edgeopt.components._shared.model_format import ModelFormat, check_model_safe, inspect_model

SAVED_MODEL_FILE = "saved_model.pb"
KERAS_SUFFIX = ".keras"


def resolve_model_path(path: str | os.PathLike) -> Path:
    """Finds the model inside `path`: a SavedModel folder, a `.keras` file, or a folder holding exactly one of them.

    TFX Trainer outputs put the SavedModel under `Format-Serving/`; that layout is accepted as is.
    """
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model path {path} does not exist; pass a SavedModel folder or a .keras file")
    if path.is_file():
        return path
    if (path / SAVED_MODEL_FILE).exists():
        return path
    if (path / "Format-Serving" / SAVED_MODEL_FILE).exists():
        return path / "Format-Serving"
    candidates = sorted(path.glob(f"*{KERAS_SUFFIX}")) + sorted(p.parent for p in path.glob(f"*/{SAVED_MODEL_FILE}"))
    if len(candidates) == 1:
        return candidates[0]
    raise ModelLoadError(
        f"{path} holds no single Keras model (found {len(candidates)}); "
        "pass the SavedModel folder or .keras file itself"
    )


@contextlib.contextmanager
def _keras_named(inspection):
    """The model's path, or for a .keras archive under another suffix (renamed .h5) a link named .keras: tf-keras
    picks its reader from the suffix, and the bytes, not the name, say what the file is."""
    path = inspection.path
    keras_file = inspection.format in (ModelFormat.TF_KERAS_FILE, ModelFormat.KERAS3_FILE)
    if not keras_file or path.suffix == KERAS_SUFFIX:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="edgeopt-keras-") as folder:
        link = Path(folder) / f"{path.stem}{KERAS_SUFFIX}"
        link.symlink_to(path.resolve())
        yield link


def _optimization_scope():
    """Custom-object scopes under which models wrapped by tfmot (pruned, clustered, quantized) load."""
    from edgeopt.components._shared.keras_bootstrap import tfmot

    stack = contextlib.ExitStack()
    stack.enter_context(tfmot.quantization.keras.quantize_scope())
    stack.enter_context(tfmot.sparsity.keras.prune_scope())
    stack.enter_context(tfmot.clustering.keras.cluster_scope())
    return stack


def load_keras_model(path: str | os.PathLike, *, allow_unsafe: bool = False, compile: bool = False):
    """Loads a fresh copy of a Keras model from disk.

    Every technique starts from its own fresh load: tfmot wrappers share layer objects with the model they wrap,
    so reusing one in-memory model across techniques corrupts it.

    Args:
      path: a SavedModel folder, a `.keras` file, or a folder holding one of them.
      allow_unsafe: accept HDF5 files, Lambda layers and (in .keras files) classes that are not built-in, all of
        which run code stored in or named by the file.
      compile: restore the training config as saved.

    The format comes from the bytes and the config is checked as JSON before Keras deserializes anything
    (model_format.inspect_model).

    Raises:
      UnsafeModelError: HDF5, Lambda layers or unknown classes without `allow_unsafe`.
      ModelLoadError: nothing loadable at `path` (empty, HTML, damaged, a plain SavedModel, a Keras 3 model that
        cannot be rebuilt in tf-keras, ...).
    """
    inspection = inspect_model(path)
    check_model_safe(inspection, allow_unsafe=allow_unsafe)
    model_path = inspection.path
    if inspection.format == ModelFormat.KERAS3_FILE:
        from edgeopt.components._shared.keras3_bridge import rebuild_in_tf_keras

        return rebuild_in_tf_keras(inspection, allow_unsafe=allow_unsafe)
    if inspection.format == ModelFormat.PLAIN_SAVED_MODEL:
        raise ModelLoadError(
            f"{model_path} is a SavedModel without Keras metadata (a Keras 3 export or a tf.Module); post-training "
            "recipes (export, ptq_*) convert it from its serving signature, training recipes need a tf-keras model"
        )
    try:
        with _optimization_scope(), _keras_named(inspection) as load_path:
            if inspection.format == ModelFormat.TF_KERAS_FILE:
                model = keras.models.load_model(load_path, compile=compile, safe_mode=not allow_unsafe)
            else:
                model = keras.models.load_model(load_path, compile=compile)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise ModelLoadError(f"could not load a Keras model from {model_path}: {err}") from err
    if not isinstance(model, keras.Model):
        raise ModelLoadError(f"{model_path} loaded as {type(model).__name__}, not a Keras model; save it with tf_keras")
    if not allow_unsafe and any(isinstance(layer, keras.layers.Lambda) for layer in _all_layers(model)):
        raise UnsafeModelError(f"{model_path} contains a Lambda layer; opt in with allow_unsafe=True if you trust it")
    return model


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


#: Packages whose layers Keras rebuilds from their config alone (tfmot's under the scopes load_keras_model opens).
_CONFIG_REBUILDABLE_PACKAGES = ("tf_keras.", "tensorflow_model_optimization.")


def _rebuildable_from_config(model) -> bool:
    for layer in _all_layers(model):
        for part in (layer, getattr(layer, "layer", None)):  # tfmot wrappers hold the wrapped layer
            if part is None:
                continue
            if isinstance(part, keras.layers.Lambda) or not type(part).__module__.startswith(
                _CONFIG_REBUILDABLE_PACKAGES
            ):
                return False
    return True


def _save(model, folder: Path):
    # Traced functions only serve to revive classes Keras cannot rebuild from config; tracing a tfmot-wrapped model
    # costs more than its fine-tuning on small data (QAT digits CNN: 0.87 s to save with traces, 0.17 s without).
    model.save(str(folder), include_optimizer=False, save_traces=not _rebuildable_from_config(model))


def save_keras_model(model, output_dir: str | os.PathLike) -> Path:
    """Saves `model` as a SavedModel folder, published atomically; returns the folder."""
    output_dir = Path(output_dir)
    with atomic_output_dir(output_dir) as staging:
        _save(model, staging)
    return output_dir


def model_digest(path: str | os.PathLike) -> str:
    """sha256 over a model file, or over a folder's files and relative names, to prove a model was not modified."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(json.dumps(str(file.relative_to(path)) if file != path else file.name).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


STEP_RECORD_FILE = "edgeopt_step.json"


def save_step_model(model, output_dir: str | os.PathLike, *, technique: str, config, result: dict) -> Path:
    """Saves a technique's output model with the config and result that made it, atomically.

    The record sits inside the SavedModel folder, so any model can be traced back without the orchestrator.
    """
    output_dir = Path(output_dir)
    with atomic_output_dir(output_dir) as staging:
        _save(model, staging)
        record = {"technique": technique, "config": config.to_dict(), "result": result}
        (staging / STEP_RECORD_FILE).write_text(json.dumps(record, indent=2, default=str))
    return output_dir
