"""TFX face of factorization: `LowRankFactorizer` (Model + Examples -> factorized, fine-tuned Keras Model)."""

from tfx.dsl.components.base import executor_spec

from edgeopt.components._shared import tfx_component as face
from edgeopt.components.factorization.config import FactorizationConfig
from edgeopt.components.factorization.core import factorize


class LowRankFactorizerSpec(face.ModelStepSpecBase):
    pass


class LowRankFactorizerExecutor(face.ModelStepExecutor):
    CONFIG_CLASS = FactorizationConfig

    def run_core(self, model_path, config, output_dir, data, input_dict):
        return factorize(model_path, config, output_dir, data=data)


class LowRankFactorizer(face.ModelStepComponent):
    """Splits Dense and 1x1 Conv2D kernels into low-rank pairs (see components/factorization/README.md).

    Example:
      factorizer = LowRankFactorizer(model=trainer.outputs["model"], examples=example_gen.outputs["examples"],
                                     config={"rank_fraction": 0.25}, module_file="trainer_module.py")
    """

    SPEC_CLASS = LowRankFactorizerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(LowRankFactorizerExecutor)
    CONFIG_CLASS = FactorizationConfig
