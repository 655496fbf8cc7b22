"""Fine-tuning shared by pruning, clustering and QAT: seeded, classification, one compiled loss."""

import random

import numpy as np

from edgeopt.components._shared.data import TrainingData
from edgeopt.components._shared.keras_bootstrap import keras, tf

PRUNABLE_LAYER_TYPES = ("Dense", "Conv2D")


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
        callbacks=list(callbacks),
        verbose=verbose,
    )
    return model


def kernel_of(layer) -> np.ndarray | None:
    kernel = getattr(layer, "kernel", None)
    return None if kernel is None else np.asarray(kernel.numpy())


def is_prunable_type(layer) -> bool:
    return type(layer).__name__ in PRUNABLE_LAYER_TYPES
