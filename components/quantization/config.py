"""QuantizationConfig: post-training quantization modes of the TFLite converter."""

import enum

import pydantic

from edgeopt.components._shared.config_base import StrictConfig
from edgeopt.components.export.config import ValidationConfig


class QuantizationMode(enum.StrEnum):
    DYNAMIC_RANGE = "dynamic_range"
    FULL_INTEGER = "full_integer"
    FULL_INTEGER_INT8_IO = "full_integer_int8_io"
    FLOAT16 = "float16"
    INT16X8 = "int16x8"


#: Modes whose activation ranges come from a representative dataset.
CALIBRATED_MODES = frozenset(
    {QuantizationMode.FULL_INTEGER, QuantizationMode.FULL_INTEGER_INT8_IO, QuantizationMode.INT16X8}
)


class QuantizationConfig(StrictConfig):
    """Post-training quantization (also the final conversion of a quantization-aware-trained model)."""

    mode: QuantizationMode = pydantic.Field(
        QuantizationMode.FULL_INTEGER,
        description=(
            "dynamic_range: int8 weights, float activations; full_integer: int8 weights and activations, float I/O; "
            "full_integer_int8_io: as full_integer with int8 input and output (integer-only hardware); "
            "float16: float16 weights; int16x8: int8 weights, int16 activations."
        ),
    )
    calibration_examples: pydantic.PositiveInt = pydantic.Field(
        200, description="Training examples used as the representative dataset for calibrated modes."
    )
    calibration_seed: int = pydantic.Field(0, description="Seed for choosing the calibration examples.")
    validation: ValidationConfig = pydantic.Field(
        default_factory=ValidationConfig, description="Checks the .tflite against the Keras model."
    )

    @property
    def needs_calibration(self) -> bool:
        return self.mode in CALIBRATED_MODES
