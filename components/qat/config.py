"""QatConfig: quantization-aware training, of the whole model or of selected layers, plain or preserving an earlier
pruning or clustering step (PQAT, CQAT, PCQAT)."""

import enum

import pydantic

from edgeopt.components._shared.config_base import StrictConfig


class QatScheme(enum.StrEnum):
    DEFAULT = "default"
    PRUNE_PRESERVE = "prune_preserve"
    CLUSTER_PRESERVE = "cluster_preserve"
    SPARSE_CLUSTER_PRESERVE = "sparse_cluster_preserve"


class QatConfig(StrictConfig):
    """Quantization-aware fine-tuning; the result is converted by a following `quantize` step."""

    scheme: QatScheme = pydantic.Field(
        QatScheme.DEFAULT,
        description=(
            "default: plain QAT; prune_preserve: PQAT, keeps an earlier pruning's zeros; cluster_preserve: CQAT, "
            "keeps an earlier clustering's centroids; sparse_cluster_preserve: PCQAT, keeps both."
        ),
    )
    layer_types: list[str] = pydantic.Field(
        default_factory=list, description="Quantize only layers of these Keras classes, e.g. [Dense] (empty: all)."
    )
    layer_names: list[str] = pydantic.Field(
        default_factory=list, description="Quantize only layers with these names (empty: all)."
    )
    epochs: pydantic.PositiveInt = pydantic.Field(2, description="Fine-tuning epochs over the training split.")
    batch_size: pydantic.PositiveInt = pydantic.Field(32, description="Fine-tuning batch size.")
    learning_rate: float = pydantic.Field(1e-4, gt=0, lt=1, description="Adam learning rate for fine-tuning.")
    seed: int = pydantic.Field(0, description="Seed for TensorFlow, NumPy and Python randomness during fine-tuning.")

    @pydantic.model_validator(mode="after")
    def _check_selection(self):
        if self.scheme != QatScheme.DEFAULT and (self.layer_types or self.layer_names):
            raise ValueError(
                f"scheme {self.scheme.value} quantizes the whole model; leave layer_types and layer_names empty"
            )
        return self
