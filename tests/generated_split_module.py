"""A Trainer-style module whose input_fn generates a split of a billion 8x8x1 examples (30 GB as float32, more than
any test host holds) and counts how many examples the caller pulled: streaming code finishes and pulls a bounded
number; code that materialized a split would never finish. Imported by name (`tests.generated_split_module`) so the
test reads the same counter."""

import numpy as np

from edgeopt.components._shared.keras_bootstrap import tf

EXAMPLES_PER_SPLIT = 10**9
pulled = {"examples": 0}


def _count(indices: np.ndarray) -> np.ndarray:
    pulled["examples"] += len(indices)
    return indices


def input_fn(file_pattern, batch_size):
    def example(indices):
        indices = tf.numpy_function(_count, [indices], tf.int64, stateful=True)
        indices.set_shape([None])
        labels = indices % 10
        # A class-dependent brightness plus noise: learnable, and different for every example.
        noise = tf.random.stateless_uniform([tf.shape(indices)[0], 8, 8, 1], seed=[7, 0]) * 0.3
        images = tf.cast(labels, tf.float32)[:, None, None, None] / 10.0 + noise
        return images, labels

    return tf.data.Dataset.range(EXAMPLES_PER_SPLIT).batch(batch_size).map(example)
