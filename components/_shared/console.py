"""What a person sees: edgeopt's log lines at the level the command chose, and TensorFlow's noise kept out of them.

TensorFlow, absl, the TFLite converter and LiteRT write straight to file descriptor 2 from C++ (oneDNN and CUDA
notices, `fully_quantize: 0, inference_type: 6`, `Created TensorFlow Lite XNNPACK delegate`), below Python's
reach. By default those bytes go to a side file instead of the terminal: the process's descriptor 2 is pointed at
the file, while Python's own stderr keeps writing to the terminal through a duplicate of the original descriptor.
With `-v` nothing is redirected and every library logs as it would.
"""

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

LOGGER_NAME = "edgeopt"
QUIET, NORMAL, VERBOSE = -1, 0, 1
NOISY_LOGGERS = (
    "tensorflow", "absl", "h5py", "matplotlib", "apache_beam", "alembic", "urllib3", "py.warnings", "mlflow", "optuna",
)  # fmt: skip
#: Python warnings libraries emit on every conversion or fit; shown with -v.
NOISY_WARNINGS = (
    "Statistics for quantized inputs were expected",
    "You are saving your model as an HDF5 file",
    "Compiled the loaded model, but the compiled metrics",
)

_log = logging.getLogger(__name__)


def level_for(verbosity: int) -> int:
    """-q: warnings and errors only; default: edgeopt's progress; -v: everything, libraries included."""
    return {QUIET: logging.WARNING, NORMAL: logging.INFO}.get(verbosity, logging.DEBUG)


def configure_logging(verbosity: int = NORMAL, *, stream=None) -> None:
    """Routes edgeopt's loggers to `stream` (default stderr) at the level `verbosity` selects, and silences library
    loggers and warnings unless verbose. Safe to call more than once (the last call wins)."""
    level = level_for(verbosity)
    edgeopt = logging.getLogger(LOGGER_NAME)
    for handler in list(edgeopt.handlers):
        if getattr(handler, "_edgeopt_console", False):
            edgeopt.removeHandler(handler)
    handler = logging.StreamHandler(stream) if stream else _CurrentStderrHandler()
    handler._edgeopt_console = True
    handler.setFormatter(
        logging.Formatter("%(message)s" if level > logging.DEBUG else "%(levelname)s %(name)s: %(message)s")
    )
    edgeopt.addHandler(handler)
    edgeopt.setLevel(level)
    logging.captureWarnings(True)
    verbose = verbosity >= VERBOSE
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.ERROR)
    if not verbose:
        for message in NOISY_WARNINGS:
            warnings.filterwarnings("ignore", message=f".*{message}.*")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # MLflow sets its own loggers' level when it is first imported, after this runs; it reads this variable.
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
        with contextlib.suppress(ImportError):
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record is emitted (a test's capture, the terminal behind
    native_output_to), never to a stream that has since been closed."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def keras_verbosity() -> int:
    """`verbose` for Keras fit(): one line per epoch when debugging, else silent (progress reports epochs)."""
    return 2 if logging.getLogger(LOGGER_NAME).isEnabledFor(logging.DEBUG) else 0


@contextlib.contextmanager
def native_output_to(path: str | os.PathLike | None = None):
    """Sends what C++ code writes to descriptor 2 into `path` (a temporary file by default) for the duration,
    while Python's `sys.stderr` keeps writing to the terminal. Yields the file's path.

    Child processes started inside inherit the redirected descriptor, so their native noise lands there too.
    """
    sys.stderr.flush()
    target = Path(path) if path else Path(tempfile.mkstemp(prefix="edgeopt-native-", suffix=".log")[1])
    saved_fd = os.dup(2)
    python_stderr = sys.stderr
    # Python's stderr follows the terminal only when it writes to descriptor 2 itself; one already replaced (a test
    # harness capturing it, say) keeps its own destination.
    swap = _writes_to_fd2(python_stderr)
    terminal = os.fdopen(os.dup(saved_fd), "w", buffering=1, encoding="utf-8", errors="replace") if swap else None
    with open(target, "ab") as sink:
        os.dup2(sink.fileno(), 2)
    if swap:
        sys.stderr = terminal
        _retarget_handlers(python_stderr, terminal)
    try:
        yield target
    finally:
        sys.stderr.flush()
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        if swap:
            sys.stderr = python_stderr
            _retarget_handlers(terminal, python_stderr)
            terminal.close()


def _writes_to_fd2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        return False


def _retarget_handlers(old, new):
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and handler.stream is old:
                handler.setStream(new)


def native_output_tail(path: str | os.PathLike, lines: int = 20) -> str:
    """The last lines of a native-output file, for an error message after a crash."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
