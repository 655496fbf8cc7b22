"""edgeopt.components: one folder per compression technique, each a pure core with thin TFX and KFP faces."""

import os
from importlib import metadata

# tfmot 0.8 needs Keras 2 (tf-keras), and TensorFlow picks its Keras once, at its first import. Every edgeopt module
# lives in this package, so setting the choice here makes it happen before any of them (or tfx, which they import)
# loads TensorFlow. _shared/keras_bootstrap.py checks it took effect.
os.environ["TF_USE_LEGACY_KERAS"] = "1"

try:
    __version__ = metadata.version("edgeopt")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
