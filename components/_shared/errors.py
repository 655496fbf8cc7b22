"""Typed errors: each names the problem and the fix, so a pipeline log is enough to act on."""


class EdgeoptError(Exception):
    """Base class of every error edgeopt raises on purpose."""


class ConfigError(EdgeoptError, ValueError):
    """A configuration value or combination is invalid."""


class UnsafeModelError(EdgeoptError):
    """The model file could run arbitrary code when loaded (.h5, Lambda layers) and the caller did not opt in."""


class ModelLoadError(EdgeoptError):
    """The model path does not hold a loadable Keras model."""


class DataError(EdgeoptError):
    """Training, evaluation or calibration data is missing or does not match its spec."""


class ConversionError(EdgeoptError):
    """TFLite conversion failed, or the converted model disagrees with the Keras model past the tolerance."""


class OptimizationNotAchievedError(EdgeoptError):
    """A technique ran but its result misses what the config asked for (for example the target sparsity)."""


class TrackingError(EdgeoptError):
    """MLflow tracking or the model registry cannot do what was asked (no such experiment, no challenger, ...)."""


class UnsupportedModelError(EdgeoptError):
    """The model has a format, structure or layers a recipe's techniques cannot handle (e.g. a subclassed model where
    a rebuild is needed); found before any work starts."""


class TrainingDivergedError(EdgeoptError):
    """Fine-tuning produced a non-finite loss (NaN or Inf): the data, the learning rate or the model diverged."""


class DistributedJobError(EdgeoptError):
    """A distributed training job (a Kubeflow TFJob) failed, or did not finish in time; the message names the job,
    its last condition and how to read its replicas' logs."""


class OutputError(EdgeoptError):
    """The output folder cannot be used: not writable, disk full, or held by another job."""


class JobLockedError(OutputError):
    """Another edgeopt job holds the output folder's lock."""


class JobTerminatedError(BaseException):
    """The process received SIGTERM (a BaseException, like KeyboardInterrupt, so `except Exception` lets it pass)."""
