"""Keeps KFP step logs to a few lines: KFP's executor logs the whole executor input (~140 lines of JSON) at INFO
before running a step; this filter shortens that record to one line unless EDGEOPT_KFP_VERBOSE is set.

The image installs it at interpreter start (Dockerfile: a .pth line importing this module), because KFP logs the
input before any edgeopt code in the step runs. Standard library only: it loads in every Python process there.
"""

import logging
import os

VERBOSE_ENV = "EDGEOPT_KFP_VERBOSE"
_EXECUTOR_INPUT_PREFIX = "Got executor_input:"


class ExecutorInputFilter(logging.Filter):
    """Replaces KFP's executor-input dump by its size and how to see it; every other record passes unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if os.environ.get(VERBOSE_ENV, "") not in ("", "0"):
            return True
        message = record.getMessage()
        if message.startswith(_EXECUTOR_INPUT_PREFIX):
            record.msg = (
                f"{_EXECUTOR_INPUT_PREFIX} {len(message) - len(_EXECUTOR_INPUT_PREFIX)} characters "
                f"(set {VERBOSE_ENV}=1 on the task to log them)"
            )
            record.args = ()
        return True


def install() -> None:
    """Adds the filter to the root logger (KFP's executor logs through it), once."""
    root = logging.getLogger()
    if not any(isinstance(existing, ExecutorInputFilter) for existing in root.filters):
        root.addFilter(ExecutorInputFilter())


install()
