"""Artifacts on remote filesystems (gs://, s3://, hdfs://, ram:// in tests) for code that needs local files.

On Vertex AI and Kubeflow, TFX artifact URIs are gs://... strings, while Keras, LiteRT and Beam's local runners
want local paths. `local_artifacts` gives a step local copies of its remote inputs and local folders for its
remote outputs, and uploads those when the step succeeds. Everything goes through tf.io.gfile; no tfx import.
"""

import contextlib
import logging
import os
import posixpath
import tempfile

logger = logging.getLogger(__name__)


def _gfile():
    from edgeopt.components._shared.keras_bootstrap import tf

    return tf.io.gfile


def is_remote(uri: str) -> bool:
    return "://" in str(uri) and not str(uri).startswith("file://")


def copy_tree(source: str, target: str) -> None:
    """Copies a folder (or one file) file by file through tf.io.gfile, across filesystems."""
    files = _gfile()
    if not files.isdir(source):
        files.makedirs(posixpath.dirname(str(target)) or ".")
        files.copy(source, target, overwrite=True)
        return
    for folder, _, names in files.walk(source):
        relative = posixpath.relpath(folder, source) if folder != source else ""
        destination = posixpath.join(target, relative) if relative else str(target)
        files.makedirs(destination)
        for name in names:
            files.copy(posixpath.join(folder, name), posixpath.join(destination, name), overwrite=True)


class StagedArtifacts:
    """Maps the local stand-ins of a staged step back to the artifacts' real URIs (for records that name files)."""

    def __init__(self):
        self.locations: dict[str, str] = {}  # local folder -> original URI

    def original(self, path: str) -> str:
        for local, remote in self.locations.items():
            if str(path) == local or str(path).startswith(local + os.sep):
                return remote + str(path)[len(local) :].replace(os.sep, "/")
        return str(path)


@contextlib.contextmanager
def local_artifacts(input_dict: dict, output_dict: dict, *, stage_inputs: bool = True):
    """For the block, remote input artifacts point at local copies and remote outputs at local folders; on success
    the outputs are uploaded to their URIs. Every URI is restored afterwards; local artifacts are left alone.
    `stage_inputs=False` leaves the inputs at their URIs (for a Beam job whose workers read them there).

    Yields a StagedArtifacts whose `original(path)` turns a local path back into the remote URI.
    """
    staged = StagedArtifacts()
    inputs = [artifact for items in input_dict.values() for artifact in items if is_remote(artifact.uri)]
    inputs = inputs if stage_inputs else []
    outputs = [artifact for items in output_dict.values() for artifact in items if is_remote(artifact.uri)]
    if not inputs and not outputs:
        yield staged
        return
    with tempfile.TemporaryDirectory(prefix="edgeopt-artifacts-") as work:
        original = {}
        for index, artifact in enumerate(inputs + outputs):
            local = os.path.join(work, str(index), basename_of(artifact.uri))
            original[id(artifact)] = artifact.uri
            if index < len(inputs):
                logger.info("copying input %s to local %s", artifact.uri, local)
                copy_tree(artifact.uri, local)
            else:
                os.makedirs(local)
            staged.locations[local] = artifact.uri.rstrip("/")
            artifact.uri = local
        try:
            yield staged
            for artifact in outputs:
                logger.info("uploading output %s to %s", artifact.uri, original[id(artifact)])
                copy_tree(artifact.uri, original[id(artifact)])
        finally:
            for artifact in inputs + outputs:
                artifact.uri = original[id(artifact)]


def basename_of(uri: str) -> str:
    return posixpath.basename(str(uri).rstrip("/")) or "artifact"
