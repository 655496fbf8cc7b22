"""DistillationConfig: train a smaller student on the teacher's temperature-softened outputs plus the hard labels."""

import enum

import pydantic

from edgeopt.components._shared.fine_tuning_config import FineTuningConfig


class StudentSource(enum.StrEnum):
    WIDTH = "width"
    SAVED_MODEL = "saved_model"
    STUDENT_FN = "student_fn"


class TeacherOutputs(enum.StrEnum):
    CACHED = "cached"
    ON_THE_FLY = "on_the_fly"


class DistillationConfig(FineTuningConfig):
    """Distill the input model (the teacher, frozen) into a student; the saved result is the plain student.

    Loss = alpha * hard-label cross-entropy + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T)).
    A teacher or student ending in softmax is turned back into logits (log of the probabilities) first. A regressor
    (task: regression) distills the teacher's outputs directly: alpha * MSE(labels) + (1 - alpha) * MSE(teacher).
    """

    student: StudentSource = pydantic.Field(
        StudentSource.WIDTH,
        description="width: the teacher rebuilt with every Dense/Conv2D width times width_multiplier (the head keeps "
        "its width), freshly initialized; saved_model: the model at student_model_path; student_fn: "
        "student_fn() from student_module (or the component's module_file).",
    )
    width_multiplier: float = pydantic.Field(
        0.5, gt=0, le=1, description="Width factor of the student's Dense units and Conv2D filters (student: width)."
    )
    student_model_path: str | None = pydantic.Field(
        None, description="SavedModel folder or .keras file of the student (student: saved_model)."
    )
    student_module: str | None = pydantic.Field(
        None,
        description="Python file or import name defining student_fn() -> an uncompiled Keras model (student: "
        "student_fn); when unset, the module_file given to the step.",
    )
    alpha: float = pydantic.Field(
        0.1, ge=0, le=1, description="Weight of the hard-label loss; 1 - alpha weighs the soft-target loss."
    )
    temperature: float = pydantic.Field(4.0, gt=0, description="Softmax temperature T of the soft targets.")
    teacher_outputs: TeacherOutputs = pydantic.Field(
        TeacherOutputs.CACHED,
        description="cached: the teacher runs once over the training split (small splits); on_the_fly: on every "
        "batch (large splits, or augmenting input_fns).",
    )
    epochs: pydantic.PositiveInt = pydantic.Field(15, description="Training epochs of the student.")
    learning_rate: float = pydantic.Field(1e-3, gt=0, lt=1, description="Adam learning rate of the student.")
    skip_layers: list[str] = pydantic.Field(
        default_factory=list, description="Names of layers that keep their width in a width-scaled student."
    )

    @pydantic.model_validator(mode="after")
    def _check_student(self):
        if self.student == StudentSource.SAVED_MODEL and not self.student_model_path:
            raise ValueError("student: saved_model needs student_model_path (the student's SavedModel or .keras)")
        if self.student != StudentSource.SAVED_MODEL and self.student_model_path:
            raise ValueError(f"student_model_path is only read with student: saved_model, not {self.student.value}")
        if self.student != StudentSource.STUDENT_FN and self.student_module:
            raise ValueError(f"student_module is only read with student: student_fn, not {self.student.value}")
        return self
