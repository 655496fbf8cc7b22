"""The one place that selects Keras 2 (tf-keras) for TensorFlow; import it before anything imports TensorFlow.

tfmot 0.8 only wraps Keras 2 models, and TensorFlow picks its Keras implementation once, at first import, from
TF_USE_LEGACY_KERAS. tfmot flips that variable itself as an import side effect; doing it explicitly here, first,
makes the choice visible and independent of import order.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras"]  # and `tfmot`, loaded on first access


def __getattr__(name):
    # tfmot takes about a second to import; load it only for the techniques that need it.
    if name == "tfmot":
        import tensorflow_model_optimization as tfmot

        return tfmot
    raise AttributeError(name)
