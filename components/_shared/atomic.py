"""Publish outputs atomically: write into a sibling temporary folder, rename it into place only when complete."""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_output_dir(final_dir: str | os.PathLike):
    """Yields a temporary folder that replaces `final_dir` when the block succeeds and is deleted when it fails.

    The temporary folder is a sibling of `final_dir`, so the final rename stays on one file system.
    """
    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.partial-", dir=final_dir.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if final_dir.exists():
        shutil.rmtree(final_dir)
    os.replace(staging, final_dir)


@contextlib.contextmanager
def atomic_output_file(final_path: str | os.PathLike):
    """Yields a temporary path beside `final_path` that is renamed onto it when the block succeeds."""
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{final_path.name}.partial-", dir=final_path.parent)
    os.close(fd)
    try:
        yield Path(staging)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    os.replace(staging, final_path)
