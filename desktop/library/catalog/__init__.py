"""The album catalog: one SQLite file (WAL, foreign keys, checked on open, migrated in order, one writer).

Every SQL statement of the app lives in this package; the rest of the app calls its functions. The modules:
``store`` (the open :class:`Catalog`: libraries, photos, results), ``records``, ``errors``, ``connection``,
``migrations``, ``search`` (the search language and the one text/keyword matching), ``fts`` (the full-text
index and safe MATCH expressions), ``browsing`` (the library
window's queries), ``review`` (review snapshots), ``scanning`` (a scan's writes), ``write_ops`` (metadata
writes and their undo).
"""

from captioneer.desktop.library.catalog.errors import (
    CatalogCorruptError,
    CatalogDiskFullError,
    CatalogError,
    CatalogLockedError,
    CatalogReadOnlyError,
    backup_path,
    default_catalog_path,
    os_storage_error,
    storage_error,
)
from captioneer.desktop.library.catalog.migrations import MIGRATIONS
from captioneer.desktop.library.catalog.records import REVIEW_STATES, REVIEWED_STATES, Photo, Query, Result
from captioneer.desktop.library.catalog.store import Catalog, open_catalog

__all__ = [
    "MIGRATIONS",
    "REVIEWED_STATES",
    "REVIEW_STATES",
    "Catalog",
    "CatalogCorruptError",
    "CatalogDiskFullError",
    "CatalogError",
    "CatalogLockedError",
    "CatalogReadOnlyError",
    "Photo",
    "Query",
    "Result",
    "backup_path",
    "default_catalog_path",
    "open_catalog",
    "os_storage_error",
    "storage_error",
]
