"""TensorFlow with Keras 2 (tf-keras): the `tf`, `keras` and lazily `tfmot` every technique uses.

TF_USE_LEGACY_KERAS is set by the package's __init__, which Python runs before this module. If TensorFlow was
imported before edgeopt (by the caller, or by tfx imported first), it already chose Keras 3 and tfmot cannot wrap
the model: that is detected here and reported with the fix.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from edgeopt.components._shared.errors import EdgeoptError  # noqa: E402

if tf.keras.Model is not keras.Model:
    raise EdgeoptError(
        "TensorFlow was imported with Keras 3 before edgeopt; tfmot needs Keras 2. Import edgeopt before tensorflow "
        "and tfx, or set TF_USE_LEGACY_KERAS=1 in the environment"
    )

__all__ = ["tf", "keras"]  # and `tfmot`, loaded on first access


def __getattr__(name):
    # tfmot takes about a second to import; load it only for the techniques that need it.
    if name == "tfmot":
        import tensorflow_model_optimization as tfmot

        return tfmot
    raise AttributeError(name)
