"""Whether existing XMP was read completely: an independent XML parse, and its properties against exiv2's.

exiv2 reads what it can of damaged XMP (a stray ``&``, an unbound prefix, a missing close tag, a truncated
sidecar, a DOCTYPE) and says nothing; writing then drops whatever it skipped (darktable history, the user's
keywords). Before Captioneer writes into a file that already has XMP, :func:`xmp_problem` parses the packet
with expat, refusing DTDs and entities, and checks that every top-level property it finds is one exiv2 read
too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from xml.parsers import expat

RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XML_NS = "http://www.w3.org/XML/1998/namespace"
_SEP = " "  # expat's separator between a namespace URI and a local name (a space cannot occur in either)
# RDF's own attributes on rdf:Description (written without a prefix by old tools) carry no property.
_RDF_SYNTAX = {"about", "ID", "nodeID", "parseType", "resource", "datatype", "type"}


class _Refused(Exception):
    """Internal: the packet declares a DTD or an entity."""


def _refuse(what: str) -> Callable[..., None]:
    """An expat handler (of any arity) that stops the parse: XMP never declares DTDs or entities."""

    def handler(*_args: object) -> None:
        raise _Refused(f"it declares {what}, which XMP never does")

    return handler


def parse_properties(packet: bytes | str) -> set[tuple[str, str]]:
    """The top-level properties (namespace URI, name) of every ``rdf:Description`` in an XMP packet.

    Raises:
        ValueError: the packet is not well-formed XML, uses an unbound prefix, or declares a DTD or an
            entity; the message says where and why.
    """
    parser = expat.ParserCreate(namespace_separator=_SEP)
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse("a DOCTYPE")
    parser.EntityDeclHandler = _refuse("an entity")
    parser.ExternalEntityRefHandler = _refuse("an external entity")
    found: set[tuple[str, str]] = set()
    stack: list[str] = []  # the element names from the root down
    description, rdf = f"{RDF_NS}{_SEP}Description", f"{RDF_NS}{_SEP}RDF"

    def start(name: str, attributes: dict[str, str]) -> None:
        top_description = stack[-2:] == [rdf, description]
        if top_description:
            found.add(_split(name))
        elif name == description and stack[-1:] == [rdf]:
            found.update(
                (uri, local)
                for uri, local in map(_split, attributes)
                if uri not in (RDF_NS, XML_NS) and not (uri == "" and local in _RDF_SYNTAX)
            )
        stack.append(name)

    def end(_name: str) -> None:
        stack.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(packet, True)
    except expat.ExpatError as exc:
        reason = expat.ErrorString(exc.code)  # "not well-formed (invalid token)" says "not well-formed" once
        if reason.startswith("not well-formed (") and reason.endswith(")"):
            reason = reason[len("not well-formed (") : -1]
        raise ValueError(
            f"it is not well-formed XML ({reason} at line {exc.lineno}, column {exc.offset + 1})"
        ) from None
    except _Refused as exc:
        raise ValueError(str(exc)) from None
    return found


def _split(name: str) -> tuple[str, str]:
    uri, _, local = name.rpartition(_SEP)
    return uri, local


_TOP = re.compile(r"[\[/]")


def exiv2_properties(keys: Iterable[str], namespace_of: dict[str, str]) -> set[tuple[str, str]]:
    """The top-level properties (namespace URI, name) behind exiv2 XMP keys (``Xmp.dc.subject``)."""
    properties = set()
    for key in keys:
        _xmp, prefix, rest = key.split(".", 2)
        properties.add((namespace_of.get(prefix, prefix), _TOP.split(rest, 1)[0]))
    return properties


def xmp_problem(packet: bytes | str, keys: Iterable[str], namespace_of: dict[str, str]) -> str:
    """Why exiv2's reading of an XMP packet is not complete, or ``""`` when it is.

    Args:
        packet: the XMP as it is in the file (a sidecar's bytes, or the embedded packet).
        keys: the XMP keys exiv2 read from it.
        namespace_of: exiv2's namespace URI for each prefix in ``keys``.
    """
    try:
        expected = parse_properties(packet)
    except ValueError as exc:
        return str(exc)
    lost = sorted(f"{uri}{name}" for uri, name in expected - exiv2_properties(keys, namespace_of))
    if lost:
        shown = ", ".join(lost[:3]) + (f" and {len(lost) - 3} more" if len(lost) > 3 else "")
        return f"exiv2 could read only part of it (it would lose {shown})"
    return ""
