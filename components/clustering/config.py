"""ClusteringConfig: weight clustering (weight sharing) of Dense and Conv2D kernels."""

import enum

import pydantic

from edgeopt.components._shared.fine_tuning_config import FineTuningConfig


class CentroidInit(enum.StrEnum):
    KMEANS_PLUS_PLUS = "kmeans_plus_plus"
    LINEAR = "linear"
    DENSITY_BASED = "density_based"
    RANDOM = "random"


class ClusteringConfig(FineTuningConfig):
    """Cluster each kernel's weights into a few shared values, fine-tune, and strip the wrappers."""

    number_of_clusters: int = pydantic.Field(16, ge=2, le=256, description="Unique values per kernel (or channel).")
    centroid_init: CentroidInit = pydantic.Field(
        CentroidInit.KMEANS_PLUS_PLUS, description="How the initial centroids are placed."
    )
    per_channel: bool = pydantic.Field(
        False, description="Cluster each output channel of Conv2D kernels separately (more values, better accuracy)."
    )
    preserve_sparsity: bool = pydantic.Field(False, description="Keep an earlier pruning's zeros (needed for PCQAT).")
    learning_rate: float = pydantic.Field(1e-5, gt=0, lt=1, description="Adam learning rate for fine-tuning.")

    @pydantic.model_validator(mode="after")
    def _check_sparsity_clusters(self):
        # tfmot reserves one cluster for the preserved zeros and refuses <= 2 clusters at wrap time, after training
        # has been set up; the same rule here makes `edgeopt validate` and every face refuse it up front.
        if self.preserve_sparsity and self.number_of_clusters <= 2:
            raise ValueError(
                f"number_of_clusters {self.number_of_clusters} with preserve_sparsity leaves no cluster beside the "
                "preserved zeros; use number_of_clusters >= 3"
            )
        return self
