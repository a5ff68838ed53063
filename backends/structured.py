"""Parse and validate a model's structured (JSON) answer against the task's schema."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from backends.errors import InvalidOutputError


def _strip_fences(text: str) -> str:
    """Models sometimes wrap JSON in a Markdown fence even when told not to."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        if stripped.rstrip().endswith("```"):
            stripped = stripped.rstrip()[:-3]
    return stripped.strip()


def parse_structured(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON object in ``text`` if it satisfies ``schema``; raise InvalidOutputError otherwise."""
    body = _strip_fences(text)
    if not body:
        raise InvalidOutputError("The model returned an empty answer instead of JSON.", raw=text)
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise InvalidOutputError(
            f"The model's answer is not valid JSON ({exc.msg} at character {exc.pos}).", raw=text
        ) from None
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the answer"
        raise InvalidOutputError(
            f"The model's JSON does not match the task's schema ({where}: {exc.message}).", raw=text
        ) from None
    return value
