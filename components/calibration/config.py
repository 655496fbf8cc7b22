"""CalibrationConfig: how the representative dataset for post-training quantization is sampled."""

import enum

import pydantic

from edgeopt.components._shared.config_base import StrictConfig


class Stratification(enum.StrEnum):
    PROPORTIONAL = "proportional"
    BALANCED = "balanced"


class CalibrationConfig(StrictConfig):
    """A fixed-size, seeded, stratified sample of tf.Example records (or CSV rows), chosen by hash so the same seed
    and input give byte-identical output whatever the runner's parallelism."""

    size: pydantic.PositiveInt = pydantic.Field(300, description="Number of examples to select (N).")
    seed: int = pydantic.Field(0, description="Seed of the hash that orders examples; same seed, same sample.")
    label_key: str | None = pydantic.Field(
        None, description="Integer label feature to stratify by (unset: one stratum, no stratification)."
    )
    stratification: Stratification = pydantic.Field(
        Stratification.PROPORTIONAL,
        description="proportional: each class as often as in the source; balanced: the same count per class.",
    )
    splits: list[str] = pydantic.Field(
        default_factory=lambda: ["train"], min_length=1, description="Split folders (Split-NAME) to sample from."
    )
    take_all_if_smaller: bool = pydantic.Field(
        False,
        description="When the source holds fewer than `size` valid examples, take them all (else fail).",
    )

    @pydantic.field_validator("splits")
    @classmethod
    def _unique_splits(cls, splits):
        if len(set(splits)) != len(splits):
            raise ValueError(f"splits must be unique, got {splits}")
        return splits
