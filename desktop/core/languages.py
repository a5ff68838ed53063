"""The output languages offered by name in the window's pickers (any other language can still be typed)."""

from __future__ import annotations

OUTPUT_LANGUAGES = (
    "English", "Deutsch", "Español", "Français", "Italiano", "Nederlands", "Polski", "Português", "Svenska",
    "Türkçe", "Čeština", "Ελληνικά", "Русский", "Українська", "العربية", "हिन्दी", "日本語", "한국어", "中文",
)
"""Each language in its own name, English (the default of every task and setting) first."""
