"""Reference captions in the COCO caption format, matched to the user's photos by file name.

The file reads ``{"images": [{"id": 1, "file_name": "trip/IMG_1.jpg"}], "annotations": [{"image_id": 1,
"caption": "…"}]}``. A ``file_name`` matches a photo whose path ends with it (a relative path, compared part
by part, or a bare file name), case-insensitively: the file may come from another system.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.core.user_files import read_user_text

_SHAPE = '{"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}'


@dataclass(frozen=True)
class References:
    """Reference captions by the file name they were written for.

    Attributes:
        source: the file they were read from, for messages.
        captions: ``file_name`` parts, case-folded (``("trip", "img_1.jpg")``) → its captions.
    """

    source: str
    captions: Mapping[tuple[str, ...], tuple[str, ...]]

    def for_photo(self, photo: Path) -> tuple[str, ...]:
        """The captions for ``photo`` (the longest ``file_name`` its path ends with), or ``()``."""
        parts = tuple(part.casefold() for part in PurePath(photo).parts)
        for length in range(len(parts), 0, -1):
            found = self.captions.get(parts[-length:])
            if found:
                return found
        return ()

    def match(self, photos: Sequence[Path]) -> dict[Path, tuple[str, ...]]:
        """The photos that have reference captions, with them."""
        return {photo: found for photo in photos if (found := self.for_photo(photo))}


def _fail(source: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"The reference file {source} {problem}. It must read {_SHAPE}.")


def _name_parts(file_name: str) -> tuple[str, ...]:
    parts = [part for part in file_name.replace("\\", "/").split("/") if part not in ("", ".")]
    return tuple(part.casefold() for part in parts)


def parse_references(data: object, source: str) -> References:
    """References from a parsed COCO caption file.

    Raises:
        ConfigurationError: the data is not a COCO caption file, in one line naming the first problem.
    """
    if not isinstance(data, dict):
        raise _fail(source, "is not a JSON object")
    images, annotations = data.get("images"), data.get("annotations")
    if not isinstance(images, list) or not isinstance(annotations, list):
        missing = "images" if not isinstance(images, list) else "annotations"
        raise _fail(source, f'has no "{missing}" list')
    names: dict[object, tuple[str, ...]] = {}
    for number, image in enumerate(images, start=1):
        if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
            raise _fail(source, f'has an image (number {number}) without an "id" and a "file_name"')
        parts = _name_parts(image["file_name"])
        if not parts or image["id"] in names:
            problem = "an empty file_name" if not parts else f'the id {image["id"]!r} twice'
            raise _fail(source, f"has {problem} among its images")
        names[image["id"]] = parts
    captions: dict[tuple[str, ...], list[str]] = {}
    for number, annotation in enumerate(annotations, start=1):
        if not isinstance(annotation, dict) or not isinstance(annotation.get("caption"), str):
            raise _fail(source, f'has an annotation (number {number}) without a "caption" text')
        image_id = annotation.get("image_id")
        if image_id not in names:
            problem = f"an annotation (number {number}) for image_id {image_id!r}, not among its images"
            raise _fail(source, f"has {problem}")
        if annotation["caption"].strip():
            captions.setdefault(names[image_id], []).append(annotation["caption"].strip())
    if not captions:
        raise _fail(source, "has no captions")
    return References(source, {name: tuple(texts) for name, texts in captions.items()})


def load_references(path: Path) -> References:
    """Read a COCO caption file.

    Raises:
        ConfigurationError: it cannot be read, is not JSON, or is not a COCO caption file.
    """
    text = read_user_text(path, "the reference file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"The reference file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from None
    except RecursionError:
        raise ConfigurationError(
            f"The reference file {path} nests too deeply to be a COCO caption file."
        ) from None
    return parse_references(data, str(path))
