"""Knowledge distillation: a frozen teacher's softened outputs and the hard labels train a smaller student."""

import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field

from edgeopt.components._shared.console import keras_verbosity
from edgeopt.components._shared.data import TrainingData, load_module
from edgeopt.components._shared.distribution import training_scope
from edgeopt.components._shared.errors import ConfigError, DataError, UnsupportedModelError
from edgeopt.components._shared.keras_bootstrap import keras, tf
from edgeopt.components._shared.model_io import load_keras_model, save_step_model
from edgeopt.components._shared.tasks import Task
from edgeopt.components._shared.topology import rebuild, require_rebuildable
from edgeopt.components._shared.training import model_inputs, outputs_probabilities, set_seeds
from edgeopt.components.distillation.config import DistillationConfig, StudentSource, TeacherOutputs

logger = logging.getLogger(__name__)

SCALED_LAYER_TYPES = ("Dense", "Conv2D")
#: Probabilities are clipped here before the log that turns them into logits (log 0 is -inf).
PROBABILITY_FLOOR = 1e-7


@dataclass(frozen=True)
class DistillationResult:
    model_dir: str
    student_source: str
    teacher_params: int
    student_params: int
    param_ratio: float
    train_accuracy: float | None  # None for a regressor
    final_loss: float
    #: Layer name -> (teacher width, student width), for students built by width scaling.
    scaled_layers: dict[str, list[int]] = field(default_factory=dict)
    distribution: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def as_logits(outputs, probabilities: bool):
    """Logits from a model's outputs: log-probabilities differ from the logits by a constant, softmax ignores it."""
    return tf.math.log(tf.clip_by_value(outputs, PROBABILITY_FLOOR, 1.0)) if probabilities else outputs


def distillation_loss(labels, student_logits, teacher_logits, *, alpha: float, temperature: float):
    """alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T)).

    T^2 keeps the soft term's gradients on the scale of the hard term's as T grows (Hinton et al., 2015). Labels are
    class ids, or one-hot rows.
    """
    if labels.shape.rank is not None and labels.shape.rank > 1:
        hard = keras.losses.categorical_crossentropy(labels, student_logits, from_logits=True)
    else:
        hard = keras.losses.sparse_categorical_crossentropy(labels, student_logits, from_logits=True)
    teacher_log_soft = tf.nn.log_softmax(teacher_logits / temperature)
    student_log_soft = tf.nn.log_softmax(student_logits / temperature)
    soft = tf.reduce_sum(tf.exp(teacher_log_soft) * (teacher_log_soft - student_log_soft), axis=-1)
    return alpha * tf.reduce_mean(hard) + (1.0 - alpha) * temperature**2 * tf.reduce_mean(soft)


def regression_distillation_loss(targets, student_outputs, teacher_outputs, *, alpha: float):
    """alpha * MSE(targets, student) + (1 - alpha) * MSE(teacher, student): a regressor's outputs are the soft
    targets themselves, with no temperature."""
    targets = tf.reshape(tf.cast(targets, student_outputs.dtype), tf.shape(student_outputs))
    hard = tf.reduce_mean(tf.square(targets - student_outputs))
    soft = tf.reduce_mean(tf.square(teacher_outputs - student_outputs))
    return alpha * hard + (1.0 - alpha) * soft


class Distiller(keras.Model):
    """Trains `student` against a frozen `teacher`; calling it calls the student.

    Fit it on (inputs, (labels, teacher_outputs)) with cached teacher outputs, or on (inputs, labels) otherwise.
    A classifier's outputs are compared as logits (`teacher_outputs` are the teacher's logits), a regressor's as
    they are.
    """

    def __init__(self, student, teacher, *, alpha: float, temperature: float, cached: bool, regression: bool = False):
        super().__init__()
        self.student, self.teacher = student, teacher
        self.teacher.trainable = False
        self.alpha, self.temperature, self.cached, self.regression = alpha, temperature, cached, regression
        self.student_probabilities = not regression and outputs_probabilities(student)
        self.teacher_probabilities = not regression and outputs_probabilities(teacher)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = (
            keras.metrics.MeanAbsoluteError(name="mae") if regression else keras.metrics.Accuracy(name="accuracy")
        )

    def teacher_outputs(self, inputs):
        return as_logits(self.teacher(inputs, training=False), self.teacher_probabilities)

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def train_step(self, data):
        inputs, targets = data
        if self.cached:
            labels, teacher_logits = targets
        else:
            labels = targets
            teacher_logits = self.teacher_outputs(inputs)
        with tf.GradientTape() as tape:
            student_logits = as_logits(self.student(inputs, training=True), self.student_probabilities)
            if self.regression:
                loss = regression_distillation_loss(labels, student_logits, teacher_logits, alpha=self.alpha)
            else:
                loss = distillation_loss(
                    labels, student_logits, teacher_logits, alpha=self.alpha, temperature=self.temperature
                )
            if self.student.losses:
                loss += tf.add_n(self.student.losses)
            # apply_gradients sums the replicas' gradients: scale each replica's mean loss to its share (as Keras
            # does for a compiled loss), so N replicas take the step one device would.
            replica_loss = loss / tf.distribute.get_replica_context().num_replicas_in_sync
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(replica_loss, variables), variables, strict=True))
        self.loss_tracker.update_state(loss)
        if self.regression:
            self.accuracy_tracker.update_state(tf.reshape(labels, tf.shape(student_logits)), student_logits)
        else:
            classes = tf.argmax(labels, -1) if labels.shape.rank > 1 else labels
            self.accuracy_tracker.update_state(classes, tf.argmax(student_logits, -1))
        return {metric.name: metric.result() for metric in self.metrics}


def scale_width(teacher, width_multiplier: float, skip_layers=()):
    """The teacher's architecture with every Dense/Conv2D width scaled, freshly initialized; the head (the last such
    layer) and `skip_layers` keep their width. Returns the student and {layer: [teacher, student] width}."""
    require_rebuildable(teacher, "distill with student: width", "student: saved_model or student: student_fn")
    scalable = [layer.name for layer in teacher.layers if type(layer).__name__ in SCALED_LAYER_TYPES]
    head = scalable[-1] if scalable else None
    widths = {}

    def replace(layer):
        if layer.name not in scalable or layer.name == head or layer.name in skip_layers:
            return None
        settings = layer.get_config()
        key = "units" if "units" in settings else "filters"
        widths[layer.name] = [settings[key], max(1, int(round(settings[key] * width_multiplier)))]
        return [(type(layer).__name__, dict(settings, **{key: widths[layer.name][1]}))]

    try:
        student, _ = rebuild(teacher, replace)
    except (ValueError, TypeError) as err:
        raise UnsupportedModelError(
            f"the teacher could not be rebuilt at width {width_multiplier} ({err}); a layer with a fixed shape "
            "(Reshape, a skip connection to the input) depends on a scaled width: pass student: saved_model or "
            "student: student_fn"
        ) from err
    return student, widths


def _import_student_fn(module: str):
    try:
        loaded = load_module(module)
    except DataError as err:
        raise ConfigError(f"DistillationConfig.student_module: {err}; pass a Python file or module name") from err
    student_fn = getattr(loaded, "student_fn", None)
    if not callable(student_fn):
        raise ConfigError(f"{module} defines no student_fn(); add one returning the (uncompiled) student model")
    return student_fn


def build_student(teacher, config: DistillationConfig, *, module_file: str | None, allow_unsafe: bool):
    """The student the config names, checked to take the teacher's inputs and give its number of outputs."""
    widths = {}
    if config.student == StudentSource.WIDTH:
        student, widths = scale_width(teacher, config.width_multiplier, config.skip_layers)
    elif config.student == StudentSource.SAVED_MODEL:
        student = load_keras_model(config.student_model_path, allow_unsafe=allow_unsafe)
    else:
        module = config.student_module or module_file
        if not module:
            raise ConfigError("student: student_fn needs student_module in the config or the step's module_file")
        student = _import_student_fn(str(module))()
        if not isinstance(student, keras.Model):
            raise ConfigError(f"student_fn() in {module} returned {type(student).__name__}, not a tf.keras Model")
    if tuple(student.output_shape) != tuple(teacher.output_shape) or (
        tuple(student.input_shape) != tuple(teacher.input_shape)
    ):
        raise ConfigError(
            f"the student maps {student.input_shape} -> {student.output_shape} but the teacher "
            f"{teacher.input_shape} -> {teacher.output_shape}; build the student with the teacher's input and output"
        )
    return student, widths


def _distilled_task(data: TrainingData) -> bool:
    """True for a regressor; classification distills softened logits; binary and multilabel are refused."""
    if data.task.task in (Task.BINARY, Task.MULTILABEL):
        raise UnsupportedModelError(
            f"distill supports classification (softened logits) and regression (the teacher's outputs), not "
            f"{data.task.task.value} tasks; use prune, cluster or quantize for this model"
        )
    return data.task.task == Task.REGRESSION


def distill(
    model_path: str | os.PathLike,
    config: DistillationConfig,
    output_dir: str | os.PathLike,
    *,
    data: TrainingData,
    module_file: str | None = None,
    allow_unsafe: bool = False,
) -> DistillationResult:
    """Trains a student on the teacher's softened outputs and the labels, and saves the student.

    Args:
      model_path: the teacher, a SavedModel folder or .keras file; never modified.
      config: where the student comes from, alpha, temperature and training settings.
      output_dir: receives the student SavedModel (with edgeopt_step.json), atomically.
      data: the training split trains the student.
      module_file: the step's module file, where student: student_fn looks when student_module is unset.

    Raises:
      UnsupportedModelError: width scaling of a subclassed teacher or one of non-standard layers (before any work).
      ConfigError: no student_fn, or a student whose inputs or outputs differ from the teacher's.

    Example (the demo's digits CNN, 283,786 parameters; the student has 71,754):
      >>> round(distill("model/", DistillationConfig(width_multiplier=0.5), "student/", data=data).param_ratio, 2)
      0.25
    """
    with training_scope(config) as distribution:
        teacher = load_keras_model(model_path, allow_unsafe=allow_unsafe)
        set_seeds(config.seed)
        student, widths = build_student(teacher, config, module_file=module_file, allow_unsafe=allow_unsafe)
        regression = _distilled_task(data)
        cached = config.teacher_outputs == TeacherOutputs.CACHED
        distiller = Distiller(
            student, teacher, alpha=config.alpha, temperature=config.temperature, cached=cached, regression=regression
        )
        distiller.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
        narrow = model_inputs(teacher)

        def with_teacher_outputs(inputs, labels):
            inputs, _ = narrow(inputs, labels)
            return inputs, (labels, distiller.teacher_outputs(inputs))

        with tempfile.TemporaryDirectory(prefix="edgeopt-distill-") as cache_dir:
            dataset = data.training_dataset(
                config.batch_size,
                seed=config.seed,
                shuffle_buffer=config.shuffle_buffer,
                annotate=with_teacher_outputs if cached else None,
                cache_file=os.path.join(cache_dir, "teacher") if cached else None,
            )
            history = distiller.fit(
                dataset if cached else dataset.map(narrow),
                epochs=config.epochs,
                steps_per_epoch=data.steps_per_epoch(config.batch_size, config.steps_per_epoch),
                verbose=keras_verbosity(),
            )
    result = DistillationResult(
        model_dir=str(output_dir),
        student_source=config.student.value,
        teacher_params=int(teacher.count_params()),
        student_params=int(student.count_params()),
        param_ratio=student.count_params() / teacher.count_params(),
        train_accuracy=None if regression else float(history.history["accuracy"][-1]),
        final_loss=float(history.history["loss"][-1]),
        scaled_layers=widths,
        distribution=distribution.to_dict(),
    )
    logger.info("distilled into %d parameters (%.1f%% of the teacher)", result.student_params, 100 * result.param_ratio)
    save_step_model(student, output_dir, technique="distill", config=config, result=result.to_dict())
    return result
