"""TFX face of clustering: `WeightClusterer` (Model + Examples -> clustered, stripped Keras Model)."""

from tfx.dsl.components.base import executor_spec

from edgeopt.components._shared import tfx_component as face
from edgeopt.components.clustering.config import ClusteringConfig
from edgeopt.components.clustering.core import cluster_weights


class WeightClustererSpec(face.ModelStepSpecBase):
    pass


class WeightClustererExecutor(face.ModelStepExecutor):
    CONFIG_CLASS = ClusteringConfig

    def run_core(self, model_path, config, output_dir, data, input_dict):
        return cluster_weights(model_path, config, output_dir, data=data)


class WeightClusterer(face.ModelStepComponent):
    """Clusters each kernel's weights into a few shared values (see components/clustering/README.md)."""

    SPEC_CLASS = WeightClustererSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(WeightClustererExecutor)
    CONFIG_CLASS = ClusteringConfig
