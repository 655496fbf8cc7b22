"""Rebuild Sequential and functional tf-keras models from their layer config with some layers replaced: the
mechanics the topology techniques share (factorize's low-rank pairs, distill's width-scaled students)."""

import copy
import logging
from collections.abc import Callable

import numpy as np

from edgeopt.components._shared.errors import UnsupportedModelError
from edgeopt.components._shared.keras_bootstrap import keras

logger = logging.getLogger(__name__)

#: Layers from this package rebuild from their config alone; anything else may hold state a config cannot carry.
STANDARD_LAYER_PACKAGE = "tf_keras."

#: What a replacement returns: None keeps the layer, else the (class_name, config) of each new layer in call order;
#: the last one takes the original layer's place (and name) as the input of whatever followed it.
Replacement = list[tuple[str, dict]] | None


def require_rebuildable(model, technique: str, alternatives: str):
    """Refuses, before any work, a model this technique cannot rebuild from its layer config.

    Raises:
      UnsupportedModelError: a subclassed model, or one holding layers from outside tf-keras.
    """
    if not (isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise UnsupportedModelError(
            f"{technique} rebuilds the model from its layer config, which the subclassed model "
            f"'{model.name}' ({type(model).__name__}) does not have; save a Sequential or functional model of "
            f"standard layers, or use {alternatives}, which apply to any Keras model"
        )
    custom = [
        f"{layer.name} ({type(layer).__name__})"
        for layer in model.layers
        if not type(layer).__module__.startswith(STANDARD_LAYER_PACKAGE)
    ]
    if custom:
        raise UnsupportedModelError(
            f"{technique} rebuilds the model from its layer config, but these layers are not standard tf-keras "
            f"layers: {', '.join(custom)}; replace them with standard layers, or use {alternatives}"
        )


def called_once(layer) -> bool:
    """A layer shared between several calls would need every call rewired; such layers are left as they are."""
    return len(layer.inbound_nodes) == 1


def rebuild(model, replace: Callable[[object], Replacement]):
    """A new, freshly initialized model with the same topology in which `replace(layer)` may swap layers.

    Returns the new model and the names of the layers that were replaced.
    """
    config = copy.deepcopy(model.get_config())
    by_name = {layer.name: layer for layer in model.layers}
    nested = [name for name, layer in by_name.items() if isinstance(layer, keras.Model)]
    if nested:
        logger.warning("the layers inside nested model(s) %s are rebuilt as they are, never replaced", nested)
    replaced = []
    entries = []
    sequential = isinstance(model, keras.Sequential)
    for entry in config["layers"]:
        # Recorded input shapes go stale once a layer upstream changes width; from_config rebuilds from the inputs.
        entry.pop("build_config", None)
        name = entry["config"]["name"]
        layer = by_name.get(name)
        replacement = replace(layer) if layer is not None and (sequential or called_once(layer)) else None
        if not replacement:
            entries.append(entry)
            continue
        replaced.append(name)
        entries.extend(_entries(entry, replacement, sequential))
    config["layers"] = entries
    rebuilt = type(model).from_config(config) if sequential else keras.Model.from_config(config)
    return rebuilt, replaced


def _entries(original: dict, replacement: list[tuple[str, dict]], sequential: bool) -> list[dict]:
    entries = []
    inbound = original.get("inbound_nodes")
    for position, (class_name, layer_config) in enumerate(replacement):
        entry = {"class_name": class_name, "config": layer_config}
        if not sequential:
            entry["name"] = layer_config["name"]
            # tf-keras node format: [[[inbound layer, node index, tensor index, call kwargs]]]
            entry["inbound_nodes"] = inbound if position == 0 else [[[replacement[position - 1][1]["name"], 0, 0, {}]]]
        entries.append(entry)
    return entries


def copy_weights(source, target, skip: set[str]):
    """Copies the weights of every layer of `target` not in `skip` from the layer of the same name in `source`."""
    for layer in target.layers:
        if layer.name in skip or not layer.weights:
            continue
        layer.set_weights(source.get_layer(layer.name).get_weights())


def max_output_difference(original, rebuilt, inputs: np.ndarray, batch_size: int = 256) -> float:
    """Largest absolute difference between the two models' outputs on `inputs`."""
    worst = 0.0
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start : start + batch_size]
        expected = np.asarray(original(batch, training=False))
        actual = np.asarray(rebuilt(batch, training=False))
        worst = max(worst, float(np.max(np.abs(expected - actual))))
    return worst
