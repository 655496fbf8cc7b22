"""Weight clustering with tfmot: wrap, fine-tune, strip, and verify each kernel holds at most k distinct values."""

import os
from dataclasses import asdict, dataclass, field

import numpy as np

from edgeopt.components._shared.data import TrainingData
from edgeopt.components._shared.distribution import training_scope
from edgeopt.components._shared.errors import OptimizationNotAchievedError
from edgeopt.components._shared.keras_bootstrap import tfmot
from edgeopt.components._shared.model_io import save_step_model
from edgeopt.components._shared.training import kernel_of, wrap_and_fine_tune
from edgeopt.components.clustering.config import CentroidInit, ClusteringConfig


@dataclass(frozen=True)
class ClusteringResult:
    model_dir: str
    max_unique_values: int
    layer_unique_values: dict[str, int] = field(default_factory=dict)
    skipped_layers: dict[str, str] = field(default_factory=dict)
    distribution: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _centroid_init(init: CentroidInit):
    return getattr(tfmot.clustering.keras.CentroidInitialization, init.name)


def _sparsity_preserving_api():
    """tfmot's sparsity-preserving clustering (PCQAT's first half).

    tfmot 0.8.1 exposes it as `tfmot.clustering.keras.experimental.cluster.cluster_weights`: the `experimental`
    package does not import its `cluster` module, so `experimental.cluster_weights` (as some docs say) fails.
    """
    from tensorflow_model_optimization.python.core.clustering.keras.experimental import cluster

    return cluster


def unique_values_per_group(kernel: np.ndarray, per_channel: bool) -> int:
    """Distinct values in a kernel, or the most in any output channel when clustered per channel."""
    if per_channel and kernel.ndim == 4:
        return max(len(np.unique(kernel[..., channel])) for channel in range(kernel.shape[-1]))
    return len(np.unique(kernel))


def too_few_weights(kernel: np.ndarray, clusters: int, per_channel: bool, preserve_sparsity: bool) -> str | None:
    """Why a kernel cannot be clustered into `clusters` values, or None: fewer weights (nonzero ones when zeros are
    preserved, per output channel when clustered per channel) than clusters."""
    groups = [kernel[..., channel] for channel in range(kernel.shape[-1])] if per_channel else [kernel]
    counted = "nonzero weights" if preserve_sparsity else "weights"
    fewest = min(int(np.count_nonzero(group)) if preserve_sparsity else group.size for group in groups)
    if fewest < clusters:
        where = " in one output channel" if per_channel else ""
        return f"{fewest} {counted}{where} < {clusters} clusters; left unclustered"
    return None


def cluster_weights(
    model_path: str | os.PathLike,
    config: ClusteringConfig,
    output_dir: str | os.PathLike,
    *,
    data: TrainingData,
    allow_unsafe: bool = False,
) -> ClusteringResult:
    """Clusters Dense and Conv2D kernels into `number_of_clusters` shared values and saves the stripped model.

    With `preserve_sparsity` (PCQAT's first half) the experimental API keeps an earlier pruning's zeros.

    Layers with fewer weights than clusters are left unclustered and listed in the result's `skipped_layers`.

    Raises:
      OptimizationNotAchievedError: a kernel holds more distinct values than clusters (nothing is written).

    Example:
      >>> cluster_weights("pruned/", ClusteringConfig(number_of_clusters=16), "clustered/", data=data)
    """
    api = _sparsity_preserving_api() if config.preserve_sparsity else tfmot.clustering.keras
    extra = {"preserve_sparsity": True} if config.preserve_sparsity else {}
    skipped = {}

    def wrap(layer, _model):
        per_channel = config.per_channel and type(layer).__name__ == "Conv2D"
        too_few = too_few_weights(kernel_of(layer), config.number_of_clusters, per_channel, config.preserve_sparsity)
        if too_few:
            # tfmot's k-means++ initialization needs at least one weight per cluster; it aborts the whole job.
            skipped[layer.name] = too_few
            return layer
        return api.cluster_weights(
            layer,
            number_of_clusters=config.number_of_clusters,
            cluster_centroids_init=_centroid_init(config.centroid_init),
            cluster_per_channel=per_channel,
            **extra,
        )

    with training_scope(config) as distribution:
        wrapped, clustered_names = wrap_and_fine_tune(
            model_path, config, data, wrap=wrap, verb="cluster", allow_unsafe=allow_unsafe
        )
    stripped = tfmot.clustering.keras.strip_clustering(wrapped)
    counts = {
        layer.name: unique_values_per_group(kernel_of(layer), config.per_channel)
        for layer in stripped.layers
        if layer.name in clustered_names
    }
    # A preserved zero is kept outside the clusters, so it may add one value.
    allowed = config.number_of_clusters + (1 if config.preserve_sparsity else 0)
    too_many = {name: count for name, count in counts.items() if count > allowed}
    if too_many:
        raise OptimizationNotAchievedError(
            f"kernels hold more than {allowed} distinct values after clustering: {too_many}; "
            "this is a tfmot bug or an unsupported layer, add the layer to skip_layers"
        )
    result = ClusteringResult(str(output_dir), max(counts.values()), counts, skipped, distribution.to_dict())
    save_step_model(stripped, output_dir, technique="cluster", config=config, result=result.to_dict())
    return result
