"""One job per output folder: an exclusive `flock` on OUT/.edgeopt.lock that names its holder, and a blocking lock
for one-time setup that several jobs may race (creating and migrating a SQLite tracking store)."""

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from edgeopt.components._shared.errors import JobLockedError, OutputError

LOCK_FILE = ".edgeopt.lock"
# errnos that mean "this folder cannot take our output", reported with the path instead of a raw traceback.
OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}

logger = logging.getLogger(__name__)


def _holder() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv), "since": time.time()}


def _read_holder(path: Path) -> str:
    # The holder writes its name just after taking the lock; give it a moment when we looked in between.
    for _ in range(20):
        try:
            holder = json.loads(path.read_text() or "{}")
        except (OSError, ValueError):
            holder = {}
        if holder:
            return f"pid {holder.get('pid')} on {holder.get('host')}: {holder.get('command')}"
        time.sleep(0.05)
    return "holder unknown"


def check_output_writable(out_dir: str | os.PathLike) -> None:
    """Fails fast when `out_dir` (or the nearest folder that exists above it) cannot take files, before any work.

    A probe file is created and removed, which also catches read-only mounts and a full disk, unlike os.access.

    Raises:
      OutputError: `out_dir` is a file, or its nearest existing folder is not writable.
    """
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir} is a file; pass a folder path")
    existing = out_dir
    while not existing.exists():
        existing = existing.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".edgeopt-write-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(
            f"--out {out_dir} is not writable ({existing}: [Errno {err.errno}] {err.strerror}); "
            "choose a folder you can write to, or fix its permissions or free disk space"
        ) from err


@contextlib.contextmanager
def output_dir_lock(out_dir: str | os.PathLike):
    """Holds an exclusive, non-blocking lock on `out_dir` for the duration of the block (creating the folder).

    The lock file stays in place (removing it would let a third job lock a different inode); the kernel releases
    the lock when the process ends, however it ends, so a SIGKILLed job never leaves a stale lock.

    Raises:
      JobLockedError: another process holds the lock; the message names it.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as err:
        os.close(fd)
        raise JobLockedError(
            f"{out_dir} is in use by another edgeopt job ({_read_holder(path)}); wait for it to end or pass "
            "another --out"
        ) from err
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder()).encode(), 0)
        logger.debug("locked %s", path)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def setup_lock(lock_path: str | os.PathLike):
    """A blocking exclusive lock around one-time setup that concurrent processes would race."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def output_errors_as_typed():
    """Disk-full and permission errors while writing outputs become an OutputError naming the path and the errno."""
    try:
        yield
    except OSError as err:
        if err.errno not in OUTPUT_ERRNOS:
            raise
        raise OutputError(
            f"cannot write {err.filename or 'an output file'}: [Errno {err.errno}] {err.strerror}; "
            "free disk space or fix the folder's permissions, then rerun (no partial file was published)"
        ) from err
