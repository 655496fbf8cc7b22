"""edgeopt.components: one folder per compression technique, each a pure core with thin TFX and KFP faces."""

from importlib import metadata

try:
    __version__ = metadata.version("edgeopt")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
