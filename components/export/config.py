"""ExportConfig: how a Keras model becomes a .tflite file, and how the result is checked against the Keras model."""

import pydantic

from edgeopt.components._shared.config_base import StrictConfig


class ValidationConfig(StrictConfig):
    """How the converted model is checked: both models run on the same evaluation inputs."""

    num_examples: pydantic.PositiveInt = pydantic.Field(
        128, description="Evaluation examples fed to both the Keras and the TFLite model."
    )
    min_top1_agreement: float = pydantic.Field(
        0.9, ge=0, le=1, description="Fail when fewer predictions than this share agree on the top-1 class."
    )
    max_abs_diff: float | None = pydantic.Field(
        None, gt=0, description="Fail when an output differs by more than this (unset: not checked)."
    )


class ExportConfig(StrictConfig):
    """Float32 TFLite export of a Keras model (after pruning or clustering, for example), checked against Keras."""

    validation: ValidationConfig = pydantic.Field(
        default_factory=lambda: ValidationConfig(max_abs_diff=1e-3),
        description="Checks the .tflite against the Keras model; float export should match it closely.",
    )
