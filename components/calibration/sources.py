"""What the calibration sampler reads: the files of a TFX Examples folder or CSV source, local or remote.

Local sources are listed with pathlib; remote ones (gs://, s3://, hdfs://, ...) through Beam's FileSystems, the
same filesystems the runner's workers read them with, so a Dataflow or Flink job gets exactly the files listed here.
"""

import csv
import glob
import io
import os
import posixpath
from pathlib import Path

from edgeopt.components._shared.csv_examples import column_kinds
from edgeopt.components._shared.errors import ConfigError, DataError
from edgeopt.components._shared.fingerprint import files_fingerprint, sizes_fingerprint
from edgeopt.components.calibration.beam_options import has_scheme


def source_files(examples: str | os.PathLike, splits: list[str]) -> tuple[str, list[str]]:
    """('tfrecord' | 'csv', files): the Split-NAME/ files of a TFX Examples folder, or CSV files (a file, a folder
    of .csv, or a glob)."""
    examples = str(examples)
    if has_scheme(examples):
        return _remote_source_files(examples, splits)
    path = Path(examples)
    if path.is_dir() and any(path.glob("Split-*")):
        files = []
        for split in splits:
            folder = path / f"Split-{split}"
            if not folder.is_dir():
                found = sorted(p.name for p in path.glob("Split-*"))
                raise DataError(f"{examples} has no Split-{split}/ folder (found {found}); set splits to existing ones")
            files += sorted(str(p) for p in folder.iterdir() if p.is_file())
        if not files:
            raise DataError(f"the source is empty: no files in {examples}/Split-{{{','.join(splits)}}}/")
        for name in files:
            _check_gzip(name)
        return "tfrecord", files
    if path.is_file():
        csv_files = [str(examples)]
    elif path.is_dir():
        csv_files = sorted(str(p) for p in path.glob("*.csv"))
    else:  # a glob, relative or absolute (pathlib's glob takes relative patterns only)
        csv_files = sorted(glob.glob(str(examples)))
    if not csv_files:
        raise DataError(f"the source is empty: {examples} is neither a TFX Examples folder (Split-NAME/) nor CSV files")
    return "csv", csv_files


def _match(pattern: str) -> list[tuple[str, int]]:
    """(path, size) of every remote file matching `pattern`, sorted; [] when nothing matches."""
    from apache_beam.io.filesystem import BeamIOError
    from apache_beam.io.filesystems import FileSystems

    try:
        (result,) = FileSystems.match([pattern])
    except BeamIOError:
        return []
    except ValueError as err:  # no Beam filesystem for the scheme (e.g. KFP's minio://)
        raise ConfigError(
            f"Beam cannot read {pattern} ({err}); keep the data on gs://, s3://, hdfs:// or a local path"
        ) from err
    return sorted((item.path, item.size_in_bytes) for item in result.metadata_list)


def _remote_source_files(examples: str, splits: list[str]) -> tuple[str, list[str]]:
    root = examples.rstrip("/")
    in_splits = _match(f"{root}/Split-*/*")
    if in_splits:
        found = sorted({path[len(root) + 1 :].split("/", 1)[0] for path, _ in in_splits})
        files = []
        for split in splits:
            if f"Split-{split}" not in found:
                raise DataError(f"{examples} has no Split-{split}/ folder (found {found}); set splits to existing ones")
            files += [path for path, _ in in_splits if path.startswith(f"{root}/Split-{split}/")]
        for name in files:
            _check_gzip(name)
        return "tfrecord", files
    pattern = root if root.endswith(".csv") or any(char in root for char in "*?[") else f"{root}/*.csv"
    csv_files = [path for path, _ in _match(pattern)]
    if not csv_files:
        raise DataError(f"the source is empty: {examples} is neither a TFX Examples folder (Split-NAME/) nor CSV files")
    return "csv", csv_files


def _open_binary(name: str):
    if not has_scheme(name):
        return open(name, "rb")
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.open(name, compression_type=CompressionTypes.UNCOMPRESSED)


def _check_gzip(name: str):
    """Beam's reader reports a broken gzip stream without the file's name; check each file's header first."""
    if not name.endswith(".gz"):
        return
    with _open_binary(name) as handle:
        header = handle.read(2)
    if header and header != b"\x1f\x8b":
        raise DataError(f"{name} is not gzip-compressed; Examples files must be gzipped tf.Example TFRecords")


def source_fingerprint(files: list[str]) -> str:
    """The sampled files' fingerprint (fingerprint.py), names relative to the Examples folder (the common folder
    above each file's own), so a split's file reads `Split-train/data.gz` as in the job's dataset fingerprint."""
    if not any(has_scheme(name) for name in files):
        root = os.path.commonpath([os.path.dirname(os.path.dirname(os.path.abspath(name))) for name in files])
        return files_fingerprint([os.path.abspath(name) for name in files], root)
    folders = sorted({posixpath.dirname(name) for name in files})  # one listing per folder, not one per file
    sizes = dict(entry for folder in folders for entry in _match(f"{folder}/*"))
    root = _common_prefix([posixpath.dirname(posixpath.dirname(name)) for name in files])
    return sizes_fingerprint((name[len(root) :].lstrip("/"), sizes[name]) for name in files)


def _common_prefix(folders: list[str]) -> str:
    parts = [folder.split("/") for folder in folders]
    common = []
    for pieces in zip(*parts, strict=False):
        if len(set(pieces)) != 1:
            break
        common.append(pieces[0])
    return "/".join(common)


def _open_text(name: str):
    return io.TextIOWrapper(_open_binary(name), encoding="utf-8", newline="")


def csv_header(files: list[str]) -> list[str]:
    headers = []
    for name in files:
        with _open_text(name) as handle:
            headers.append(next(csv.reader(handle), []))
    if not headers[0] or any(header != headers[0] for header in headers):
        raise DataError(f"CSV files {files} must share one non-empty header row")
    return headers[0]


def csv_column_kinds(files: list[str], header: list[str]) -> dict[str, str]:
    """One streaming pass over the CSV files here, before the pipeline runs: each column's kind, so every row is
    typed as CsvExampleGen would (memory is one row; time grows with the CSV's size, see README 'Runners')."""

    def rows():
        for name in files:
            with _open_text(name) as handle:
                reader = csv.reader(handle)
                next(reader, None)
                yield from reader

    return column_kinds(header, rows())
