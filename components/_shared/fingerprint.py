"""One dataset fingerprint: sha256 over the files' names (relative to a root) and sizes. Cheap on any data size,
and it changes when a file is added, removed, renamed or resized. Not a content hash: the calibration manifest
carries a content digest of what it sampled."""

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path


def files_fingerprint(files: list[str | os.PathLike], root: str | os.PathLike | None = None) -> str:
    """sha256 of `name<TAB>size` lines in name order, names relative to `root` (default: each file's name)."""
    root_path = Path(root) if root is not None else None
    entries = []
    for file in map(Path, files):
        name = file.relative_to(root_path).as_posix() if root_path is not None else file.name
        entries.append((name, file.stat().st_size))
    return sizes_fingerprint(entries)


def sizes_fingerprint(entries: Iterable[tuple[str, int]]) -> str:
    """The fingerprint of (relative name, size in bytes) pairs, for files listed elsewhere (gs://, s3:// via Beam)."""
    digest = hashlib.sha256()
    for line in sorted(f"{name}\t{size}\n" for name, size in entries):
        digest.update(line.encode())
    return digest.hexdigest()


def dataset_fingerprint(examples: str | os.PathLike) -> str:
    """The fingerprint of an Examples folder (every file under it) or of one file."""
    root = Path(examples)
    if not root.is_dir():
        return files_fingerprint([root])
    return files_fingerprint(sorted(p for p in root.rglob("*") if p.is_file()), root)
