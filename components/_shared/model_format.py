"""Recognize a model's format from its bytes and read its layer configs as JSON, before anything is deserialized.

Keras rebuilds a model from the class names in its config: a Lambda layer's stored function is unmarshalled and
called, and a `.keras` config may name any module for Keras to import. So the config is parsed as JSON (never
searched as text, which JSON without spaces defeats) and every nested object is checked before Keras sees it.
"""

import enum
import json
import logging
import os
import zipfile
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from edgeopt.components._shared.errors import ModelLoadError, UnsafeModelError

logger = logging.getLogger(__name__)

SAVED_MODEL_FILE = "saved_model.pb"
KERAS_METADATA_FILE = "keras_metadata.pb"
VARIABLES_DIR = "variables"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
TFLITE_IDENTIFIER = b"TFL3"
#: TFLite flatbuffers use 32-bit offsets: a model whose float weights exceed this cannot be converted.
FLATBUFFER_LIMIT_BYTES = 2**31
#: The classes a model's root may have and still be a graph of layers (not a subclassed model).
GRAPH_MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})
#: Serialization helpers that appear as `class_name` in configs but are not layers or code.
_SERIALIZATION_CLASSES = frozenset(
    {"__tuple__", "__keras_tensor__", "__numpy__", "__bytes__", "__tensor__", "__typespec__", "TensorShape",
     "TypeSpec", "InputSpec", "function", "DTypePolicy", "FloatDTypePolicy", "Policy", "Functional",
     "Sequential", "Model"}
)  # fmt: skip
#: Modules a `.keras` config may name; anything else would make Keras import a module the file chose.
_TRUSTED_MODULE_PREFIXES = ("keras", "tf_keras", "tensorflow_model_optimization", "builtins")
#: Public Keras namespaces: a `.keras` config naming a class or function there gets Keras's own object.
_PUBLIC_KERAS_MODULES = tuple(
    f"{package}.{namespace}"
    for package in ("keras", "tf_keras")
    for namespace in ("layers", "initializers", "regularizers", "constraints", "activations", "losses", "metrics",
                      "optimizers")
)  # fmt: skip
#: Config keys whose value is a nested layer (wrappers: TimeDistributed, Bidirectional, tfmot wrappers).
_NESTED_LAYER_KEYS = ("layer", "forward_layer", "backward_layer")


class ModelFormat(enum.StrEnum):
    TF_KERAS_SAVED_MODEL = "tf_keras_saved_model"
    TF_KERAS_FILE = "tf_keras_file"
    KERAS3_FILE = "keras3_file"
    PLAIN_SAVED_MODEL = "saved_model"
    HDF5 = "hdf5"


@dataclass(frozen=True)
class LayerInfo:
    """One layer of the config, nested layers included; `path` joins the names of its enclosing models."""

    class_name: str
    path: str
    module: str | None = None


@dataclass(frozen=True)
class ModelInspection:
    """What a model file holds, read without deserializing it."""

    path: Path
    format: ModelFormat
    layers: tuple[LayerInfo, ...] = ()
    root_class: str | None = None
    lambda_layers: tuple[str, ...] = ()
    unknown_classes: tuple[str, ...] = ()
    weight_bytes: int = 0

    @property
    def is_subclassed(self) -> bool:
        return self.root_class is not None and self.root_class not in GRAPH_MODEL_CLASSES


@cache
def known_class_names() -> frozenset[str]:
    """Classes Keras rebuilds from a config without running code from the file: tf-keras built-ins, tfmot's
    wrappers, quantizers and schedules (the scopes model_io opens), and serialization helpers."""
    from edgeopt.components._shared.keras_bootstrap import keras, tfmot

    names = set(_SERIALIZATION_CLASSES)
    for namespace in (keras.layers, keras.initializers, keras.regularizers, keras.constraints, keras.losses,
                      keras.metrics, keras.optimizers, keras.activations, tfmot.sparsity.keras,
                      tfmot.clustering.keras, tfmot.quantization.keras):  # fmt: skip
        names.update(name for name in dir(namespace) if not name.startswith("_"))
    for scope in (
        tfmot.quantization.keras.quantize_scope(),
        tfmot.sparsity.keras.prune_scope(),
        tfmot.clustering.keras.cluster_scope(),
    ):
        for objects in scope.custom_objects:
            names.update(objects)
    return frozenset(names - {"Lambda"})


def _registered(name: str) -> bool:
    """Custom classes the caller registered in this process (by `Package>Class` or plain name, as the config records
    it) are the caller's own code, so they are trusted."""
    from edgeopt.components._shared.keras_bootstrap import keras

    return keras.saving.get_registered_object(name) is not None


def detect_format(path: Path) -> ModelFormat:
    """The format from the bytes (a zip is a .keras file whatever its suffix); raises ModelLoadError otherwise."""
    if path.is_dir():
        if not (path / SAVED_MODEL_FILE).is_file():
            raise ModelLoadError(f"{path} is a folder without {SAVED_MODEL_FILE}; pass a SavedModel folder")
        if (path / SAVED_MODEL_FILE).stat().st_size == 0:
            raise ModelLoadError(f"{path / SAVED_MODEL_FILE} is empty; export the SavedModel again")
        if not (path / VARIABLES_DIR).is_dir():
            raise ModelLoadError(
                f"the SavedModel {path} has no {VARIABLES_DIR}/ folder; copy the whole SavedModel folder "
                f"({SAVED_MODEL_FILE} together with {VARIABLES_DIR}/)"
            )
        if (path / KERAS_METADATA_FILE).is_file():
            return ModelFormat.TF_KERAS_SAVED_MODEL
        return ModelFormat.PLAIN_SAVED_MODEL
    with open(path, "rb") as handle:
        head = handle.read(16)
    if not head:
        raise ModelLoadError(f"{path} is empty (0 bytes); the download or copy failed, fetch the model file again")
    if head.startswith(ZIP_MAGIC):
        return _zip_format(path)
    if head.startswith(HDF5_MAGIC):
        return ModelFormat.HDF5
    if head[4:8] == TFLITE_IDENTIFIER:
        raise ModelLoadError(f"{path} is a .tflite flatbuffer, not a Keras model; pass the Keras or SavedModel model")
    if head.lstrip().startswith(b"<"):
        raise ModelLoadError(
            f"{path} is an HTML or XML page, not a model (a failed download or a login page?); fetch the model again"
        )
    raise ModelLoadError(
        f"{path} is not a model file (neither a .keras zip, HDF5, nor a SavedModel folder; it starts with "
        f"{head[:8]!r}); pass a SavedModel folder or a .keras file"
    )


def _zip_format(path: Path) -> ModelFormat:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            metadata = json.loads(archive.read("metadata.json")) if "metadata.json" in names else {}
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError) as err:  # ValueError: JSON or UTF-8 decoding
        raise ModelLoadError(f"{path} is a damaged .keras archive ({err}); save or download the model again") from err
    if "config.json" not in names:
        raise ModelLoadError(f"{path} is a zip without config.json, not a .keras model; save it with model.save()")
    version = str(metadata.get("keras_version", ""))
    if version.startswith("3.") or (not version and _has_keras3_input(_read_keras_file_config(path))):
        return ModelFormat.KERAS3_FILE
    return ModelFormat.TF_KERAS_FILE


def _has_keras3_input(objects: list[dict]) -> bool:
    """Keras 3 writes an InputLayer's shape as `batch_shape`; tf-keras as `batch_input_shape`."""
    inputs = []
    _walk_objects(objects, lambda obj: inputs.append(obj) if obj["class_name"] == "InputLayer" else None)
    return any("batch_shape" in (obj.get("config") or {}) for obj in inputs)


def _read_keras_file_config(path: Path) -> list[dict]:
    try:
        with zipfile.ZipFile(path) as archive:
            return [json.loads(archive.read("config.json"))]
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError) as err:  # a damaged member fails its CRC
        raise ModelLoadError(f"{path}: config.json cannot be read ({err}); save or download the model again") from err


def _read_saved_model_metadata(path: Path) -> list[dict]:
    """Each Keras object's JSON metadata from keras_metadata.pb (a SavedMetadata protobuf, one node per object)."""
    from google.protobuf.message import DecodeError
    from tf_keras.protobuf import saved_metadata_pb2

    proto = saved_metadata_pb2.SavedMetadata()
    try:
        proto.ParseFromString((path / KERAS_METADATA_FILE).read_bytes())
        nodes = [dict(json.loads(node.metadata), _node_path=node.node_path) for node in proto.nodes]
    except (DecodeError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"{path / KERAS_METADATA_FILE} is damaged ({err}); export the SavedModel again") from err
    return nodes


def _walk_objects(value, visit):
    """Calls `visit(obj)` on every dict holding a class_name, at any depth."""
    if isinstance(value, dict):
        if "class_name" in value:
            visit(value)
        for item in value.values():
            _walk_objects(item, visit)
    elif isinstance(value, list):
        for item in value:
            _walk_objects(item, visit)


def _walk_layers(obj: dict, prefix: str, found: list[LayerInfo]):
    """Layers of a config tree: models' `layers` lists and wrappers' nested layers, recursively."""
    config = obj.get("config") if isinstance(obj.get("config"), dict) else {}
    name = config.get("name") or obj.get("name") or obj.get("class_name")
    path = f"{prefix}/{name}" if prefix else str(name)
    found.append(LayerInfo(str(obj.get("class_name")), path, obj.get("module")))
    for child in config.get("layers", []) if isinstance(config.get("layers"), list) else []:
        if isinstance(child, dict):
            _walk_layers(child, path, found)
    for key in _NESTED_LAYER_KEYS:
        if isinstance(config.get(key), dict) and "class_name" in config[key]:
            _walk_layers(config[key], path, found)


def _weight_bytes(path: Path, model_format: ModelFormat) -> int:
    if path.is_dir():
        return sum(file.stat().st_size for file in (path / VARIABLES_DIR).rglob("*") if file.is_file())
    if model_format in (ModelFormat.TF_KERAS_FILE, ModelFormat.KERAS3_FILE):
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist() if info.filename.endswith(".h5"))
    return path.stat().st_size


def inspect_model(path: str | os.PathLike) -> ModelInspection:
    """Reads a model's format, layers and risky classes from its files without deserializing anything.

    Raises:
      ModelLoadError: the file is empty, HTML, garbage, a damaged archive, a SavedModel without variables/, or its
        weights exceed the TFLite 2 GiB flatbuffer limit.
    """
    from edgeopt.components._shared.model_io import resolve_model_path

    path = resolve_model_path(path)
    model_format = detect_format(path)
    if model_format == ModelFormat.HDF5 or model_format == ModelFormat.PLAIN_SAVED_MODEL:
        # HDF5 is refused wholesale without opt-in; a plain SavedModel has no Keras config, only graphs.
        objects = []
    elif model_format == ModelFormat.TF_KERAS_SAVED_MODEL:
        objects = _read_saved_model_metadata(path)
    else:
        objects = _read_keras_file_config(path)
    weight_bytes = _weight_bytes(path, model_format)
    check_flatbuffer_limit(path, weight_bytes)

    lambdas, unknown, modules = [], set(), set()
    known = known_class_names()

    def visit(obj):
        class_name = str(obj["class_name"])
        registered = _registered(str(obj.get("registered_name") or class_name))
        if class_name == "Lambda":
            config = obj.get("config") if isinstance(obj.get("config"), dict) else {}
            lambdas.append(str(config.get("name") or obj.get("name") or "lambda"))
        elif class_name == "function" and obj.get("module") not in (None, *_PUBLIC_KERAS_MODULES):
            unknown.add(f"function {obj.get('config')} of module {obj.get('module')}")
        elif class_name not in known and not registered and not keras3_builtin(obj):
            unknown.add(class_name)
        module = obj.get("module")
        if isinstance(module, str) and not module.startswith(_TRUSTED_MODULE_PREFIXES) and not registered:
            modules.add(module)

    def keras3_builtin(obj) -> bool:
        # A Keras 3 built-in that tf-keras lacks, named in Keras 3's public API (Keras 3 loads it, not tf-keras).
        return model_format == ModelFormat.KERAS3_FILE and obj.get("module") in _PUBLIC_KERAS_MODULES

    _walk_objects(objects, visit)
    layers: list[LayerInfo] = []
    root_class = None
    if model_format == ModelFormat.TF_KERAS_SAVED_MODEL:
        root = next((node for node in objects if node.get("_node_path") == "root"), {})
        root_class = root.get("class_name")
        if root_class in GRAPH_MODEL_CLASSES:
            _walk_layers(root, "", layers)
        else:  # a subclassed model has no layer graph in its config: its layers are the other nodes
            layers = [
                LayerInfo(str(node.get("class_name")), node["_node_path"])
                for node in objects
                if "class_name" in node and "metric" not in str(node.get("_node_path"))
            ]
    elif objects:
        root_class = objects[0].get("class_name")
        _walk_layers(objects[0], "", layers)
    return ModelInspection(
        path=path,
        format=model_format,
        layers=tuple(layers),
        root_class=root_class,
        lambda_layers=tuple(dict.fromkeys(lambdas)),
        unknown_classes=tuple(sorted(unknown | {f"module {module}" for module in modules})),
        weight_bytes=weight_bytes,
    )


def saved_training_loss_config(path: str | os.PathLike):
    """The `loss` of the training config a tf-keras model was saved with (a name or a {class_name, config} dict),
    read from keras_metadata.pb or a .keras file's config.json without deserializing anything; None without one."""
    from edgeopt.components._shared.model_io import resolve_model_path

    path = resolve_model_path(path)
    try:
        if detect_format(path) in (ModelFormat.TF_KERAS_FILE, ModelFormat.KERAS3_FILE):
            compile_config = _read_keras_file_config(path)[0].get("compile_config") or {}
            return compile_config.get("loss")
        if (path / KERAS_METADATA_FILE).is_file():
            root = next((node for node in _read_saved_model_metadata(path) if node["_node_path"] == "root"), {})
            return (root.get("training_config") or {}).get("loss")
    except (ModelLoadError, OSError, KeyError):
        return None
    return None


def check_flatbuffer_limit(path: Path, weight_bytes: int):
    """Fails before any work when the float weights alone exceed what one TFLite flatbuffer can hold."""
    if weight_bytes > FLATBUFFER_LIMIT_BYTES:
        raise ModelLoadError(
            f"{path} holds {weight_bytes / 2**30:.2f} GiB of weights, over the 2 GiB limit of a TFLite flatbuffer "
            "(conversion writes the float model first, so quantizing does not help); split the model into parts "
            "under 2 GiB or shrink it (fewer or narrower layers) before converting"
        )


def check_model_safe(inspection: ModelInspection, *, allow_unsafe: bool):
    """Refuses formats and layers that run code from the file on load, unless the caller opted in.

    Raises:
      UnsafeModelError: an HDF5 file, a Lambda layer, or (in a .keras file) a class or module Keras would import.
    """
    if allow_unsafe:
        if inspection.lambda_layers or inspection.unknown_classes or inspection.format == ModelFormat.HDF5:
            logger.warning("%s: loading code-carrying content because allow_unsafe is set", inspection.path)
        return
    path = inspection.path
    opt_in = "or opt in with allow_unsafe=True (--allow-unsafe-model) if you trust its origin"
    if inspection.format == ModelFormat.HDF5:
        raise UnsafeModelError(
            f"{path} is an HDF5 model, which bypasses Keras safe mode; re-save it as a .keras file or SavedModel, "
            + opt_in
        )
    if inspection.lambda_layers:
        raise UnsafeModelError(
            f"{path} contains Lambda layer(s) {list(inspection.lambda_layers)}, whose stored code runs on load; "
            "replace them with a registered custom layer, " + opt_in
        )
    keras_file = inspection.format in (ModelFormat.TF_KERAS_FILE, ModelFormat.KERAS3_FILE)
    if keras_file and inspection.unknown_classes:
        # In a SavedModel, unknown classes are revived from their traced graphs; a .keras file makes Keras import
        # the module the file names and call its from_config.
        raise UnsafeModelError(
            f"{path} names classes that are not built-in Keras or tfmot: {list(inspection.unknown_classes)}; "
            "register them with keras.saving.register_keras_serializable in the calling process, " + opt_in
        )


def check_model_file(path: str | os.PathLike, *, allow_unsafe: bool) -> ModelInspection:
    """inspect_model + check_model_safe: what every entry point runs on a user's model before any work."""
    inspection = inspect_model(path)
    check_model_safe(inspection, allow_unsafe=allow_unsafe)
    return inspection


def check_tflite_file(path: str | os.PathLike) -> Path:
    """Checks that `path` is a TFLite flatbuffer (identifier TFL3 at bytes 4..8, below 2 GiB) before a reader
    hands it to the native interpreter, which crashes or fails obscurely on anything else.

    Raises:
      ModelLoadError: missing, empty, truncated, not a flatbuffer, or too large.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path} does not exist or is not a file; pass the path of a .tflite model")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
    # A flatbuffer starts with the offset of its root table, which a truncated file no longer contains.
    root_offset = int.from_bytes(head[:4], "little") if len(head) == 8 else 0
    if size < 8 or head[4:8] != TFLITE_IDENTIFIER or not 8 <= root_offset < size:
        raise ModelLoadError(
            f"{path} is not a TFLite flatbuffer ({size} bytes, identifier {head[4:8]!r} instead of b'TFL3'); "
            "it is corrupt or truncated: export it again, or register a valid model"
        )
    if size > FLATBUFFER_LIMIT_BYTES:
        raise ModelLoadError(f"{path} is {size} bytes, over the 2 GiB flatbuffer limit; it is not a valid .tflite")
    return path
