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

from captioneer.backends.errors import CaptioneerError
from captioneer.desktop.library.catalog import REVIEW_STATES, Catalog, Result

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
    "context",
    "current",
)
EDITABLE_COLUMNS = ("caption", "title", "alt_text", "keywords", "status")
KEYWORD_SEPARATOR = "; "
IMPORT_STATES = tuple(state for state in REVIEW_STATES if state != "written")
# A cell a spreadsheet would run as a formula gets a leading apostrophe on export; import removes it. A
# cell that starts with an apostrophe gets one more, so removing one on import gives back exactly the text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PROTECTED_STARTS = (*_FORMULA_STARTS, "'")
MAX_RESULT_ID = 2**63 - 1
"""SQLite's largest integer: a bigger result id cannot name a result."""
MAX_CELL_CHARS = 131_072
"""The longest cell an import reads (Python's csv limit, applied to JSON too)."""


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
        "context": dict(result.context),
        "current": result.current,
    }


def export_json(results: Iterable[Result]) -> str:
    return json.dumps([result_record(result) for result in results], ensure_ascii=False, indent=2) + "\n"


def export_csv(results: Iterable[Result]) -> str:
    buffer = io.StringIO()
    # Every cell quoted: with minimal quoting a bare CR in a caption went out unquoted and split the row.
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writeheader()
    for result in results:
        record = result_record(result)
        record["keywords"] = KEYWORD_SEPARATOR.join(record["keywords"])
        record["edited"] = "yes" if record["edited"] else "no"
        record["current"] = "yes" if record["current"] else "no"
        record["context"] = json.dumps(record["context"], ensure_ascii=False) if record["context"] else ""
        writer.writerow({key: _protect(value) for key, value in record.items()})
    return buffer.getvalue()


def _protect(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_PROTECTED_STARTS):
        return "'" + value
    return value


def _unprotect(value: str) -> str:
    if value.startswith("'") and value[1:].startswith(_PROTECTED_STARTS):
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
        # Bytes, not read_text: newline translation would turn a caption's bare CR (or CRLF) into LF.
        text = path.read_bytes().decode("utf-8-sig")
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
        except RecursionError:
            raise ImportFileError(
                f"{path} is nested too deeply to be an export: it must hold a list of result objects, as "
                "`captioneer export --format json` writes."
            ) from None
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise ImportFileError(
                f"{path} must hold a list of result objects, as `captioneer export` writes."
            )
        return rows
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = set(reader.fieldnames or ())
    if not columns & {"result_id", "path"} or not columns & set(EDITABLE_COLUMNS):
        raise ImportFileError(
            f"{path} needs a result_id or path column and at least one of: {', '.join(EDITABLE_COLUMNS)} "
            "(export with `captioneer export --format csv` and edit that file)."
        )
    rows = []
    try:
        for row in reader:
            rows.append(
                {
                    key: _unprotect(value)
                    for key, value in row.items()
                    if key is not None and value is not None
                }
            )
    except csv.Error as exc:
        detail = str(exc)
        if "field larger than field limit" in detail:
            detail = f"a cell is longer than {MAX_CELL_CHARS:,} characters"
        raise ImportFileError(
            f"Nothing was imported: {path} row {len(rows) + 2} cannot be read ({detail})."
        ) from None
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
    if len(problems) == 1:
        raise ImportFileError(f"Nothing was imported; fix {problems[0]}")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ImportFileError(f"Nothing was imported; fix these rows first:\n  {shown}{more}")
    return edits


def _edit_from_row(catalog: Catalog, number: int, row: dict[str, Any]) -> Edit:
    for column, value in row.items():
        if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
            raise ValueError(f"{column} is longer than {MAX_CELL_CHARS:,} characters")
    raw_id = str(row.get("result_id", "") or "").strip()
    path = str(row.get("path", "") or "").strip()
    if raw_id:
        if not (raw_id.isascii() and raw_id.isdigit()):
            raise ValueError(f"result_id '{_short(raw_id)}' is not a number")
        if int(raw_id) > MAX_RESULT_ID:
            raise ValueError(f"result_id {_short(raw_id)} is out of range: there is no such result")
        result = catalog.result(int(raw_id))
        if result is None:
            raise ValueError(f"there is no result {raw_id} in the catalog")
        if path and path != result.path:
            raise ValueError(f"result {raw_id} belongs to {result.path}, not {path}")
    elif path:
        found = catalog.results(current_only=True, path=path)
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
        if not all(isinstance(k, str) for k in keywords):
            wrong = next(k for k in keywords if not isinstance(k, str))
            raise ValueError(f"keywords must be text, not {type(wrong).__name__} {_short(json.dumps(wrong))}")
        keywords = tuple(k.strip() for k in keywords if k.strip())
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
    """A text column as it is (no trimming: an unchanged export must import as no change at all)."""
    value = row.get(column)
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{column} must be text, not {type(value).__name__} {_short(json.dumps(value))}")


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def apply_import(catalog: Catalog, edits: Sequence[Edit]) -> ImportReport:
    """Apply checked edits in one transaction (all land or none, even if the disk fills up half-way); an
    edited result that was already written goes back to ``approved``."""
    report = ImportReport()
    with catalog.transaction():
        for edit in edits:
            _apply_edit(catalog, edit, report)
    return report


def _apply_edit(catalog: Catalog, edit: Edit, report: ImportReport) -> None:
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


def import_file(catalog: Catalog, path: Path) -> ImportReport:
    """Read, check and apply an edited export. All rows are checked before anything changes."""
    return apply_import(catalog, plan_import(catalog, read_rows(path)))
