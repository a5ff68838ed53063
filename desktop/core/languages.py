"""The output languages in one table: each one's own name (what the window's pickers offer), its English name
(what the tagger's language check knows) and its BCP-47 tag (what the metadata writer records). A language
not listed can still be typed; it is asked for by that name and written without a tag."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    """One output language.

    Attributes:
        name: the language in its own words (``Deutsch``).
        english: its English name, lower case (``german``).
        tag: its BCP-47 tag (``de``).
        offered: whether the window's language pickers list it.
    """

    name: str
    english: str
    tag: str
    offered: bool = True


LANGUAGES = (
    Language("English", "english", "en"),
    Language("Deutsch", "german", "de"),
    Language("Español", "spanish", "es"),
    Language("Français", "french", "fr"),
    Language("Italiano", "italian", "it"),
    Language("Nederlands", "dutch", "nl"),
    Language("Polski", "polish", "pl"),
    Language("Português", "portuguese", "pt"),
    Language("Svenska", "swedish", "sv"),
    Language("Türkçe", "turkish", "tr"),
    Language("Čeština", "czech", "cs"),
    Language("Ελληνικά", "greek", "el"),
    Language("Русский", "russian", "ru"),
    Language("Українська", "ukrainian", "uk"),
    Language("العربية", "arabic", "ar"),
    Language("हिन्दी", "hindi", "hi"),
    Language("日本語", "japanese", "ja"),
    Language("한국어", "korean", "ko"),
    Language("中文", "chinese", "zh"),
    Language("Dansk", "danish", "da", offered=False),
    Language("Norsk", "norwegian", "no", offered=False),
    Language("Suomi", "finnish", "fi", offered=False),
    Language("עברית", "hebrew", "he", offered=False),
    Language("ไทย", "thai", "th", offered=False),
    Language("Tiếng Việt", "vietnamese", "vi", offered=False),
    Language("Bahasa Indonesia", "indonesian", "id", offered=False),
    Language("Română", "romanian", "ro", offered=False),
    Language("Magyar", "hungarian", "hu", offered=False),
    Language("Български", "bulgarian", "bg", offered=False),
)

OUTPUT_LANGUAGES = tuple(language.name for language in LANGUAGES if language.offered)
"""The names the pickers offer, English (the default of every task and setting) first."""

_BY_NAME = {name.casefold(): language for language in LANGUAGES for name in (language.name, language.english)}


def find_language(name: str) -> Language | None:
    """The language a person named, in its own words or in English, in any case (``Deutsch``, ``german``)."""
    return _BY_NAME.get(name.strip().casefold())
