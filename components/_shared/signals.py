"""SIGTERM handled like SIGINT: Kubernetes and KFP stop pods with SIGTERM, and a job must still end its runs."""

import contextlib
import logging
import os
import signal
import sys
import threading

from edgeopt.components._shared.errors import JobTerminatedError

EXIT_SIGINT = 130  # 128 + SIGINT, the shell's convention
EXIT_SIGTERM = 143  # 128 + SIGTERM
REDELIVERY_DELAY_SECONDS = 0.05

logger = logging.getLogger(__name__)


class _RaiseOnce:
    """Raises on the first SIGTERM only: a second one (some supervisors repeat it) must not interrupt the cleanup
    that the first started, such as ending the MLflow run; SIGKILL remains for a hard stop."""

    def __init__(self):
        self.raised = False

    def __call__(self, signum, _frame):
        if self.raised:
            logger.warning("received %s again; still ending the job's runs", signal.Signals(signum).name)
            return
        self.raised = True
        raise JobTerminatedError(f"received {signal.Signals(signum).name}; the job was stopped before it finished")


@contextlib.contextmanager
def sigterm_raises():
    """Within the block, SIGTERM raises JobTerminatedError in the main thread, so context managers (the tracked
    job, atomic outputs, locks) unwind as they do for KeyboardInterrupt. Outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = _RaiseOnce()
    previous_hook = sys.unraisablehook

    def redeliver_swallowed(unraisable):
        # A signal handler runs wherever the interpreter is: inside a weakref callback or __del__ (SQLAlchemy's
        # garbage-collection hooks, seen in the tests) its exception is swallowed and the job would run on and end
        # FINISHED. Send the signal again, from another thread, so it lands in code where it propagates.
        if isinstance(unraisable.exc_value, JobTerminatedError):
            handler.raised = False
            threading.Timer(REDELIVERY_DELAY_SECONDS, redeliver).start()
            return
        previous_hook(unraisable)

    def redeliver():
        if signal.getsignal(signal.SIGTERM) is handler:  # never after the block ended: SIGTERM would then kill
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, handler)
    sys.unraisablehook = redeliver_swallowed
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = previous_hook
