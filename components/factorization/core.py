"""Low-rank factorization: split selected kernels by their SVD into two thinner layers, check outputs, fine-tune."""

import logging
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from edgeopt.components._shared.data import TrainingData
from edgeopt.components._shared.distribution import training_scope
from edgeopt.components._shared.errors import ConfigError, OptimizationNotAchievedError
from edgeopt.components._shared.keras_bootstrap import keras
from edgeopt.components._shared.model_io import load_keras_model, save_step_model
from edgeopt.components._shared.topology import (
    copy_weights,
    max_output_difference,
    rebuild,
    require_rebuildable,
)
from edgeopt.components._shared.training import fine_tune, outputs_probabilities, saved_loss, set_seeds
from edgeopt.components.factorization.config import FactorizationConfig, RankSelection

logger = logging.getLogger(__name__)

LOWRANK_SUFFIX = "_lowrank"
#: Inputs the pre-fine-tuning output check runs on.
CHECK_EXAMPLES = 256
ALTERNATIVES = "prune, cluster, qat or quantize"


@dataclass(frozen=True)
class LayerFactorization:
    """One kernel W (m inputs x n outputs) replaced by (m x rank) then (rank x n); parameters include the bias."""

    name: str
    kind: str
    m: int
    n: int
    rank: int
    params_before: int
    params_after: int


@dataclass(frozen=True)
class FactorizationResult:
    model_dir: str
    params_before: int
    params_after: int
    #: Largest absolute output difference against the original, before fine-tuning.
    max_output_diff: float
    layers: list[dict] = field(default_factory=list)
    #: Layer name -> why it was left whole.
    skipped: dict[str, str] = field(default_factory=dict)
    train_accuracy: float | None = None
    distribution: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def choose_rank(singular_values: np.ndarray, config: FactorizationConfig) -> int:
    """The rank to keep: a share of the full rank, or the fewest values holding `energy` of the squared sum."""
    full = len(singular_values)
    if config.rank_by == RankSelection.RANK_FRACTION:
        return max(1, int(round(config.rank_fraction * full)))
    squares = np.square(singular_values.astype(np.float64))
    kept = np.cumsum(squares) / max(float(squares.sum()), np.finfo(np.float64).tiny)
    return int(min(full, np.searchsorted(kept, config.energy - 1e-12) + 1))


def _kernel_matrix(layer) -> tuple[str, np.ndarray] | None:
    """(kind, m x n kernel) for a layer factorize can split, else None."""
    if type(layer) is keras.layers.Dense:
        return "dense", layer.kernel.numpy()
    if type(layer) is keras.layers.Conv2D:
        settings = layer.get_config()
        if tuple(settings["kernel_size"]) == (1, 1) and settings.get("groups", 1) == 1:
            if settings.get("data_format") in (None, "channels_last"):
                kernel = layer.kernel.numpy()
                return "conv1x1", kernel.reshape(kernel.shape[-2], kernel.shape[-1])
    return None


def plan_factorization(model, config: FactorizationConfig) -> tuple[list[LayerFactorization], dict[str, str]]:
    """Which layers to split and at which rank; the others with the reason they stay whole."""
    names = {layer.name for layer in model.layers}
    unknown = sorted(set(config.skip_layers) - names)
    if unknown:
        raise ConfigError(
            f"FactorizationConfig.skip_layers: no layer named {unknown} in the model; its layers are {sorted(names)}"
        )
    dense_names = [layer.name for layer in model.layers if type(layer) is keras.layers.Dense]
    head = dense_names[-1] if dense_names and config.skip_head else None
    plan, skipped = [], {}
    for layer in model.layers:
        found = _kernel_matrix(layer)
        if found is None:
            continue
        kind, kernel = found
        if kind == "conv1x1" and not config.conv1x1:
            continue
        if layer.name in config.skip_layers or layer.name == head:
            skipped[layer.name] = "in skip_layers" if layer.name in config.skip_layers else "the head (skip_head)"
            continue
        if len(layer.inbound_nodes) != 1:
            skipped[layer.name] = "shared by several calls"
            continue
        if layer.name + LOWRANK_SUFFIX in names:
            skipped[layer.name] = f"a layer named {layer.name + LOWRANK_SUFFIX} exists already (factorized before?)"
            continue
        m, n = kernel.shape
        rank = choose_rank(np.linalg.svd(kernel, compute_uv=False), config)
        if rank * (m + n) >= m * n:
            skipped[layer.name] = f"rank {rank} would not shrink it ({rank * (m + n)} >= {m * n} weights)"
            continue
        bias = n if layer.use_bias else 0
        plan.append(LayerFactorization(layer.name, kind, m, n, rank, m * n + bias, rank * (m + n) + bias))
    return plan, skipped


def factorize_model(model, plan: list[LayerFactorization]):
    """A new model in which every planned layer is its rank-r SVD pair; all other weights copied.

    At full rank (r = min(m, n)) the new model computes the same function, up to float rounding.
    """
    planned = {entry.name: entry for entry in plan}

    def replace(layer):
        entry = planned.get(layer.name)
        if entry is None:
            return None
        settings = layer.get_config()
        class_name = type(layer).__name__
        first = dict(settings, name=layer.name + LOWRANK_SUFFIX, use_bias=False, activation="linear")
        first.update(activity_regularizer=None, kernel_constraint=None)
        first.update({"units": entry.rank} if entry.kind == "dense" else {"filters": entry.rank})
        second = dict(settings) if entry.kind == "dense" else dict(settings, strides=(1, 1))
        return [(class_name, first), (class_name, second)]

    factorized, replaced = rebuild(model, replace)
    copy_weights(model, factorized, skip=set(replaced) | {name + LOWRANK_SUFFIX for name in replaced})
    for entry in plan:
        original = model.get_layer(entry.name)
        _, kernel = _kernel_matrix(original)
        left, singular, right = np.linalg.svd(kernel.astype(np.float64), full_matrices=False)
        first_kernel = (left[:, : entry.rank] * singular[: entry.rank]).astype(np.float32)
        second_kernel = right[: entry.rank].astype(np.float32)
        first, second = factorized.get_layer(entry.name + LOWRANK_SUFFIX), factorized.get_layer(entry.name)
        first.set_weights([first_kernel.reshape(first.kernel.shape)])
        second.set_weights([second_kernel.reshape(second.kernel.shape), *original.get_weights()[1:]])
    return factorized


def factorize(
    model_path: str | os.PathLike,
    config: FactorizationConfig,
    output_dir: str | os.PathLike,
    *,
    data: TrainingData,
    allow_unsafe: bool = False,
) -> FactorizationResult:
    """Splits the selected Dense and 1x1 Conv2D kernels into low-rank pairs, checks, fine-tunes and saves the model.

    Args:
      model_path: SavedModel folder or .keras file of a Sequential or functional model; never modified.
      config: rank selection, which layers, the output check and fine-tuning settings.
      output_dir: receives the factorized SavedModel (with edgeopt_step.json), atomically.
      data: the training split feeds the output check and fine-tuning.

    Raises:
      UnsupportedModelError: a subclassed model or non-standard layers (before any work).
      OptimizationNotAchievedError: no layer would shrink, or the outputs differ past `max_output_diff`.

    Example (the demo's digits CNN, whose 1024 x 256 Dense kernel becomes rank 64):
      >>> factorize("model/", FactorizationConfig(rank_fraction=0.25), "lowrank/", data=data).params_after
      103562
    """
    model = load_keras_model(model_path, allow_unsafe=allow_unsafe)
    require_rebuildable(model, "factorize", ALTERNATIVES)
    plan, skipped = plan_factorization(model, config)
    if not plan:
        raise OptimizationNotAchievedError(
            f"factorize found no layer to shrink (left whole: {skipped or 'no Dense or 1x1 Conv2D layers'}); "
            "lower rank_fraction or energy, include 1x1 convolutions (conv1x1: true) or the head (skip_head: false), "
            "or use another technique"
        )
    # The original model only lends its weights; the factorized one is built, compiled and fitted in the scope.
    with training_scope(config) as distribution:
        set_seeds(config.seed)
        factorized = factorize_model(model, plan)
        inputs, _ = data.take(data.train_split, CHECK_EXAMPLES)
        difference = max_output_difference(model, factorized, inputs)
        logger.info("factorized %d layer(s); largest output difference before fine-tuning %.3g", len(plan), difference)
        if config.max_output_diff is not None and difference > config.max_output_diff:
            raise OptimizationNotAchievedError(
                f"the factorized model's outputs differ from the original's by up to {difference:.4g}, above "
                f"max_output_diff {config.max_output_diff}; raise rank_fraction or energy, or max_output_diff"
            )
        train_accuracy = None
        if config.epochs:
            fine_tune(
                factorized,
                data,
                config,
                from_logits=not outputs_probabilities(model),
                compiled_loss=saved_loss(model_path),
            )
            train_accuracy = float(factorized.history.history["accuracy"][-1])
    result = FactorizationResult(
        model_dir=str(output_dir),
        params_before=int(model.count_params()),
        params_after=int(factorized.count_params()),
        max_output_diff=difference,
        layers=[asdict(entry) for entry in plan],
        skipped=skipped,
        train_accuracy=train_accuracy,
        distribution=distribution.to_dict(),
    )
    save_step_model(factorized, output_dir, technique="factorize", config=config, result=result.to_dict())
    return result
