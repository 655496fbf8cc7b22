"""TFX face of pruning: `Pruner` (Model + Examples -> pruned, stripped Keras Model)."""

from tfx.dsl.components.base import executor_spec

from edgeopt.components._shared import tfx_component as face
from edgeopt.components.pruning.config import PruningConfig
from edgeopt.components.pruning.core import prune


class PrunerSpec(face.ModelStepSpecBase):
    pass


class PrunerExecutor(face.ModelStepExecutor):
    CONFIG_CLASS = PruningConfig

    def run_core(self, model_path, config, output_dir, data, input_dict):
        return prune(model_path, config, output_dir, data=data)


class Pruner(face.ModelStepComponent):
    """Prunes the Trainer's model to a target sparsity (see components/pruning/README.md).

    Example:
      pruner = Pruner(model=trainer.outputs["model"], examples=example_gen.outputs["examples"],
                      config={"target_sparsity": 0.8}, module_file="trainer_module.py")
    """

    SPEC_CLASS = PrunerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(PrunerExecutor)
    CONFIG_CLASS = PruningConfig
