"""File access of the pipeline steps through tf.io.gfile, so data and artifacts may live on any filesystem TF knows
(local, gs://, s3:// and hdfs:// with their plugins, ram:// in tests), never only on the local disk."""

import contextlib
import posixpath

from edgeopt.components._shared.atomic import atomic_output_dir
from edgeopt.components._shared.remote_files import copy_tree, is_remote

__all__ = ["basename", "copy_tree", "gfile", "is_remote", "join", "output_dir"]


def gfile():
    from edgeopt.components._shared.keras_bootstrap import tf

    return tf.io.gfile


def join(base: str, *parts: str) -> str:
    """os.path.join for URIs too (gs://b/x + y = gs://b/x/y)."""
    return posixpath.join(str(base), *parts)


def basename(path: str) -> str:
    return posixpath.basename(str(path).rstrip("/"))


@contextlib.contextmanager
def output_dir(final_dir):
    """Yields the folder to write into (a string). Local: a staging folder renamed into place on success (atomic).
    Remote: the final URI itself (object stores have no atomic folder rename), removed again if the block fails."""
    if not is_remote(final_dir):
        with atomic_output_dir(final_dir) as staging:
            yield str(staging)
        return
    files = gfile()
    if files.exists(final_dir):
        files.rmtree(final_dir)
    files.makedirs(final_dir)
    try:
        yield str(final_dir)
    except BaseException:
        files.rmtree(final_dir)
        raise
