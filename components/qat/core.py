"""Quantization-aware training with tfmot: whole model or selected layers, plain or preserving sparsity/clusters."""

import os
from dataclasses import asdict, dataclass, field

from edgeopt.components._shared.data import TrainingData
from edgeopt.components._shared.distribution import training_scope
from edgeopt.components._shared.errors import ConfigError
from edgeopt.components._shared.keras_bootstrap import keras, tfmot
from edgeopt.components._shared.model_io import load_keras_model, save_step_model
from edgeopt.components._shared.training import fine_tune, outputs_probabilities, saved_loss, set_seeds
from edgeopt.components.qat.config import QatConfig, QatScheme


@dataclass(frozen=True)
class QatResult:
    model_dir: str
    quantized_layers: list[str]
    train_accuracy: float
    distribution: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _scheme(scheme: QatScheme):
    combine = tfmot.experimental.combine
    if scheme == QatScheme.PRUNE_PRESERVE:
        return combine.Default8BitPrunePreserveQuantizeScheme()
    if scheme == QatScheme.CLUSTER_PRESERVE:
        return combine.Default8BitClusterPreserveQuantizeScheme()
    if scheme == QatScheme.SPARSE_CLUSTER_PRESERVE:
        return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)
    return None  # tfmot's Default8BitQuantizeScheme


#: Layers before which tfmot itself folds a BatchNormalization (its Conv+BN transforms).
_TFMOT_FOLDS_BN_AFTER = ("Conv2D", "DepthwiseConv2D")


def _predecessors(model, layer) -> list:
    nodes = getattr(layer, "_inbound_nodes", [])
    inbound = nodes[0].inbound_layers if nodes else []
    return list(inbound) if isinstance(inbound, list | tuple) else [inbound]


def _annotate_layer(model, layer):
    """Annotates one layer; a BatchNormalization tfmot cannot fold (after Dense, Flatten, ...) gets an output-only
    quantize config: it stays float during training and its output is fake-quantized like an activation's, so the
    converter has the ranges to make it integer (tfmot's registry refuses it otherwise)."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs,
    )

    quantize = tfmot.quantization.keras
    if type(layer).__name__ == "BatchNormalization" and not any(
        type(previous).__name__ in _TFMOT_FOLDS_BN_AFTER for previous in _predecessors(model, layer)
    ):
        return quantize.quantize_annotate_layer(
            layer, quantize_config=default_8bit_quantize_configs.Default8BitOutputQuantizeConfig()
        )
    return quantize.quantize_annotate_layer(layer)


def _annotate(model, config: QatConfig):
    """Marks the layers to quantize: all of them, or those matching layer_types or layer_names, but skip_layers."""
    selected_only = bool(config.layer_types or config.layer_names)
    known_types = {type(layer).__name__ for layer in model.layers}
    known_names = {layer.name for layer in model.layers}
    unknown = sorted(set(config.layer_types) - known_types) + sorted(
        set(config.layer_names) - known_names | set(config.skip_layers) - known_names
    )
    if unknown:
        raise ConfigError(
            f"QatConfig.layer_types/layer_names/skip_layers: {unknown} match no layer of the model "
            f"(types: {sorted(known_types)}, names: {sorted(known_names)})"
        )

    def annotate(layer):
        if layer.name in config.skip_layers:
            return layer
        if selected_only and type(layer).__name__ not in config.layer_types and layer.name not in config.layer_names:
            return layer
        return _annotate_layer(model, layer)

    return keras.models.clone_model(model, clone_function=annotate)


def quantization_aware_train(
    model_path: str | os.PathLike,
    config: QatConfig,
    output_dir: str | os.PathLike,
    *,
    data: TrainingData,
    allow_unsafe: bool = False,
) -> QatResult:
    """Inserts fake-quantization, fine-tunes, and saves the QAT model for a following `quantize` step.

    Example:
      >>> quantization_aware_train("model/", QatConfig(epochs=2), "qat/", data=data)
    """
    set_seeds(config.seed)
    with training_scope(config) as distribution:
        model = load_keras_model(model_path, allow_unsafe=allow_unsafe)
        from_logits = not outputs_probabilities(model)
        annotated = _annotate(model, config)
        with tfmot.quantization.keras.quantize_scope():
            scheme = _scheme(config.scheme)
            scheme_args = {} if scheme is None else {"scheme": scheme}
            quantized = tfmot.quantization.keras.quantize_apply(annotated, **scheme_args)
        history = fine_tune(
            quantized,
            data,
            config,
            from_logits=from_logits,
            compiled_loss=saved_loss(model_path),
        ).history.history
    quantized_layers = [
        layer.layer.name for layer in quantized.layers if isinstance(layer, tfmot.quantization.keras.QuantizeWrapper)
    ]
    result = QatResult(str(output_dir), quantized_layers, float(history["accuracy"][-1]), distribution.to_dict())
    save_step_model(quantized, output_dir, technique="qat", config=config, result=result.to_dict())
    return result
