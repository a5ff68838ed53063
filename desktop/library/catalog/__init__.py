"""The album catalog: one SQLite file (WAL, foreign keys, checked on open, migrated in order, one writer).

Every SQL statement of the app lives in this package; the rest of the app calls its functions.
"""

from captioneer.desktop.library.catalog.connection import BACKUP_EVERY_SECONDS
from captioneer.desktop.library.catalog.errors import (
    CATALOG_NAME,
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
from captioneer.desktop.library.catalog.records import (
    RESULT_COLUMNS,
    REVIEW_STATES,
    REVIEWED_STATES,
    Photo,
    Result,
    keyword_list,
    result_from_row,
)
from captioneer.desktop.library.catalog.store import Catalog, open_catalog

__all__ = [
    "BACKUP_EVERY_SECONDS",
    "CATALOG_NAME",
    "MIGRATIONS",
    "RESULT_COLUMNS",
    "REVIEWED_STATES",
    "REVIEW_STATES",
    "Catalog",
    "CatalogCorruptError",
    "CatalogDiskFullError",
    "CatalogError",
    "CatalogLockedError",
    "CatalogReadOnlyError",
    "Photo",
    "Result",
    "backup_path",
    "default_catalog_path",
    "keyword_list",
    "open_catalog",
    "os_storage_error",
    "result_from_row",
    "storage_error",
]
