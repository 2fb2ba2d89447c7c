"""Read any GS1 data a scanner sends: element strings with any AI, and Digital Link URIs.

LineLedger writes only a few AIs (`protocol.gs1`), but the line scans what other plants and
suppliers print too: a pharma carton carries (01), (17), (10), (21) and national AIs such as
(710)/(712). biip carries the whole GS1 AI table (formats, date checks, check digits), so
reading is left to it; this module adds our own rules on top: no empty field between two
separators, no AI twice, every GTIN/SSCC/GLN check digit right, and a size limit.
Pure code: no I/O, no clock.
"""

from __future__ import annotations

from biip import ParseError
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_element_strings import GS1ElementString
from biip.gs1_messages import GS1Message

from protocol.errors import ProtocolError

ERR_GS1_DATA = "ERR_GS1_DATA"
GS = "\x1d"
# A GS1 DataMatrix holds at most 2335 alphanumeric characters; a scanner frame 4096 bytes.
MAX_GS1_DATA = 2400

Fields = tuple[tuple[str, str], ...]


def _fields(elements: list[GS1ElementString], what: str) -> Fields:
    out: list[tuple[str, str]] = []
    for element in elements:
        ai = element.ai.ai
        problem = element.gtin_error or element.sscc_error or element.gln_error
        if problem:
            raise ProtocolError(ERR_GS1_DATA, f"AI ({ai}) of the {what}: {problem}")
        if any(ai == seen for seen, _ in out):
            raise ProtocolError(ERR_GS1_DATA, f"AI ({ai}) appears twice in the {what}")
        out.append((ai, element.value))
    if not out:
        raise ProtocolError(ERR_GS1_DATA, f"the {what} holds no GS1 data")
    return tuple(out)


def read_element_string(data: object) -> Fields:
    """Return the (AI, value) pairs of an element string as scanned (GS between fields)."""
    if not isinstance(data, str) or not data.strip():
        raise ProtocolError(ERR_GS1_DATA, "an element string is non-empty text")
    if len(data) > MAX_GS1_DATA:
        raise ProtocolError(ERR_GS1_DATA, f"the element string is over {MAX_GS1_DATA} characters")
    if GS + GS in data:
        raise ProtocolError(ERR_GS1_DATA, "the element string has an empty field (GS GS)")
    try:
        message = GS1Message.parse(data)
    except (ParseError, ValueError) as exc:
        raise ProtocolError(ERR_GS1_DATA, _short(exc)) from None
    return _fields(message.element_strings, "element string")


def read_digital_link(url: object) -> Fields:
    """Return the key and qualifiers in a GS1 Digital Link URI's path (query attributes left
    out: the path names the item), or raise ERR_GS1_DATA if it is not a valid Digital Link."""
    if not isinstance(url, str) or len(url) > MAX_GS1_DATA:
        raise ProtocolError(ERR_GS1_DATA, "a Digital Link is a URI of at most 2400 characters")
    if not url[:8].lower().startswith(("https://", "http://")):
        raise ProtocolError(ERR_GS1_DATA, "a Digital Link is an http(s) URI")
    path_only = url.split("#", 1)[0].split("?", 1)[0]
    try:
        link = GS1DigitalLinkURI.parse(path_only)
    except (ParseError, ValueError) as exc:
        raise ProtocolError(ERR_GS1_DATA, _short(exc)) from None
    return _fields(link.element_strings, "Digital Link")


def _short(exc: Exception) -> str:
    text = str(exc).replace(GS, "<GS>")
    return text if len(text) <= 200 else text[:197] + "..."
