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
    INT4_WEIGHT_ONLY = "int4_weight_only"
    INT4_DYNAMIC = "int4_dynamic"
    AEQ_STATIC_INT8 = "aeq_static_int8"
    AEQ_STATIC_INT16X8 = "aeq_static_int16x8"


class Granularity(enum.StrEnum):
    """How many int8 scales a kernel gets: one per output channel, or one for the whole kernel."""

    PER_CHANNEL = "per_channel"
    PER_TENSOR = "per_tensor"


DenseGranularity = Granularity  # the name dense_granularity was introduced with


class Int4Granularity(enum.StrEnum):
    CHANNELWISE = "channelwise"
    BLOCKWISE_32 = "blockwise_32"
    BLOCKWISE_64 = "blockwise_64"


#: Modes run by LiteRT's AI Edge Quantizer on the float .tflite instead of by the TFLite converter.
INT4_MODES = frozenset({QuantizationMode.INT4_WEIGHT_ONLY, QuantizationMode.INT4_DYNAMIC})
AEQ_STATIC_MODES = frozenset({QuantizationMode.AEQ_STATIC_INT8, QuantizationMode.AEQ_STATIC_INT16X8})
AEQ_MODES = INT4_MODES | AEQ_STATIC_MODES

#: Modes whose activation ranges come from a representative dataset.
CALIBRATED_MODES = frozenset(
    {QuantizationMode.FULL_INTEGER, QuantizationMode.FULL_INTEGER_INT8_IO, QuantizationMode.INT16X8} | AEQ_STATIC_MODES
)


class QuantizationConfig(StrictConfig):
    """Post-training quantization (also the final conversion of a quantization-aware-trained model)."""

    mode: QuantizationMode = pydantic.Field(
        QuantizationMode.FULL_INTEGER,
        description=(
            "dynamic_range: int8 weights, float activations; full_integer: int8 weights and activations, float I/O; "
            "full_integer_int8_io: as full_integer with int8 input and output (integer-only hardware); "
            "float16: float16 weights; int16x8: int8 weights, int16 activations; int4_weight_only: int4 weights "
            "dequantized to float before each op (AI Edge Quantizer); int4_dynamic: int4 weights, activations "
            "quantized on the fly (AI Edge Quantizer); aeq_static_int8 / aeq_static_int16x8: AI Edge Quantizer's "
            "calibrated static-range int8 weights with int8 / int16 activations (quantized I/O)."
        ),
    )
    dense_granularity: Granularity = pydantic.Field(
        Granularity.PER_CHANNEL,
        description=(
            "Scales of int8 Dense kernels. per_channel (the converter's default): one scale and zero point per output "
            "channel; per_tensor: one per kernel, 12 bytes less per output channel, and a clustered kernel's shared "
            "values stay shared (per-channel scales turn 16 clusters into dozens of int8 values). Not for float16."
        ),
    )
    conv_granularity: Granularity = pydantic.Field(
        Granularity.PER_CHANNEL,
        description=(
            "Scales of int8 Conv2D and DepthwiseConv2D kernels. per_tensor: one per kernel, so a clustered kernel "
            "keeps its few shared values and gzip shrinks it to a fraction (per_channel turns 8 clusters into "
            "hundreds of int8 values across channels); unclustered depthwise kernels often lose accuracy per "
            "tensor. The TFLite converter has one switch for every op, so per_tensor needs dense_granularity: "
            "per_tensor too. Not for float16."
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
    int16x8_layers: list[str] = pydantic.Field(
        default_factory=list,
        description=(
            "Names of Keras layers to keep in 16x8 (int8 weights, int16 activations) inside an aeq_static_int8 model; "
            "the ops that feed them emit int16 too, so their inputs are never squeezed through int8. AI Edge "
            "Quantizer sets this op by op (the TFLite converter's int16x8 is whole-model). aeq_static_int8 only."
        ),
    )
    int16x8_top_k: int = pydantic.Field(
        0,
        ge=0,
        description=(
            "Also keep in 16x8 the k layers whose 16x8 most lowers the int8 model's output error against the float "
            ".tflite (each layer tried alone on 64 calibration examples: one extra AI Edge Quantizer run per layer; "
            "int16x8_gains in layer_sensitivity.json). aeq_static_int8 only."
        ),
    )
    int4_granularity: Int4Granularity = pydantic.Field(
        Int4Granularity.CHANNELWISE,
        description=(
            "Scales of int4 weights: channelwise (one per output channel) or blockwise_32/64 (one per block of 32/64 "
            "input weights: more accurate, larger; int4_dynamic only). int4 modes only."
        ),
    )
    int8_layers: list[str] = pydantic.Field(
        default_factory=list,
        description="Keras layer names whose weights stay int8 in an int4 model (mixed int4/int8). int4 modes only.",
    )
    validation: ValidationConfig = pydantic.Field(
        default_factory=ValidationConfig, description="Checks the .tflite against the Keras model."
    )

    @pydantic.model_validator(mode="after")
    def _check_granularity(self):
        for field in ("dense_granularity", "conv_granularity"):
            if getattr(self, field) == Granularity.PER_CHANNEL:
                continue
            if self.mode == QuantizationMode.FLOAT16:
                raise ValueError(f"{field} applies to int8 weights; float16 stores no scales (remove {field})")
            if self.mode in AEQ_MODES:
                raise ValueError(
                    f"{field} sets the TFLite converter's int8 scales; AI Edge Quantizer modes "
                    f"({self.mode.value}) choose their own (remove {field})"
                )
        if self.conv_granularity == Granularity.PER_TENSOR and self.dense_granularity != Granularity.PER_TENSOR:
            raise ValueError(
                "conv_granularity: per_tensor turns per-channel scales off for every op (the TFLite converter has "
                "one switch), Dense kernels included; set dense_granularity: per_tensor too"
            )
        int4_only = self.int8_layers or self.int4_granularity != Int4Granularity.CHANNELWISE
        if int4_only and self.mode not in INT4_MODES:
            raise ValueError(
                f"int4_granularity and int8_layers apply to int4_weight_only/int4_dynamic, not {self.mode.value}; "
                "remove them or choose an int4 mode"
            )
        if self.mode == QuantizationMode.INT4_WEIGHT_ONLY and self.int4_granularity != Int4Granularity.CHANNELWISE:
            # AI Edge Quantizer 0.10 leaves every op float for weight-only blockwise (measured on the digits CNN).
            raise ValueError("blockwise int4 needs mode int4_dynamic; int4_weight_only is channelwise only")
        if self.keeps_float_layers and self.mode != QuantizationMode.FULL_INTEGER:
            raise ValueError(
                f"float_layers/float_top_k keep layers float inside a full_integer model, not {self.mode.value}; "
                "set mode: full_integer or remove them"
            )
        if self.keeps_int16x8_layers and self.mode != QuantizationMode.AEQ_STATIC_INT8:
            raise ValueError(
                f"int16x8_layers/int16x8_top_k mix 16x8 layers into an aeq_static_int8 model, not {self.mode.value} "
                "(AI Edge Quantizer sets int16 activations op by op; the TFLite converter's int16x8 is whole-model); "
                "set mode: aeq_static_int8 or remove them"
            )
        return self

    @property
    def keeps_int16x8_layers(self) -> bool:
        return bool(self.int16x8_layers or self.int16x8_top_k)

    @property
    def keeps_float_layers(self) -> bool:
        return bool(self.float_layers or self.float_top_k)

    @property
    def needs_calibration(self) -> bool:
        return self.mode in CALIBRATED_MODES
