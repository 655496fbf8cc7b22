"""TFX face of distillation: `KnowledgeDistiller` (teacher Model + Examples -> trained student Keras Model)."""

from tfx.dsl.components.base import executor_spec

from edgeopt.components._shared import tfx_component as face
from edgeopt.components.distillation.config import DistillationConfig
from edgeopt.components.distillation.core import distill


class KnowledgeDistillerSpec(face.ModelStepSpecBase):
    pass


class KnowledgeDistillerExecutor(face.ModelStepExecutor):
    CONFIG_CLASS = DistillationConfig

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802  (TFX's name)
        # student: student_fn falls back to the Trainer-style module file the step reads its data with.
        self._module_file = exec_properties.get(face.MODULE_FILE_KEY) or None
        super().Do(input_dict, output_dict, exec_properties)

    def run_core(self, model_path, config, output_dir, data, input_dict):
        return distill(model_path, config, output_dir, data=data, module_file=self._module_file)


class KnowledgeDistiller(face.ModelStepComponent):
    """Distills the Trainer's model into a smaller student (see components/distillation/README.md).

    Example:
      distiller = KnowledgeDistiller(model=trainer.outputs["model"], examples=example_gen.outputs["examples"],
                                     config={"width_multiplier": 0.5}, module_file="trainer_module.py")
    """

    SPEC_CLASS = KnowledgeDistillerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(KnowledgeDistillerExecutor)
    CONFIG_CLASS = DistillationConfig
