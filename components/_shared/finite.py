"""Non-finite values (NaN, Inf) never reach the converter or the optimizer: examples holding one are dropped and
counted, or refused; a fine-tuning loss that turns non-finite stops training with a typed error."""

import enum
import logging

import numpy as np

from edgeopt.components._shared.errors import DataError, TrainingDivergedError
from edgeopt.components._shared.keras_bootstrap import keras

logger = logging.getLogger(__name__)


class NonFinitePolicy(enum.StrEnum):
    """What to do with examples whose inputs hold NaN or Inf."""

    DROP = "drop"
    FAIL = "fail"


def finite_rows(inputs) -> np.ndarray:
    """A boolean mask over the first axis: True where every value of the example (of every named input, for a
    dict of arrays) is finite."""
    if isinstance(inputs, dict):
        masks = [finite_rows(array) for array in inputs.values()]
        return np.logical_and.reduce(masks) if masks else np.ones(0, dtype=bool)
    inputs = np.asarray(inputs)
    if not np.issubdtype(inputs.dtype, np.floating):
        return np.ones(len(inputs), dtype=bool)
    return np.isfinite(inputs.reshape(len(inputs), -1)).all(axis=1)


def _keep(inputs, keep: np.ndarray):
    if isinstance(inputs, dict):
        return {name: array[keep] for name, array in inputs.items()}
    return inputs[keep]


def drop_non_finite(inputs, labels: np.ndarray, *, policy: NonFinitePolicy | str, what: str) -> tuple:
    """(inputs, labels) without the examples that hold a NaN or Inf, and how many were dropped.

    Raises:
      DataError: under policy `fail` when any example is non-finite, or when no finite example is left.
    """
    keep = finite_rows(inputs)
    dropped = int(len(keep) - keep.sum())
    if not dropped:
        return inputs, labels, 0
    if NonFinitePolicy(policy) == NonFinitePolicy.FAIL:
        raise DataError(
            f"{dropped} of {len(keep)} examples of {what} hold NaN or Inf; clean the data, or pass "
            "--non-finite drop to skip them"
        )
    if not keep.any():
        raise DataError(f"every one of the {len(keep)} examples of {what} holds NaN or Inf; clean the data")
    logger.warning("dropped %d of %d examples of %s that hold NaN or Inf", dropped, len(keep), what)
    return _keep(inputs, keep), labels[keep], dropped


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Like keras.callbacks.TerminateOnNaN, but raises a typed error naming the epoch and the step instead of
    quietly stopping (which would let the caller save a diverged model)."""

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            raise TrainingDivergedError(
                f"fine-tuning loss became {float(loss)} at epoch {self._epoch + 1}, step {batch + 1}; check the "
                "training data for NaN or Inf and lower the learning rate"
            )
