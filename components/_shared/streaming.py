"""Bounded-memory helpers for streamed splits: numpy batches with their non-finite rows removed, a seeded uniform
sample of a stream, the first n examples, and the in-graph filter the training pipeline uses. Nothing here holds
more than a batch plus what the caller asked to keep."""

import logging
from collections.abc import Iterable, Iterator

import numpy as np

from edgeopt.components._shared.errors import DataError
from edgeopt.components._shared.finite import NonFinitePolicy, finite_rows
from edgeopt.components._shared.keras_bootstrap import tf

logger = logging.getLogger(__name__)

# Model inputs as numpy: one array for a single-input model, or one array per Keras input name.
Inputs = np.ndarray | dict[str, np.ndarray]


def count(inputs: Inputs) -> int:
    """Number of examples in one array or a dict of arrays."""
    return len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)


def select(inputs: Inputs, index) -> Inputs:
    """The examples at `index` (a slice, index array or mask) of one array or of every array of a dict."""
    if isinstance(inputs, dict):
        return {name: array[index] for name, array in inputs.items()}
    return inputs[index]


def concatenate(batches: list[Inputs]) -> Inputs:
    if isinstance(batches[0], dict):
        return {name: np.concatenate([batch[name] for batch in batches]) for name in batches[0]}
    return np.concatenate(batches)


def as_numpy_inputs(batch) -> Inputs:
    if isinstance(batch, dict):
        return {str(name): np.asarray(value) for name, value in batch.items()}
    if isinstance(batch, list | tuple):
        raise DataError(
            "input_fn yielded a tuple or list of features; yield one tensor, or a dict keyed by the model's input names"
        )
    return np.asarray(batch)


def as_numpy_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    # Scalar labels, also those a TFX feature-spec input_fn yields as [batch, 1], become one value per example.
    return labels.reshape(-1) if labels.ndim <= 1 or int(np.prod(labels.shape[1:])) == 1 else labels


class FiniteBatches:
    """Iterates (inputs, labels) numpy batches without the examples holding NaN or Inf, counting them.

    After a complete pass `examples` and `dropped` hold the split's totals.

    Raises (while iterating):
      DataError: under policy `fail`, at the first batch holding a non-finite example, or with `fail_at_end` (a
        complete pass, e.g. the job's counting pass) once the stream ends, naming how many of all; when the stream
        held no finite example.
    """

    def __init__(self, batches: Iterable, *, policy: NonFinitePolicy | str, what: str, fail_at_end: bool = False):
        self._batches = batches
        self._policy = NonFinitePolicy(policy)
        self._what = what
        self._fail_at_end = fail_at_end
        self.examples = 0
        self.dropped = 0

    def __iter__(self) -> Iterator[tuple[Inputs, np.ndarray]]:
        for raw_inputs, raw_labels in self._batches:
            inputs, labels = as_numpy_inputs(raw_inputs), as_numpy_labels(raw_labels)
            keep = finite_rows(inputs)
            dropped = int(len(keep) - keep.sum())
            self.dropped += dropped
            if dropped and self._policy == NonFinitePolicy.FAIL and not self._fail_at_end:
                self._refuse(f"{dropped} of a batch of {len(keep)}")
            if dropped:
                inputs, labels = select(inputs, keep), labels[keep]
            if len(labels):
                self.examples += len(labels)
                yield inputs, labels
        if self.dropped and self._policy == NonFinitePolicy.FAIL:
            self._refuse(f"{self.dropped} of {self.examples + self.dropped}")
        if self.dropped:
            logger.warning("dropped %d examples of %s that hold NaN or Inf", self.dropped, self._what)
        if not self.examples:
            what = "every example holds NaN or Inf" if self.dropped else "it holds no examples"
            raise DataError(f"{self._what} has nothing to read: {what}")

    def _refuse(self, how_many: str):
        raise DataError(
            f"{how_many} examples of {self._what} hold NaN or Inf; clean the data, or pass --non-finite drop to skip "
            "them"
        )


def first_examples(batches: Iterable[tuple[Inputs, np.ndarray]], limit: int) -> tuple[Inputs, np.ndarray]:
    """The first `limit` examples of a stream (fewer when it is shorter), reading no further."""
    inputs, labels, held = [], [], 0
    for batch_inputs, batch_labels in batches:
        take = min(len(batch_labels), limit - held)
        inputs.append(select(batch_inputs, slice(0, take)))
        labels.append(batch_labels[:take])
        held += take
        if held >= limit:
            break
    return concatenate(inputs), np.concatenate(labels)


def uniform_sample(batches: Iterable[tuple[Inputs, np.ndarray]], size: int, seed: int) -> Inputs:
    """A seeded uniform sample of `size` examples of a stream, without replacement, holding at most `size` plus one
    batch of examples: every example draws a random key and the `size` smallest keys are kept (bottom-k sampling),
    so the result does not depend on how the stream is batched."""
    rng = np.random.default_rng(seed)
    kept_keys, kept = np.empty(0), None
    for batch_inputs, _ in batches:
        keys = np.concatenate([kept_keys, rng.random(count(batch_inputs))])
        pool = batch_inputs if kept is None else concatenate([kept, batch_inputs])
        order = np.argsort(keys, kind="stable")[:size]
        kept_keys, kept = keys[order], select(pool, order)
    return kept


def finite_mask(inputs) -> "tf.Tensor":
    """In-graph: one bool per example of a batch, True when every floating value of its inputs is finite."""
    tensors = [tensor for tensor in tf.nest.flatten(inputs) if tensor.dtype.is_floating]
    if not tensors:
        return tf.ones(tf.shape(tf.nest.flatten(inputs)[0])[:1], tf.bool)
    rows = [tf.reduce_all(tf.math.is_finite(tf.reshape(t, [tf.shape(t)[0], -1])), axis=1) for t in tensors]
    return tf.reduce_all(tf.stack(rows), axis=0)


def cleaning(policy: NonFinitePolicy | str, *, integer_labels: bool):
    """In-graph map over (inputs, labels) batches, the training stream's rules: examples holding NaN or Inf dropped
    (policy drop) or an error (policy fail); a label of one value (a TFX feature's [batch, 1]) as [batch], as the
    numpy path makes it; labels float for every task but integer-class classification."""
    fail = NonFinitePolicy(policy) == NonFinitePolicy.FAIL

    def clean(inputs, labels):
        if fail:
            message = "a training example holds NaN or Inf (non_finite policy: fail)"
            inputs = tf.nest.map_structure(
                lambda t: tf.debugging.check_numerics(t, message) if t.dtype.is_floating else t, inputs
            )
        else:
            keep = finite_mask(inputs)
            inputs = tf.nest.map_structure(lambda t: tf.boolean_mask(t, keep), inputs)
            labels = tf.boolean_mask(labels, keep)
        if labels.shape.rank == 2 and labels.shape[1] == 1:
            labels = tf.reshape(labels, [-1])
        if not (integer_labels and labels.shape.rank == 1):
            labels = tf.cast(labels, tf.float32)
        return inputs, labels

    return clean
