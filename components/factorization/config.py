"""FactorizationConfig: low-rank (SVD) factorization of Dense kernels and 1x1 convolutions, then brief fine-tuning."""

import enum

import pydantic

from edgeopt.components._shared.fine_tuning_config import FineTuningConfig


class RankSelection(enum.StrEnum):
    RANK_FRACTION = "rank_fraction"
    ENERGY = "energy"


class FactorizationConfig(FineTuningConfig):
    """Replace each selected m x n kernel W by two layers of rank r (W ~ (U_r S_r) V_r, from the SVD).

    The pair holds r * (m + n) weights instead of m * n; a layer where that would not shrink is left as it is. The
    factorized model's outputs are compared with the original's before fine-tuning.
    """

    rank_by: RankSelection = pydantic.Field(
        RankSelection.RANK_FRACTION,
        description="rank_fraction: r = rank_fraction * min(m, n); energy: the smallest r keeping `energy` of the "
        "sum of squared singular values.",
    )
    rank_fraction: float = pydantic.Field(
        0.25, gt=0, le=1, description="Share of the full rank min(m, n) kept (rank_by: rank_fraction)."
    )
    energy: float = pydantic.Field(
        0.9, gt=0, le=1, description="Share of the squared singular values kept (rank_by: energy)."
    )
    conv1x1: bool = pydantic.Field(
        True, description="Also factorize 1x1 Conv2D layers (into a 1x1 conv of r filters, then a 1x1 conv)."
    )
    skip_head: bool = pydantic.Field(
        True, description="Leave the last Dense layer (the head) whole: it is small and sets every class score."
    )
    max_output_diff: float | None = pydantic.Field(
        None,
        gt=0,
        description="Fail before fine-tuning when the factorized model's outputs differ from the original's by more "
        "than this (largest absolute difference on up to 256 training inputs); null only reports it.",
    )
    epochs: pydantic.NonNegativeInt = pydantic.Field(
        2, description="Fine-tuning epochs over the training split after factorizing (0: no fine-tuning)."
    )
    learning_rate: float = pydantic.Field(5e-4, gt=0, lt=1, description="Adam learning rate for fine-tuning.")
