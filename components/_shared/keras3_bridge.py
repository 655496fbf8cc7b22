"""Keras 3 `.keras` files in a tf-keras process: one Keras 3 subprocess per file exports a SavedModel (for the
post-training recipes) and dumps the weights and probe outputs; a Sequential or functional model of built-in layers
is then rebuilt in tf-keras from its config, with the weights copied and outputs checked equal, so tfmot can wrap it.

This process runs tf-keras (TF_USE_LEGACY_KERAS=1, which tfmot needs); Keras 3 cannot load in it.
"""

import atexit
import inspect
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from edgeopt.components._shared.errors import ConversionError, ModelLoadError

logger = logging.getLogger(__name__)

SAVED_MODEL_DIR = "saved_model"
WEIGHTS_FILE = "weights.npz"
PROBE_FILE = "probe.npz"
PROBE_EXAMPLES = 16
#: Largest |tf-keras - Keras 3| output difference accepted for a rebuilt model (same float32 kernels).
REBUILD_TOLERANCE = 1e-4
#: Seconds the Keras 3 subprocess may take (importing TensorFlow and Keras 3 takes ~10 s on 2 CPU cores).
KERAS3_TIMEOUT_S = 600
#: Keras 3 config keys tf-keras layers do not take (weights are copied, so initializers do not matter).
_DROPPED_KEYS = ("quantization_config", "optional", "synchronized", "lora_rank", "lora_alpha")

# Runs in a fresh interpreter without TF_USE_LEGACY_KERAS, so `import keras` is Keras 3. safe_mode stays on unless
# the caller opted in; the config was checked for Lambda layers and unknown classes before this starts.
_SCRIPT = """
import sys
import numpy as np
import keras
source, folder, mode = sys.argv[1:4]
model = keras.saving.load_model(source, compile=False, safe_mode=mode == "safe")
model.export(folder + "/saved_model")
weights = {f"{layer.name}::{i}": w for layer in model.layers for i, w in enumerate(layer.get_weights())}
np.savez(folder + "/weights.npz", **weights)
if len(model.inputs) == 1 and len(model.outputs) == 1:
    shape = [int(PROBE if d is None else d) for d in model.inputs[0].shape]
    probe = np.random.default_rng(0).standard_normal(shape).astype("float32")
    np.savez(folder + "/probe.npz", inputs=probe, outputs=np.asarray(model(probe, training=False)))
""".replace("PROBE", str(PROBE_EXAMPLES))

_CACHE: dict[tuple, Path] = {}


def keras3_artifacts(keras_file: Path, *, allow_unsafe: bool = False) -> Path:
    """A folder with the file's SavedModel export, its weights and probe outputs; made once per file per process
    (a job converts it once per recipe, and each run starts a Keras 3 interpreter), removed at exit."""
    stat = keras_file.stat()
    key = (str(keras_file.resolve()), stat.st_size, stat.st_mtime_ns, allow_unsafe)
    if key in _CACHE and (_CACHE[key] / SAVED_MODEL_DIR).exists():
        return _CACHE[key]
    folder = Path(tempfile.mkdtemp(prefix="edgeopt-keras3-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    env = {name: value for name, value in os.environ.items() if name != "TF_USE_LEGACY_KERAS"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    mode = "unsafe" if allow_unsafe else "safe"
    command = [sys.executable, "-c", _SCRIPT, str(keras_file), str(folder), mode]
    try:
        completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=KERAS3_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        raise ConversionError(f"exporting the Keras 3 model {keras_file} took over {err.timeout} s") from err
    if completed.returncode != 0:
        last_lines = "\n".join(completed.stderr.strip().splitlines()[-5:])
        raise ModelLoadError(
            f"Keras 3 could not load and export {keras_file} (exit {completed.returncode}): {last_lines}; check "
            "that it loads with keras.saving.load_model, or export it with model.export(DIR) and pass DIR"
        )
    logger.info("exported the Keras 3 model %s in %s", keras_file, folder)
    _CACHE[key] = folder
    return folder


def _config(keras_file: Path) -> dict:
    import json

    with zipfile.ZipFile(keras_file) as archive:
        return json.loads(archive.read("config.json"))


def rebuild_blockers(inspection) -> list[str]:
    """Why a Keras 3 model cannot be rebuilt in tf-keras (empty when it can), from the inspected config alone."""
    from edgeopt.components._shared.model_format import GRAPH_MODEL_CLASSES, known_class_names

    if inspection.root_class not in ("Sequential", "Functional"):
        return [f"it is a Keras 3 {inspection.root_class} model; only Sequential and functional ones are rebuilt"]
    layers = inspection.layers[1:]
    nested = [layer.path for layer in layers if layer.class_name in GRAPH_MODEL_CLASSES]
    unknown = sorted({layer.class_name for layer in layers} - known_class_names())
    reasons = []
    if nested:
        reasons.append(f"nested models {nested} are not rebuilt; build the model flat")
    if unknown:
        reasons.append(f"layers {unknown} have no tf-keras equivalent")
    return reasons


def _clean(value):
    """Keras 3 serialization -> what tf-keras' from_config takes: dtype policies to names, no module keys."""
    if isinstance(value, dict):
        if value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
            return value["config"]["name"]
        return {
            key: _clean(item)
            for key, item in value.items()
            if key not in ("module", "registered_name", "shared_object_id", "build_config")
        }
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


def _layer_from_config(keras, class_name: str, config: dict):
    layer_class = getattr(keras.layers, class_name)
    config = {
        key: _clean(item)
        for key, item in config.items()
        if key not in _DROPPED_KEYS and not key.endswith("_initializer")
    }
    parameters = inspect.signature(layer_class.__init__).parameters
    if not any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        config = {key: item for key, item in config.items() if key in parameters}
    return layer_class.from_config(config)


def _history_names(args) -> object:
    """The structure of a Keras 3 node's args with each tensor replaced by its producing layer's name."""
    if isinstance(args, dict) and args.get("class_name") == "__keras_tensor__":
        return args["config"]["keras_history"][0]
    if isinstance(args, list):
        return [_history_names(item) for item in args]
    raise ModelLoadError(f"unsupported Keras 3 node argument {str(args)[:80]}; only tensors and lists are rebuilt")


def _build(keras, config: dict):
    inner = config["config"]
    specs = inner["layers"]
    if config["class_name"] == "Sequential":
        input_config = specs[0]["config"] if specs and specs[0]["class_name"] == "InputLayer" else None
        if input_config is None:
            raise ModelLoadError("the Keras 3 Sequential model has no Input; it cannot be rebuilt unbuilt")
        layers = [keras.layers.Input(batch_shape=input_config["batch_shape"], name=input_config["name"])]
        layers += [_layer_from_config(keras, spec["class_name"], spec["config"]) for spec in specs[1:]]
        return keras.Sequential(layers, name=inner.get("name"))
    tensors = {}
    for spec in specs:
        name = spec["config"]["name"]
        if spec["class_name"] == "InputLayer":
            tensors[name] = keras.layers.Input(batch_shape=spec["config"]["batch_shape"], name=name)
            continue
        if len(spec["inbound_nodes"]) != 1:
            raise ModelLoadError(
                f"layer {name} is called {len(spec['inbound_nodes'])} times; shared layers are not rebuilt"
            )
        node = spec["inbound_nodes"][0]
        names = _history_names(node["args"])
        inputs = [tensors[n] if isinstance(n, str) else [tensors[m] for m in n] for n in names]
        layer = _layer_from_config(keras, spec["class_name"], spec["config"])
        tensors[name] = layer(inputs[0] if len(inputs) == 1 else inputs)

    def endpoints(entries):
        entries = [entries] if entries and isinstance(entries[0], str) else entries
        return [tensors[entry[0]] for entry in entries]

    inputs, outputs = endpoints(inner["input_layers"]), endpoints(inner["output_layers"])
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs[0] if len(outputs) == 1 else outputs)


def rebuild_in_tf_keras(inspection, *, allow_unsafe: bool = False):
    """A tf-keras copy of a Keras 3 Sequential or functional model: config translated, weights copied, outputs
    checked equal to Keras 3's on seeded random inputs.

    Raises:
      ModelLoadError: the model cannot be rebuilt (rebuild_blockers), or the copy disagrees with Keras 3.
    """
    from edgeopt.components._shared.keras_bootstrap import keras

    blockers = rebuild_blockers(inspection)
    if blockers:
        raise ModelLoadError(f"{inspection.path} cannot be rebuilt in tf-keras: " + "; ".join(blockers))
    folder = keras3_artifacts(inspection.path, allow_unsafe=allow_unsafe)
    try:
        model = _build(keras, _config(inspection.path))
        weights = np.load(folder / WEIGHTS_FILE)
        for layer in model.layers:
            values = [weights[f"{layer.name}::{i}"] for i in range(len(layer.weights))]
            if values:
                layer.set_weights(values)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelLoadError(f"{inspection.path}: the Keras 3 model could not be rebuilt in tf-keras: {err}") from err
    if not (folder / PROBE_FILE).exists():
        raise ModelLoadError(f"{inspection.path}: only single-input, single-output Keras 3 models are rebuilt")
    probe = np.load(folder / PROBE_FILE)
    difference = float(np.max(np.abs(np.asarray(model(probe["inputs"], training=False)) - probe["outputs"])))
    if difference > REBUILD_TOLERANCE:
        raise ModelLoadError(
            f"{inspection.path}: the tf-keras rebuild of the Keras 3 model differs by {difference:.3g} (over "
            f"{REBUILD_TOLERANCE}); use the post-training recipes, which convert the Keras 3 export itself"
        )
    logger.info("rebuilt the Keras 3 model %s in tf-keras (max output difference %.3g)", inspection.path, difference)
    return model
