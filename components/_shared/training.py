"""Fine-tuning shared by pruning, clustering and QAT: seeded, with the loss of the data's task."""

import contextlib
import contextvars
import logging
import random

import numpy as np

from edgeopt.components._shared.console import keras_verbosity
from edgeopt.components._shared.data import TrainingData
from edgeopt.components._shared.errors import DataError, OptimizationNotAchievedError
from edgeopt.components._shared.fine_tuning_config import FineTuningConfig
from edgeopt.components._shared.finite import StopOnNonFiniteLoss
from edgeopt.components._shared.keras_bootstrap import keras, tf
from edgeopt.components._shared.model_io import load_keras_model
from edgeopt.components._shared.tasks import Task, TaskSpec, match_output_name

logger = logging.getLogger(__name__)

PRUNABLE_LAYER_TYPES = ("Dense", "Conv2D")
# Callbacks a caller adds to every fine_tune inside `extra_fit_callbacks` (the search's per-epoch pruning reports),
# without every technique's signature carrying them.
_EXTRA_CALLBACKS = contextvars.ContextVar("edgeopt_extra_fit_callbacks", default=())


@contextlib.contextmanager
def extra_fit_callbacks(callbacks):
    """Adds Keras `callbacks` to every `fine_tune` (prune, cluster, QAT) run inside the block."""
    token = _EXTRA_CALLBACKS.set(tuple(callbacks))
    try:
        yield
    finally:
        _EXTRA_CALLBACKS.reset(token)


def set_seeds(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    keras.utils.set_random_seed(seed)


def _activation_name(layer) -> str:
    layer = getattr(layer, "layer", layer)  # tfmot wrappers hold the user's layer
    if type(layer).__name__ == "Softmax":
        return "softmax"
    activation = getattr(layer, "activation", None)
    activation = getattr(activation, "activation", activation)  # QAT's QuantizeAwareActivation holds the original
    return getattr(activation, "__name__", "")


def outputs_probabilities(model, output: str | None = None) -> bool:
    """True when the output (by name; default the last layer) ends in a softmax or sigmoid, so the loss must not
    apply one again."""
    layer = model.layers[-1]
    if output is not None:
        name = match_output_name(list(model.output_names), output)
        layer = model.get_layer(name) if name is not None else layer
    return _activation_name(layer) in ("softmax", "sigmoid")


def saved_loss(model_path):
    """The loss the model was compiled with when it was saved (a built-in Keras loss, by name or config), read from
    the saved training config without deserializing the model; None when it was saved uncompiled, with a custom or
    per-output loss, or in a format without one."""
    from edgeopt.components._shared.model_format import saved_training_loss_config

    config = saved_training_loss_config(model_path)
    if not isinstance(config, str | dict) or (isinstance(config, dict) and "class_name" not in config):
        return None
    try:
        return keras.losses.get(config)
    except (ValueError, TypeError) as err:  # a custom loss: fine-tuning falls back to the task's loss
        logger.info("the saved loss %s is not a built-in Keras loss (%s); using the task's loss", config, err)
        return None


def task_loss(task: TaskSpec, one_hot: bool, *, from_logits: bool, compiled=None):
    """The fine-tuning loss: the module's loss_fn; else, when the data declares no task, the loss the model was
    saved compiled with (`compiled`); else the task's (classification: sparse or, for one-hot labels, categorical
    cross-entropy; binary and multilabel: binary cross-entropy; regression: mean squared error)."""
    if task.loss_fn is not None:
        return task.loss_fn
    if compiled is not None and not task.declared:
        return compiled
    if task.task == Task.CLASSIFICATION:
        if one_hot:
            return keras.losses.CategoricalCrossentropy(from_logits=from_logits)
        return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    if task.task in (Task.BINARY, Task.MULTILABEL):
        return keras.losses.BinaryCrossentropy(from_logits=from_logits)
    return keras.losses.MeanSquaredError()


def _metric_output(model, task: TaskSpec) -> str | None:
    """The name the (possibly wrapped) model gives the output the labels belong to; None for one output."""
    names = list(model.output_names)
    if len(names) == 1:
        return None
    if task.output is None:
        raise DataError(f"the model has outputs {names}; name the one the labels belong to as `output`")
    found = match_output_name(names, task.output)
    if found is None:
        raise DataError(f"the model has no output '{task.output}'; its outputs are {names}")
    return found


def model_inputs(keras_model):
    """In-graph map narrowing a dict of inputs to the model's (a TFX input_fn may yield more features), or to the
    array of a single-input model; the streamed counterpart of `data.keras_inputs`."""
    names = list(keras_model.input_names)

    def narrow(inputs, targets):
        if not isinstance(inputs, dict):
            return inputs, targets
        if len(names) == 1 and len(inputs) == 1:
            return next(iter(inputs.values())), targets
        missing = [name for name in names if name not in inputs]
        if missing:
            raise DataError(f"the model needs inputs {missing}, which the data does not give (it has {list(inputs)})")
        return {name: inputs[name] for name in names}, targets

    return narrow


def fine_tune(
    model,
    data: TrainingData,
    config: FineTuningConfig,
    *,
    from_logits: bool,
    callbacks=(),
    compiled_loss=None,
):
    """Compiles `model` with the loss of the data's task (or `compiled_loss`, the one the model was saved with, when
    the data declares no task: see `task_loss`) and fits it on the streamed training split for the config's epochs,
    batch size, learning rate, shuffle buffer and steps per epoch.

    `from_logits` is the caller's reading of a single-output model; for several outputs only the metric's output
    is trained against the labels (the others get no loss), with from_logits read from that output's layer.
    """
    output = _metric_output(model, data.task)
    if output is not None:
        from_logits = not outputs_probabilities(model, output)
    dataset = data.training_dataset(config.batch_size, seed=config.seed, shuffle_buffer=config.shuffle_buffer)
    one_hot = dataset.element_spec[1].shape.rank > 1
    loss = task_loss(data.task, one_hot, from_logits=from_logits, compiled=compiled_loss if output is None else None)
    dataset = dataset.map(model_inputs(model))
    if output is not None:
        dataset = dataset.map(lambda inputs, labels: (inputs, {output: labels}))
    metric = "accuracy"  # callers read history["accuracy"]; for a regressor it is Keras' exact-match accuracy
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=loss if output is None else {output: loss},
        metrics=[metric] if output is None else {output: [metric]},
    )
    try:
        model.fit(
            dataset,
            epochs=config.epochs,
            steps_per_epoch=data.steps_per_epoch(config.batch_size, config.steps_per_epoch),
            callbacks=[StopOnNonFiniteLoss(), *callbacks, *_EXTRA_CALLBACKS.get()],
            verbose=keras_verbosity(),
        )
    except tf.errors.InvalidArgumentError as err:
        reason = next((line for line in err.message.splitlines() if "non_finite policy: fail" in line), None)
        if reason is None:
            raise
        raise DataError(f"{data.description}: {reason.strip()}; clean the data, or pass --non-finite drop to skip "
                        "such examples") from err  # fmt: skip
    if output is not None:  # Keras prefixes per-output metrics; keep the name callers read
        model.history.history.setdefault("accuracy", model.history.history.get(f"{output}_accuracy", [np.nan]))
    return model


def kernel_of(layer) -> np.ndarray | None:
    kernel = getattr(layer, "kernel", None)
    return None if kernel is None else np.asarray(kernel.numpy())


def is_prunable_type(layer) -> bool:
    return type(layer).__name__ in PRUNABLE_LAYER_TYPES


def wrap_and_fine_tune(model_path, config, data: TrainingData, *, wrap, verb: str, allow_unsafe: bool, callbacks=()):
    """Loads the model fresh, wraps its Dense and Conv2D layers not in `config.skip_layers` with
    `wrap(layer, model)` (`model`: the freshly loaded source), and fine-tunes the clone with the config's seed,
    epochs, batch size and learning rate. `wrap` may return the layer itself to leave it alone (e.g. a layer with
    fewer weights than clusters); it then does not count as wrapped.

    Loading fresh means tfmot's wrappers never share layers with the caller's model. Returns the fine-tuned wrapped
    model and the names of the wrapped layers; raises OptimizationNotAchievedError when there is nothing to `verb`.
    """
    set_seeds(config.seed)
    model = load_keras_model(model_path, allow_unsafe=allow_unsafe)
    wrapped_names = []

    def wrap_selected(layer):
        if not is_prunable_type(layer) or layer.name in config.skip_layers:
            return layer
        wrapped_layer = wrap(layer, model)
        if wrapped_layer is not layer:
            wrapped_names.append(layer.name)
        return wrapped_layer

    wrapped = keras.models.clone_model(model, clone_function=wrap_selected)
    if not wrapped_names:
        raise OptimizationNotAchievedError(
            f"the model has no Dense or Conv2D layers to {verb} (or all are in skip_layers); use another technique"
        )
    fine_tune(
        wrapped,
        data,
        config,
        from_logits=not outputs_probabilities(model),
        callbacks=callbacks,
        compiled_loss=saved_loss(model_path),
    )
    return wrapped, wrapped_names
