"""Parse and validate a model's structured (JSON) answer against the task's schema."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from captioneer.backends.errors import InvalidOutputError, TruncatedOutputError, setting


def truncation_message(max_tokens: int) -> str:
    """What to tell a person whose answer the engine cut off at ``max_tokens`` (built with :func:`setting`:
    render it with ``cli_text`` or ``window_text``)."""
    where = setting("max_tokens", window="“Max answer length” in Settings")
    return f"The answer was cut off at {max_tokens} tokens; raise the maximum answer length ({where})."


def _strip_fences(text: str) -> str:
    """Models sometimes wrap JSON in a Markdown fence even when told not to."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        if stripped.rstrip().endswith("```"):
            stripped = stripped.rstrip()[:-3]
    return stripped.strip()


def drop_unknown_keys(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` without the object keys ``schema`` does not name, where it names its ``properties``.

    A model that adds a key nobody asked for has still answered what was asked; the schema may say
    ``additionalProperties: false`` (that keeps a grammar-constrained engine from inventing keys) without
    making such an answer fail. Nested objects and array items are cleaned the same way.
    """
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        properties = schema["properties"]
        return {
            key: drop_unknown_keys(item, properties[key]) for key, item in value.items() if key in properties
        }
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [drop_unknown_keys(item, schema["items"]) for item in value]
    return value


def parse_structured(text: str, schema: dict[str, Any], *, truncated_at: int | None = None) -> dict[str, Any]:
    """Return the JSON object in ``text`` if it satisfies ``schema``; raise InvalidOutputError otherwise.

    Keys the schema does not name are dropped, not refused. Raw control characters inside strings (a newline
    an engine without a grammar let through) are accepted here; whoever stores the answer removes them.

    Args:
        truncated_at: the engine cut this answer off at that many tokens: it is refused as cut off
            (:class:`TruncatedOutputError`) and never parsed, so a lucky prefix cannot pass as an answer.
    """
    if truncated_at is not None:
        raise TruncatedOutputError(truncation_message(truncated_at), raw=text)
    body = _strip_fences(text)
    if not body:
        raise InvalidOutputError("The model returned an empty answer instead of JSON.", raw=text)
    try:
        value = json.loads(body, strict=False)
    except json.JSONDecodeError as exc:
        # json's messages end in "at" when they name a position ("Unterminated string starting at").
        what = exc.msg.removesuffix(" at")
        raise InvalidOutputError(
            f"The model's answer is not valid JSON ({what} at character {exc.pos}).", raw=text
        ) from None
    value = drop_unknown_keys(value, schema)
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the answer"
        raise InvalidOutputError(
            f"The model's JSON does not match the task's schema ({where}: {exc.message}).", raw=text
        ) from None
    return value
