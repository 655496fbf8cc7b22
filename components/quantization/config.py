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


class DenseGranularity(enum.StrEnum):
    PER_CHANNEL = "per_channel"
    PER_TENSOR = "per_tensor"


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
    dense_granularity: DenseGranularity = pydantic.Field(
        DenseGranularity.PER_CHANNEL,
        description=(
            "Scales of int8 Dense kernels. per_channel (the converter's default): one scale and zero point per output "
            "channel; per_tensor: one per kernel, 12 bytes less per output channel, and a clustered kernel's shared "
            "values stay shared (per-channel scales turn 16 clusters into dozens of int8 values). Conv kernels are "
            "always per channel. Not for float16."
        ),
    )
    calibration_examples: pydantic.PositiveInt = pydantic.Field(
        200, description="Training examples used as the representative dataset for calibrated modes."
    )
    calibration_seed: int = pydantic.Field(0, description="Seed for choosing the calibration examples.")
    float_layers: list[str] = pydantic.Field(
        default_factory=list,
        description=(
            "Names of Keras layers to keep in float inside a full_integer model (selective quantization through "
            "TFLite's QuantizationDebugger); the rest stays int8. full_integer only."
        ),
    )
    float_top_k: int = pydantic.Field(
        0,
        ge=0,
        description=(
            "Also keep the k layers with the largest int8 error (RMSE/scale, layer_sensitivity.json in the output) "
            "in float. full_integer only."
        ),
    )
    validation: ValidationConfig = pydantic.Field(
        default_factory=ValidationConfig, description="Checks the .tflite against the Keras model."
    )

    @pydantic.model_validator(mode="after")
    def _check_granularity(self):
        if self.mode == QuantizationMode.FLOAT16 and self.dense_granularity != DenseGranularity.PER_CHANNEL:
            raise ValueError(
                "dense_granularity applies to int8 weights; float16 stores no scales (remove dense_granularity)"
            )
        if self.keeps_float_layers and self.mode != QuantizationMode.FULL_INTEGER:
            raise ValueError(
                f"float_layers/float_top_k keep layers float inside a full_integer model, not {self.mode.value}; "
                "set mode: full_integer or remove them"
            )
        return self

    @property
    def keeps_float_layers(self) -> bool:
        return bool(self.float_layers or self.float_top_k)

    @property
    def needs_calibration(self) -> bool:
        return self.mode in CALIBRATED_MODES
