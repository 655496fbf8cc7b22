"""QatConfig: quantization-aware training, of the whole model or of selected layers, plain or preserving an earlier
pruning or clustering step (PQAT, CQAT, PCQAT)."""

import enum

import pydantic

from edgeopt.components._shared.fine_tuning_config import FineTuningConfig


class QatScheme(enum.StrEnum):
    DEFAULT = "default"
    PRUNE_PRESERVE = "prune_preserve"
    CLUSTER_PRESERVE = "cluster_preserve"
    SPARSE_CLUSTER_PRESERVE = "sparse_cluster_preserve"


class QatConfig(FineTuningConfig):
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
    skip_layers: list[str] = pydantic.Field(
        default_factory=list, description="Names of layers left in float (not annotated for quantization)."
    )

    @pydantic.model_validator(mode="after")
    def _check_selection(self):
        if self.scheme != QatScheme.DEFAULT and (self.layer_types or self.layer_names or self.skip_layers):
            raise ValueError(
                f"scheme {self.scheme.value} quantizes the whole model; "
                "leave layer_types, layer_names and skip_layers empty"
            )
        return self
