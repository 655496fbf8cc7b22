"""A local MLflow store (OUT/mlflow.db with OUT/mlartifacts/) that keeps working when OUT is copied or moved.

MLflow records absolute artifact URIs (file:///old/OUT/mlartifacts/...) in the database: a copied folder would
write new artifacts into the old one and break every link once the old one is deleted. Before a job uses such a
database, `relocate_copied_store` points the URIs that name another folder's default `mlartifacts/` at the one
beside the database. Other artifact locations (`--artifact-location` to a server, a bucket or another folder
name) are never rewritten.
"""

import contextlib
import logging
import sqlite3
from pathlib import Path

from edgeopt.components.tracking.config import DEFAULT_ARTIFACT_FOLDER, SQLITE_PREFIX

logger = logging.getLogger(__name__)

# (table, column) pairs of MLflow's SQL schema that hold artifact URIs.
_URI_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
)


def _default_root(folder: Path) -> str:
    return (folder / DEFAULT_ARTIFACT_FOLDER).resolve().as_uri()


def relocate_copied_store(tracking_uri: str) -> dict[str, str]:
    """Rewrites artifact URIs of a copied local store to the `mlartifacts/` beside its database.

    Only `sqlite:///` URIs whose database exists are touched; for anything else this does nothing. Returns
    {old root: new root} for each root rewritten.
    """
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return {}
    database = Path(tracking_uri.removeprefix(SQLITE_PREFIX))
    if not database.is_file():
        return {}
    try:
        moved = _rewrite(database, _default_root(database.parent))
    except sqlite3.Error as err:  # a locked or foreign database: the job still runs, with MLflow's own URIs
        logger.warning("could not check %s for a copied artifact location: %s", database, err)
        return {}
    for old, new in moved.items():
        logger.info("MLflow store %s was copied: artifact URIs %s now point to %s", database, old, new)
    return moved


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _rewrite(database: Path, here: str) -> dict[str, str]:
    """Rewrites, in one transaction, every URI under another folder's default artifact root to `here`."""
    moved = {}
    # closing() closes the file; the inner `with connection` commits the transaction (or rolls it back).
    with contextlib.closing(sqlite3.connect(database)) as connection, connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "experiments" not in tables:
            return {}
        for (location,) in connection.execute("SELECT artifact_location FROM experiments").fetchall():
            root = (location or "").rstrip("/")
            if root.startswith("file://") and root.endswith(f"/{DEFAULT_ARTIFACT_FOLDER}") and root != here:
                moved[root] = here
        for old, new in moved.items():
            for table, column in _URI_COLUMNS:
                if table not in tables:
                    continue
                if column not in {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}:
                    continue
                connection.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "  # noqa: S608 (fixed names)
                    f"WHERE {column} = ? OR {column} LIKE ? ESCAPE '\\'",
                    (new, len(old) + 1, old, _like_prefix(old + "/")),
                )
    return moved
