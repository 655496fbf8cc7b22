"""KFP face of clustering: `cluster_weights` (Model + Dataset -> clustered Keras Model)."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from edgeopt.components._shared.kfp_component import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def cluster_weights(
    model: Input[Model],
    examples: Input[Dataset],
    clustered_model: Output[Model],
    metrics: Output[Metrics],
    config: Optional[dict] = None,
    data_spec: Optional[dict] = None,
    module_file: str = "",
):
    """Clusters kernels into shared values (config: ClusteringConfig, components/clustering/README.md)."""
    from edgeopt.components._shared.kfp_runtime import artifact_metadata, training_data
    from edgeopt.components.clustering.config import ClusteringConfig
    from edgeopt.components.clustering.core import cluster_weights as run_clustering

    settings = ClusteringConfig.from_dict(config)
    data = training_data(examples.path, data_spec, module_file)
    result = run_clustering(model.path, settings, clustered_model.path, data=data)
    clustered_model.metadata.update(artifact_metadata(settings, result.to_dict()))
    metrics.log_metric("max_unique_values", result.max_unique_values)
