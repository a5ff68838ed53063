"""Context in the prompt: which facts about a photo (folder, capture date, place, camera, its existing caption
and keywords) and which typed fields (event, people, location) a run tells the model, and how they are
cleaned, limited and rendered into the prompt's ``{context}`` slot. Pure functions; reading the facts is
library/photo_context.py's job."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.core.answer_text import clean_text

PHOTO_VARIABLES = ("folder", "path", "date", "place", "camera", "caption", "keywords")
"""What a run can take from each photo, in the order the window shows them."""
TYPED_FIELDS = ("event", "people", "location")
"""What the person types once for the whole run."""
VARIABLE_LABELS = {
    "folder": "Folder name",
    "path": "Folders below the library",
    "date": "Capture date (EXIF)",
    "place": "Place from GPS (offline)",
    "camera": "Camera",
    "caption": "Existing caption",
    "keywords": "Existing keywords",
}
LIMITS = {
    "folder": 80,
    "path": 160,
    "date": 10,
    "place": 100,
    "camera": 60,
    "caption": 300,
    "keywords": 200,
    "event": 120,
    "people": 160,
    "location": 120,
}
"""Most characters of each value sent: enough to help, too few to drown the image or blow the context."""
MAX_KEYWORDS = 20
PLACE_RADIUS_KM = 50.0
"""A GPS position further than this from the nearest known town names no place (at sea, in a desert)."""
INSTRUCTION = "Use this context only where the photo agrees with it; never describe anything you cannot see."
_CHAT_TOKENS = re.compile(r"<\|[^|<>]{0,40}\|>")
"""Chat-template markers (``<|im_start|>``): text from a file must never open a turn of its own."""
_EXIF_DATE = re.compile(r"^\s*(\d{4})[:\-](\d{2})[:\-](\d{2})")
_XMP_GPS = re.compile(r"^\s*(\d+(?:\.\d+)?),(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?\s*([NSEWnsew])\s*$")


@dataclass(frozen=True)
class ContextSpec:
    """What context a run sends: photo variables (see :data:`PHOTO_VARIABLES`) and the typed fields."""

    variables: tuple[str, ...] = ()
    event: str = ""
    people: str = ""
    location: str = ""

    @property
    def on(self) -> bool:
        return bool(self.variables) or any(self.typed().values())

    def typed(self) -> dict[str, str]:
        return {"event": self.event, "people": self.people, "location": self.location}


@dataclass(frozen=True)
class PhotoFacts:
    """What was found about one photo; None (or empty) where the photo does not say."""

    folder: str | None = None
    path: str | None = None
    date: str | None = None
    place: str | None = None
    camera: str | None = None
    caption: str | None = None
    keywords: tuple[str, ...] = field(default_factory=tuple)


def parse_variables(text: str) -> tuple[str, ...]:
    """``folder,date,place`` (or ``all``) as the variables in canonical order.

    Raises:
        ConfigurationError: a name is not one of :data:`PHOTO_VARIABLES`.
    """
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if "all" in names:
        return PHOTO_VARIABLES
    unknown = [name for name in names if name not in PHOTO_VARIABLES]
    if unknown:
        raise ConfigurationError(
            f"Unknown context '{unknown[0]}': choose from {', '.join(PHOTO_VARIABLES)} or all."
        )
    return ordered_variables(names)


def ordered_variables(names: Iterable[str]) -> tuple[str, ...]:
    """The known names among ``names``, once each, in canonical order (stored specs stay comparable)."""
    wanted = set(names)
    return tuple(name for name in PHOTO_VARIABLES if name in wanted)


def clean_value(text: str, limit: int) -> str:
    """``text`` made safe to quote in a prompt: one line, no control characters or chat-template markers,
    double quotes made single (the value cannot close its quotes), cut at ``limit`` characters with "…"."""
    text = clean_text(_CHAT_TOKENS.sub(" ", text), multiline=False).replace('"', "'")
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: max(0, limit - 1)].rstrip() + "…"
    return text


def keyword_value(keywords: Iterable[str], limit: int = LIMITS["keywords"]) -> str:
    """Keywords as one ``a, b, c`` value: whole keywords only, at most :data:`MAX_KEYWORDS` and ``limit``
    characters."""
    kept: list[str] = []
    length = 0
    for keyword in keywords:
        word = clean_value(keyword, 40).replace(",", " ")
        if not word or word.casefold() in (k.casefold() for k in kept):
            continue
        if len(kept) >= MAX_KEYWORDS or length + len(word) + 2 > limit:
            break
        kept.append(word)
        length += len(word) + 2
    return ", ".join(kept)


def context_values(spec: ContextSpec, facts: PhotoFacts) -> dict[str, str]:
    """The context one photo's prompt gets, by name: each chosen variable the photo has and each typed field
    filled in, cleaned and limited. This is what is sent and what the result's provenance records."""
    values: dict[str, str] = {}
    for name in spec.variables:
        raw: str | None
        if name == "keywords":
            raw = keyword_value(facts.keywords)
        elif name == "folder" and "path" in spec.variables:
            continue  # the path names the folder already
        else:
            raw = getattr(facts, name)
        value = clean_value(raw, LIMITS[name]) if raw else ""
        if value:
            values[name] = value
    for name, typed in spec.typed().items():
        value = clean_value(typed, LIMITS[name]) if typed else ""
        if value:
            values[name] = value
    return values


def render_context(values: Mapping[str, str]) -> str:
    """The prompt's ``{context}`` block: empty without values (the prompt is then exactly as without
    context), else ``Context: taken 2024-05-01 in Paris, France; folder "Wedding 2024"; …`` with the
    instruction to use it only where the photo agrees, ending in a blank line before the task's words."""
    if not values:
        return ""
    parts: list[str] = []
    date, place = values.get("date"), values.get("place")
    if date or place:
        parts.append("taken" + (f" {date}" if date else "") + (f" in {place}" if place else ""))
    for name, label in (
        ("location", "location"),
        ("event", "event"),
        ("people", "people"),
        ("folder", "folder"),
        ("path", "folder"),
        ("camera", "camera"),
        ("caption", "existing caption"),
        ("keywords", "existing keywords"),
    ):
        if values.get(name):
            parts.append(f'{label} "{values[name]}"')
    return f"Context: {'; '.join(parts)}. {INSTRUCTION}\n\n"


def context_shape(spec: ContextSpec) -> str:
    """The context block a run's photos share, with each photo's value as ``<name>``: what the run's prompt
    hash covers, so a run resumes only with the same variables and typed fields."""
    if not spec.on:
        return ""
    facts = PhotoFacts(**{name: f"<{name}>" for name in PHOTO_VARIABLES if name != "keywords"})
    values = context_values(spec, facts)
    if "keywords" in spec.variables:
        values["keywords"] = "<keywords>"
    return render_context(values)


def describe_spec(spec: ContextSpec) -> str:
    """One line for people about a run's context: ``date, place · event Anna's wedding``; empty: none."""
    typed = [f"{name} {value}" for name, value in spec.typed().items() if value]
    return " · ".join(([", ".join(spec.variables)] if spec.variables else []) + typed)


def describe_context(values: Mapping[str, str]) -> str:
    """One line for people (review, the details panel): ``date 2024-05-01 · place Paris, France``."""
    return " · ".join(f"{name} {value}" for name, value in values.items())


# -- the facts, from what files say ------------------------------------------------------------------------


def capture_date(text: str | None) -> str | None:
    """``2024-05-01`` from an EXIF ``2024:05:01 14:03:22`` or XMP ``2024-05-01T14:03:22+02:00``; None for
    an empty, zeroed or impossible date (cameras write ``0000:00:00 00:00:00`` when the clock was unset)."""
    match = _EXIF_DATE.match(text or "")
    if match is None:
        return None
    try:
        day = datetime(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None
    return day.strftime("%Y-%m-%d")


def camera_name(make: str | None, model: str | None) -> str | None:
    """``Canon EOS R5`` from make ``Canon`` and model ``Canon EOS R5``; the make is added only where the
    model does not already start with it (``NIKON CORPORATION`` + ``NIKON D750`` is ``NIKON D750``)."""
    make = " ".join((make or "").split())
    model = " ".join((model or "").split())
    if not model:
        return make or None
    brand = make.split(" ")[0].casefold() if make else ""
    if not brand or model.casefold().startswith(brand):
        return model
    return f"{make} {model}"


def gps_degrees(parts: Iterable[float], ref: str) -> float:
    """Degrees from EXIF's (degrees, minutes, seconds) and its N/S/E/W reference."""
    values = list(parts) + [0.0, 0.0, 0.0]
    degrees = values[0] + values[1] / 60 + values[2] / 3600
    return -degrees if ref.strip().upper() in ("S", "W") else degrees


def xmp_gps_degrees(text: str | None) -> float | None:
    """Degrees from XMP's ``48,51.2964N`` or ``48,51,17.8N``; None when it is not that."""
    match = _XMP_GPS.match(text or "")
    if match is None:
        return None
    parts = [float(match[1]), float(match[2]), float(match[3] or 0)]
    return gps_degrees(parts, match[4])


def valid_position(latitude: float | None, longitude: float | None) -> bool:
    """A position worth looking up: both numbers, in range, and not 0,0 (what a GPS without a fix writes)."""
    if latitude is None or longitude is None or not (math.isfinite(latitude) and math.isfinite(longitude)):
        return False
    if (latitude, longitude) == (0.0, 0.0):
        return False
    return -90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (latitude, longitude) positions."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


CITY_POPULATION = 100_000
"""Towns this big are what people name a photo after when one is near (see :func:`prefer_city`)."""
CITY_REACH = 2.0
CITY_MAX_KM = 15.0


def prefer_city(nearest_km: float, city_km: float | None) -> bool:
    """Whether to name a photo after the nearest big city (:data:`CITY_POPULATION`) rather than the nearest
    town: when the city is at most :data:`CITY_REACH` times as far (and within :data:`CITY_MAX_KM`). GeoNames
    lists a big city's suburbs as towns of their own, so the Eiffel Tower's nearest town is Vanves (3.3 km),
    while Paris's point is 4 km away; a village 1 km off with the city 20 km away stays the village."""
    if city_km is None or city_km > CITY_MAX_KM:
        return False
    return city_km <= max(CITY_REACH * nearest_km, nearest_km + 1.0)


def place_name(city: str, state: str, country: str, distance: float) -> str | None:
    """``Paris, Île-de-France, France`` for the nearest known town; the state only where it adds something;
    None when the town is more than :data:`PLACE_RADIUS_KM` away."""
    if distance > PLACE_RADIUS_KM:
        return None
    parts: list[str] = []
    for part in (city, state, country):
        part = " ".join((part or "").split())
        if part and part.casefold() not in (p.casefold() for p in parts):
            parts.append(part)
    return ", ".join(parts) or None
