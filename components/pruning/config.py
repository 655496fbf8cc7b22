"""PruningConfig: magnitude pruning to a target sparsity, unstructured or 2:4 structured."""

import enum

import pydantic

from edgeopt.components._shared.fine_tuning_config import FineTuningConfig


class PruningSchedule(enum.StrEnum):
    POLYNOMIAL_DECAY = "polynomial_decay"
    CONSTANT = "constant"


class SparsityStructure(enum.StrEnum):
    UNSTRUCTURED = "unstructured"
    TWO_OF_FOUR = "2:4"


class PruningConfig(FineTuningConfig):
    """Prune Dense and Conv2D kernels while fine-tuning; wrappers are stripped before the model is saved.

    The schedule's begin, end and update frequency are derived from the real number of training steps, so short
    fine-tuning runs still reach the target (tfmot's default frequency of 100 steps silently prunes nothing on
    small data sets).
    """

    target_sparsity: float = pydantic.Field(
        0.8, gt=0, lt=1, description="Share of kernel weights set to zero at the end (ignored for 2:4, always 0.5)."
    )
    initial_sparsity: float = pydantic.Field(
        0.0, ge=0, lt=1, description="Sparsity at the first pruning step (polynomial_decay only)."
    )
    schedule: PruningSchedule = pydantic.Field(
        PruningSchedule.POLYNOMIAL_DECAY,
        description="polynomial_decay: ramp from initial to target sparsity; constant: target from the first step.",
    )
    structure: SparsityStructure = pydantic.Field(
        SparsityStructure.UNSTRUCTURED,
        description="unstructured, or 2:4 (two zeros in every group of four input weights, for sparse hardware).",
    )
    block_size: tuple[pydantic.PositiveInt, pydantic.PositiveInt] = pydantic.Field(
        (1, 1),
        description=(
            "Dense kernels are pruned in blocks of (input rows, output columns) that are zero together; Conv2D kernels "
            "(tfmot supports blocks on 2-D weights only) and the last Dense layer, the head, stay unstructured. "
            "TFLite stores a Dense kernel transposed, so a (4, 1) block is four consecutive zero bytes in the "
            ".tflite: runs gzip codes far better than scattered zeros. (1, 1) is unstructured; unstructured only."
        ),
    )
    min_layer_weights: int = pydantic.Field(
        0,
        ge=0,
        description=(
            "Layers whose kernel has fewer weights stay dense: small layers (a network's first convolutions, "
            "narrow projections) are the most sensitive and hold few bytes. target_sparsity applies to the layers "
            "pruned. 0 prunes every Dense and Conv2D layer not in skip_layers."
        ),
    )
    ramp_fraction: float = pydantic.Field(
        0.7, gt=0, le=1, description="Share of the training steps over which sparsity ramps up; the rest recovers."
    )
    mask_updates: pydantic.PositiveInt = pydantic.Field(
        10, description="How many times the masks are updated during the ramp (sets the schedule's frequency)."
    )
    sparsity_tolerance: float = pydantic.Field(
        0.02, ge=0, lt=1, description="Fail when the achieved sparsity is below target minus this."
    )
    epochs: pydantic.PositiveInt = pydantic.Field(4, description="Fine-tuning epochs over the training split.")

    @pydantic.model_validator(mode="after")
    def _check_schedule(self):
        if self.initial_sparsity >= self.target_sparsity and self.structure == SparsityStructure.UNSTRUCTURED:
            raise ValueError(
                f"initial_sparsity {self.initial_sparsity} must be below target_sparsity {self.target_sparsity}"
            )
        if self.block_size != (1, 1) and self.structure != SparsityStructure.UNSTRUCTURED:
            raise ValueError(
                f"block_size {list(self.block_size)} cannot be combined with structure {self.structure.value}; "
                "use one of them (block_size needs structure: unstructured)"
            )
        return self

    @property
    def effective_target(self) -> float:
        return 0.5 if self.structure == SparsityStructure.TWO_OF_FOUR else self.target_sparsity
