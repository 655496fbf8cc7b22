"""Magnitude pruning with tfmot: wrap, fine-tune with a schedule sized to the real step count, strip, verify."""

import os
from dataclasses import asdict, dataclass, field

import numpy as np

from edgeopt.components._shared.data import TrainingData
from edgeopt.components._shared.distribution import training_scope
from edgeopt.components._shared.errors import ConfigError, OptimizationNotAchievedError
from edgeopt.components._shared.keras_bootstrap import keras, tfmot
from edgeopt.components._shared.model_io import save_step_model
from edgeopt.components._shared.training import kernel_of, wrap_and_fine_tune
from edgeopt.components.pruning.config import PruningConfig, PruningSchedule, SparsityStructure


@dataclass(frozen=True)
class PruningSchedulePlan:
    """When the masks change: derived from the real number of training steps."""

    total_steps: int
    begin_step: int
    end_step: int
    frequency: int


@dataclass(frozen=True)
class PruningResult:
    model_dir: str
    achieved_sparsity: float
    layer_sparsity: dict[str, float] = field(default_factory=dict)
    schedule: PruningSchedulePlan | None = None
    distribution: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def plan_schedule(config: PruningConfig, steps_per_epoch: int) -> PruningSchedulePlan:
    """Places every mask update inside the run, the last one exactly on end_step.

    tfmot prunes at step s when begin <= s <= end and (s - begin) % frequency == 0, so end_step is a multiple of
    the frequency: the final update then happens and applies the full target sparsity.
    """
    total_steps = config.epochs * steps_per_epoch
    ramp_steps = max(1, int(total_steps * config.ramp_fraction) - 1)
    frequency = max(1, ramp_steps // config.mask_updates)
    end_step = frequency * max(1, ramp_steps // frequency)
    return PruningSchedulePlan(total_steps=total_steps, begin_step=0, end_step=end_step, frequency=frequency)


def _schedule(config: PruningConfig, plan: PruningSchedulePlan):
    sparsity = tfmot.sparsity.keras
    if config.schedule == PruningSchedule.CONSTANT or config.structure == SparsityStructure.TWO_OF_FOUR:
        return sparsity.ConstantSparsity(
            config.effective_target, begin_step=plan.begin_step, end_step=plan.end_step, frequency=plan.frequency
        )
    return sparsity.PolynomialDecay(
        initial_sparsity=config.initial_sparsity,
        final_sparsity=config.target_sparsity,
        begin_step=plan.begin_step,
        end_step=plan.end_step,
        frequency=plan.frequency,
    )


def kernel_sparsity(model, layer_names) -> tuple[float, dict[str, float]]:
    """Share of zeros over the kernels of `layer_names`, overall (weighted by size) and per layer."""
    per_layer, zeros, total = {}, 0, 0
    for layer in model.layers:
        if layer.name in layer_names:
            kernel = kernel_of(layer)
            per_layer[layer.name] = float(np.mean(kernel == 0))
            zeros += int(np.sum(kernel == 0))
            total += kernel.size
    return (zeros / total if total else 0.0), per_layer


def prune(
    model_path: str | os.PathLike,
    config: PruningConfig,
    output_dir: str | os.PathLike,
    *,
    data: TrainingData,
    allow_unsafe: bool = False,
) -> PruningResult:
    """Prunes Dense and Conv2D kernels to the configured sparsity and saves the stripped model.

    Args:
      model_path: SavedModel folder or .keras file; loaded fresh, never modified.
      config: target sparsity, schedule, structure and fine-tuning settings.
      output_dir: receives the stripped SavedModel (with edgeopt_step.json), atomically.
      data: the training split fine-tunes the model.

    Raises:
      OptimizationNotAchievedError: the stripped kernels miss the target sparsity (nothing is written).

    Example:
      >>> prune("model/", PruningConfig(target_sparsity=0.8), "pruned/", data=data).achieved_sparsity
      0.8
    """
    plan = plan_schedule(config, data.steps_per_epoch(config.batch_size, config.steps_per_epoch))
    wrapper_args = {"pruning_schedule": _schedule(config, plan)}
    if config.structure == SparsityStructure.TWO_OF_FOUR:
        wrapper_args["sparsity_m_by_n"] = (2, 4)
    with training_scope(config) as distribution:
        wrapped, pruned_names = wrap_and_fine_tune(
            model_path,
            config,
            data,
            wrap=lambda layer, model: (
                layer  # left alone: not wrapped, not counted
                if layer.kernel.shape.num_elements() < config.min_layer_weights
                else tfmot.sparsity.keras.prune_low_magnitude(
                    layer, **wrapper_args, **_block_args(config, layer, model)
                )
            ),
            verb="prune",
            allow_unsafe=allow_unsafe,
            callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
        )
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    achieved, per_layer = kernel_sparsity(stripped, set(pruned_names))
    _check_sparsity(config, achieved, plan)
    result = PruningResult(str(output_dir), achieved, per_layer, plan, distribution.to_dict())
    save_step_model(stripped, output_dir, technique="prune", config=config, result=result.to_dict())
    return result


def _block_args(config: PruningConfig, layer, model) -> dict:
    if config.block_size == (1, 1) or not isinstance(layer, keras.layers.Dense):
        return {}
    dense_names = [candidate.name for candidate in model.layers if isinstance(candidate, keras.layers.Dense)]
    if layer.name == dense_names[-1]:
        # The head: a block drops a group of features for one output at once (MobileNetV2-0.35 lost 1.7 pt to
        # 4x1 blocks there, for no gzip gain: its weights are in convolutions).
        return {}
    kernel_shape = tuple(layer.kernel.shape)
    if any(block > size for block, size in zip(config.block_size, kernel_shape, strict=True)):
        raise ConfigError(
            f"PruningConfig.block_size: {list(config.block_size)} is larger than the kernel of Dense layer "
            f"'{layer.name}' {list(kernel_shape)}; use a smaller block_size or add '{layer.name}' to skip_layers"
        )
    return {"block_size": config.block_size}


def _check_sparsity(config: PruningConfig, achieved: float, plan: PruningSchedulePlan):
    if config.structure == SparsityStructure.TWO_OF_FOUR:
        # Kernels whose input width is not a multiple of four keep a few extra weights; judge the layers as a whole.
        floor = 0.5 - 0.1
    else:
        floor = config.target_sparsity - config.sparsity_tolerance
    if achieved < floor:
        raise OptimizationNotAchievedError(
            f"pruning reached {achieved:.1%} sparsity, below the target {config.effective_target:.0%} "
            f"(schedule: {plan.total_steps} steps, masks updated every {plan.frequency} up to step {plan.end_step}); "
            "raise epochs or mask_updates, or lower ramp_fraction"
        )
