"""Control characters never reach a stored or written text (they are illegal in XML, so in XMP)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from captioneer.desktop.core.answer_text import clean_answer_data, clean_text


@pytest.mark.parametrize(
    ("text", "multiline", "expected"),
    [
        ("A dog on grass.", True, "A dog on grass."),
        ("A dog\non grass.", True, "A dog\non grass."),
        ("Col 1\tCol 2", True, "Col 1\tCol 2"),
        ("Line 1\r\nLine 2\rLine 3", True, "Line 1\nLine 2\nLine 3"),
        ("NUL\x00 bell\x07 escape\x1b[31m", True, "NUL bell escape[31m"),
        ("form\x0cfeed vertical\x0btab", True, "formfeed verticaltab"),
        ("delete\x7f and C1\x85\x9f", True, "delete and C1"),
        ("nonchar \ufffe\uffff end", True, "nonchar  end"),
        ("lone \ud800 surrogate", True, "lone  surrogate"),
        ("émoji 🐕 and CJK 犬 stay", True, "émoji 🐕 and CJK 犬 stay"),
        ("keyword\nwith  break", False, "keyword with break"),
        ("\ttab\tkeyword\x00 ", False, "tab keyword"),
        ("title\r\nline", False, "title line"),
        ("", False, ""),
    ],
)
def test_clean_text(text: str, multiline: bool, expected: str) -> None:
    assert clean_text(text, multiline=multiline) == expected


def test_every_cleaned_text_is_legal_in_xml() -> None:
    every_char = "".join(chr(code) for code in range(0x0, 0x3000)) + "\ud800\udfff\ufffe\uffff"
    for multiline in (True, False):
        cleaned = clean_text(every_char, multiline=multiline)
        ET.fromstring(f"<x>{cleaned.replace('&', '&amp;').replace('<', '&lt;')}</x>".encode())
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", cleaned)


def test_clean_answer_data_keeps_lines_only_where_a_text_may_span_lines() -> None:
    data = {
        "caption": "Two dogs\non grass.\x00",
        "title": "Dogs\nplaying",
        "alt_text": "Two dogs\tplaying\x1b",
        "keywords": ["dog\n", "grass\x07", "green\tfield"],
        "hashtags": ["#dog\r\n"],
        "score": 3,
    }
    assert clean_answer_data(data, {"title", "alt_text", "keywords", "hashtags"}) == {
        "caption": "Two dogs\non grass.",
        "title": "Dogs playing",
        "alt_text": "Two dogs playing",
        "keywords": ["dog", "grass", "green field"],
        "hashtags": ["#dog"],
        "score": 3,
    }
