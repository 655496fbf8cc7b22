"""Fine-tuning shared by pruning, clustering and QAT: seeded, classification, one compiled loss."""

import contextlib
import contextvars
import random

import numpy as np

from edgeopt.components._shared.data import TrainingData
from edgeopt.components._shared.errors import OptimizationNotAchievedError
from edgeopt.components._shared.keras_bootstrap import keras, tf
from edgeopt.components._shared.model_io import load_keras_model

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


def outputs_probabilities(model) -> bool:
    """True when the model ends in a softmax, so the loss must not apply one again."""
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", "") == "softmax" or type(last).__name__ == "Softmax"


def fine_tune(
    model,
    data: TrainingData,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    from_logits: bool,
    callbacks=(),
    verbose: int = 2,
):
    """Compiles `model` for integer-label classification and fits it on the training split."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
    )
    inputs, labels = data.arrays(data.train_split)
    model.fit(
        inputs,
        labels,
        batch_size=batch_size,
        epochs=epochs,
        shuffle=True,
        callbacks=[*callbacks, *_EXTRA_CALLBACKS.get()],
        verbose=verbose,
    )
    return model


def kernel_of(layer) -> np.ndarray | None:
    kernel = getattr(layer, "kernel", None)
    return None if kernel is None else np.asarray(kernel.numpy())


def is_prunable_type(layer) -> bool:
    return type(layer).__name__ in PRUNABLE_LAYER_TYPES


def wrap_and_fine_tune(model_path, config, data: TrainingData, *, wrap, verb: str, allow_unsafe: bool, verbose: int,
                       callbacks=()):  # fmt: skip
    """Loads the model fresh, wraps its Dense and Conv2D layers not in `config.skip_layers` with
    `wrap(layer, model)` (`model`: the freshly loaded source), and fine-tunes the clone with the config's seed,
    epochs, batch size and learning rate.

    Loading fresh means tfmot's wrappers never share layers with the caller's model. Returns the fine-tuned wrapped
    model and the names of the wrapped layers; raises OptimizationNotAchievedError when there is nothing to `verb`.
    """
    set_seeds(config.seed)
    model = load_keras_model(model_path, allow_unsafe=allow_unsafe)
    wrapped_names = []

    def wrap_selected(layer):
        if not is_prunable_type(layer) or layer.name in config.skip_layers:
            return layer
        wrapped_names.append(layer.name)
        return wrap(layer, model)

    wrapped = keras.models.clone_model(model, clone_function=wrap_selected)
    if not wrapped_names:
        raise OptimizationNotAchievedError(
            f"the model has no Dense or Conv2D layers to {verb} (or all are in skip_layers); use another technique"
        )
    fine_tune(
        wrapped,
        data,
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        from_logits=not outputs_probabilities(model),
        callbacks=callbacks,
        verbose=verbose,
    )
    return wrapped, wrapped_names
