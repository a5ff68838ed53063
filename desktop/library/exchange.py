"""Export results as CSV or JSON (every result with its photo's path) and import edited results back."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backends.errors import CaptioneerError
from desktop.library.catalog import REVIEW_STATES, Catalog, Result

EXPORT_COLUMNS = (
    "result_id",
    "path",
    "status",
    "caption",
    "title",
    "alt_text",
    "keywords",
    "language",
    "task",
    "run_id",
    "engine",
    "model",
    "quant",
    "prompt_hash",
    "created_at",
    "edited",
    "review_reason",
    "current",
)
EDITABLE_COLUMNS = ("caption", "title", "alt_text", "keywords", "status")
KEYWORD_SEPARATOR = "; "
IMPORT_STATES = tuple(state for state in REVIEW_STATES if state != "written")
# A cell a spreadsheet would run as a formula gets a leading apostrophe on export; import removes it.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class ImportFileError(CaptioneerError):
    """The file to import cannot be used; nothing was changed."""

    exit_code = 2


def result_record(result: Result) -> dict[str, Any]:
    """One result as plain data, the same for CSV and JSON."""
    return {
        "result_id": result.id,
        "path": result.path,
        "status": result.review,
        "caption": result.caption,
        "title": result.title or "",
        "alt_text": result.alt_text or "",
        "keywords": list(result.keywords),
        "language": result.language,
        "task": result.task,
        "run_id": result.run_id,
        "engine": result.engine,
        "model": result.model,
        "quant": result.quant or "",
        "prompt_hash": result.prompt_hash,
        "created_at": datetime.fromtimestamp(result.created_at, UTC).isoformat(timespec="seconds"),
        "edited": result.edited,
        "review_reason": result.review_reason or "",
        "current": result.current,
    }


def export_json(results: Iterable[Result]) -> str:
    return json.dumps([result_record(result) for result in results], ensure_ascii=False, indent=2) + "\n"


def export_csv(results: Iterable[Result]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for result in results:
        record = result_record(result)
        record["keywords"] = KEYWORD_SEPARATOR.join(record["keywords"])
        record["edited"] = "yes" if record["edited"] else "no"
        record["current"] = "yes" if record["current"] else "no"
        writer.writerow({key: _protect(value) for key, value in record.items()})
    return buffer.getvalue()


def _protect(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _unprotect(value: str) -> str:
    if value.startswith("'") and value[1:].startswith(_FORMULA_STARTS):
        return value[1:]
    return value


@dataclass(frozen=True)
class Edit:
    """One row of an import: the result it changes and the new values (None = column absent)."""

    row: int
    result_id: int
    caption: str | None = None
    title: str | None = None
    alt_text: str | None = None
    keywords: tuple[str, ...] | None = None
    status: str | None = None


@dataclass
class ImportReport:
    updated: int = 0
    unchanged: int = 0


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of an exported (and edited) CSV or JSON file.

    Raises:
        ImportFileError: the file cannot be read or has no usable columns.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ImportFileError(f"Cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ImportFileError(
            f"{path} is not UTF-8 text: save it from the spreadsheet as CSV UTF-8."
        ) from None
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ImportFileError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno}).") from None
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise ImportFileError(
                f"{path} must hold a list of result objects, as `captioneer export` writes."
            )
        return rows
    reader = csv.DictReader(io.StringIO(text))
    columns = set(reader.fieldnames or ())
    if not columns & {"result_id", "path"} or not columns & set(EDITABLE_COLUMNS):
        raise ImportFileError(
            f"{path} needs a result_id or path column and at least one of: {', '.join(EDITABLE_COLUMNS)} "
            "(export with `captioneer export --format csv` and edit that file)."
        )
    rows = []
    for row in reader:
        rows.append(
            {key: _unprotect(value) for key, value in row.items() if key is not None and value is not None}
        )
    return rows


def plan_import(catalog: Catalog, rows: Sequence[dict[str, Any]]) -> list[Edit]:
    """Check every row against the catalog and turn it into an :class:`Edit`.

    Raises:
        ImportFileError: listing every bad row; nothing is changed when any row is bad.
    """
    edits: list[Edit] = []
    problems: list[str] = []
    for number, row in enumerate(rows, start=2):
        try:
            edits.append(_edit_from_row(catalog, number, row))
        except ValueError as exc:
            problems.append(f"row {number}: {exc}")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ImportFileError(f"Nothing was imported; fix these rows first:\n  {shown}{more}")
    return edits


def _edit_from_row(catalog: Catalog, number: int, row: dict[str, Any]) -> Edit:
    raw_id = str(row.get("result_id", "") or "").strip()
    path = str(row.get("path", "") or "").strip()
    if raw_id:
        if not raw_id.isdigit():
            raise ValueError(f"result_id '{raw_id}' is not a number")
        result = catalog.result(int(raw_id))
        if result is None:
            raise ValueError(f"there is no result {raw_id} in the catalog")
        if path and path != result.path:
            raise ValueError(f"result {raw_id} belongs to {result.path}, not {path}")
    elif path:
        found = catalog.results(current_only=True, where="p.path = ?", params=(path,))
        if not found:
            raise ValueError(f"no result for {path}")
        if len(found) > 1:
            raise ValueError(f"{path} has results for several tasks: add the result_id column")
        result = found[0]
    else:
        raise ValueError("needs a result_id or a path")
    status = row.get("status")
    if status is not None:
        status = str(status).strip().lower().replace("-", "_").replace(" ", "_")
        if status == result.review:
            status = None
        elif status not in IMPORT_STATES:
            raise ValueError(f"status '{row['status']}' is not one of: {', '.join(IMPORT_STATES)}")
    keywords = row.get("keywords")
    if isinstance(keywords, str):
        keywords = tuple(k.strip() for k in keywords.split(";") if k.strip())
    elif isinstance(keywords, list):
        keywords = tuple(str(k).strip() for k in keywords if str(k).strip())
    elif keywords is not None:
        raise ValueError("keywords must be text separated by ';' or a list")
    return Edit(
        row=number,
        result_id=result.id,
        caption=_text(row, "caption"),
        title=_text(row, "title"),
        alt_text=_text(row, "alt_text"),
        keywords=keywords,
        status=status,
    )


def _text(row: dict[str, Any], column: str) -> str | None:
    value = row.get(column)
    return None if value is None else str(value).strip()


def apply_import(catalog: Catalog, edits: Sequence[Edit]) -> ImportReport:
    """Apply checked edits; an edited result that was already written goes back to ``approved``."""
    report = ImportReport()
    for edit in edits:
        changed = catalog.edit_result(
            edit.result_id,
            caption=edit.caption,
            keywords=edit.keywords,
            title=edit.title,
            alt_text=edit.alt_text,
            review=edit.status,
        )
        if changed:
            report.updated += 1
        else:
            report.unchanged += 1
    return report


def import_file(catalog: Catalog, path: Path) -> ImportReport:
    """Read, check and apply an edited export. All rows are checked before anything changes."""
    return apply_import(catalog, plan_import(catalog, read_rows(path)))
