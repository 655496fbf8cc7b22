"""KFP face of pruning: `prune` (Model + Dataset -> pruned Keras Model)."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from edgeopt.components._shared.kfp_component import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def prune(
    model: Input[Model],
    examples: Input[Dataset],
    pruned_model: Output[Model],
    metrics: Output[Metrics],
    config: Optional[dict] = None,
    data_spec: Optional[dict] = None,
    module_file: str = "",
):
    """Prunes Dense and Conv2D kernels to a target sparsity (config: PruningConfig, components/pruning/README.md)."""
    from edgeopt.components._shared.kfp_runtime import artifact_metadata, training_data
    from edgeopt.components.pruning.config import PruningConfig
    from edgeopt.components.pruning.core import prune as run_prune

    settings = PruningConfig.from_dict(config)
    data = training_data(examples.path, data_spec, module_file)
    result = run_prune(model.path, settings, pruned_model.path, data=data)
    pruned_model.metadata.update(artifact_metadata(settings, result.to_dict()))
    metrics.log_metric("achieved_sparsity", result.achieved_sparsity)
