"""Which recipes a model supports, decided from its config before any training, with every reason in one error.

tfmot wraps only tf-keras Sequential and functional models and quantizes only the layers its 8-bit registry knows.
Without this check a recipe fails after the baseline export and minutes of fine-tuning, with tfmot's raw message
about the first bad layer only.
"""

import logging
from functools import cache

from edgeopt.components._shared.errors import UnsupportedModelError
from edgeopt.components._shared.keras3_bridge import rebuild_blockers
from edgeopt.components._shared.model_format import GRAPH_MODEL_CLASSES, ModelFormat, ModelInspection

logger = logging.getLogger(__name__)

TRAINING_TECHNIQUES = ("prune", "cluster", "qat")
#: Layers QAT handles outside tfmot's registry: InputLayer is not wrapped; BatchNormalization is folded by tfmot
#: after a convolution and annotated with an output-only quantize config elsewhere (qat/core.py).
QAT_EXTRA_LAYERS = frozenset({"InputLayer", "BatchNormalization"})


@cache
def qat_supported_layers() -> frozenset[str]:
    """Layer classes tfmot's default 8-bit registry quantizes (the cluster- and prune-preserving schemes extend it)."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )

    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    return frozenset(layer_class.__name__ for layer_class in registry._layer_quantize_map) | QAT_EXTRA_LAYERS


def model_reasons(inspection: ModelInspection) -> list[str]:
    """Why no training-time technique (prune, cluster, qat) can run on the model at all; empty when they can."""
    if inspection.format == ModelFormat.KERAS3_FILE:
        blockers = rebuild_blockers(inspection)
        if blockers:
            return [
                "it was saved by Keras 3 and tfmot wraps only tf-keras models, into which it is not rebuilt: "
                + "; ".join(blockers)
            ]
        return []
    if inspection.format == ModelFormat.PLAIN_SAVED_MODEL:
        return [
            "it is a SavedModel without Keras metadata (a Keras 3 export or a tf.Module), so it has no layers to wrap"
        ]
    reasons = []
    if inspection.is_subclassed:
        reasons.append(
            f"it is a subclassed model (class {inspection.root_class}); tfmot wraps only Sequential and "
            "functional models"
        )
    elif inspection.unknown_classes:
        reasons.append(
            f"custom classes {list(inspection.unknown_classes)} cannot be cloned or wrapped; register "
            "them with keras.saving.register_keras_serializable in the calling process"
        )
    nested = [layer.path for layer in inspection.layers[1:] if layer.class_name in GRAPH_MODEL_CLASSES]
    if nested:
        reasons.append(
            f"nested models {nested}: tfmot does not wrap the layers inside them; build the model "
            "flat (one Sequential or functional model)"
        )
    if inspection.lambda_layers:
        reasons.append(f"Lambda layers {list(inspection.lambda_layers)} cannot be wrapped")
    return reasons


def qat_reasons(inspection: ModelInspection, config) -> list[str]:
    """The layers QAT would have to quantize but cannot: all of them, or those `config` selects."""
    selected = [
        layer
        for layer in inspection.layers[1:]
        if not (config.layer_types or config.layer_names)
        or layer.class_name in config.layer_types
        or layer.path.rsplit("/", 1)[-1] in config.layer_names
    ]
    supported = qat_supported_layers()
    unsupported = [f"{layer.path} ({layer.class_name})" for layer in selected if layer.class_name not in supported]
    if not unsupported:
        return []
    return [f"QAT cannot quantize layers {unsupported}; keep them out with layer_types/layer_names in the qat step"]


def recipe_reasons(inspection: ModelInspection, recipe) -> list[str]:
    """Every reason the recipe cannot run on the model (empty when it can), without loading the model."""
    techniques = [step.technique for step in recipe.steps]
    if not any(technique in TRAINING_TECHNIQUES for technique in techniques):
        return []  # export and quantize convert any format (model_source.py)
    reasons = model_reasons(inspection)
    if reasons:
        return reasons
    for step in recipe.steps:
        if step.technique == "qat":
            reasons.extend(qat_reasons(inspection, step.config))
    return reasons


def check_recipes(inspection: ModelInspection, recipes) -> dict[str, UnsupportedModelError]:
    """One UnsupportedModelError per recipe the model cannot run, naming every reason and the recipes that apply."""
    reasons = {recipe.name: recipe_reasons(inspection, recipe) for recipe in recipes}
    applicable = [name for name, found in reasons.items() if not found]
    errors = {}
    for name, found in reasons.items():
        if not found:
            continue
        others = f"recipes of this job that apply: {applicable}" if applicable else "post-training recipes apply"
        errors[name] = UnsupportedModelError(
            f"recipe {name} cannot run on {inspection.path}: " + "; ".join(found) + f". Nothing was trained; {others}"
            " (export and the ptq_* recipes convert any Keras or SavedModel model)"
        )
        logger.info("refusing recipe %s before any work: %s", name, errors[name])
    return errors


def check_recipe(inspection: ModelInspection, recipe):
    """Raises the UnsupportedModelError of `recipe` on the model, if any."""
    error = check_recipes(inspection, [recipe]).get(recipe.name)
    if error is not None:
        raise error
