"""The one way a JSON API view reads its request body.

Every `POST` of the edge and admin APIs takes `Content-Type: application/json` only (415
`ERR_UNSUPPORTED_MEDIA_TYPE` otherwise: a form or `text/plain` post is what a browser sends
across sites without asking), and its body through `protocol.schema.loads`, which refuses
`NaN`/`Infinity` (`ERR_JSON_NONFINITE`) and NUL characters (`ERR_NUL_CHARACTER`).
"""

from __future__ import annotations

import re
from typing import Any

from flask import request

from central.errors import ERR_INVALID, ERR_UNSUPPORTED_MEDIA_TYPE, CentralError
from protocol import schema
from protocol.errors import ERR_NUL_CHARACTER

JSON = "application/json"
_WHOLE = re.compile(r"[0-9]{1,12}")


def whole_number(text: str) -> int | None:
    """Return `text` as a whole number of ASCII digits (at most 12), or None.

    `str.isdigit` takes superscripts and other scripts' digits that `int` refuses ("0²").
    """
    return int(text) if _WHOLE.fullmatch(text) else None


def refuse_nul_in_address() -> None:
    """Refuse a URL whose path or query holds a NUL character (before any view runs).

    PostgreSQL cannot store or compare text holding NUL, and no serial, id or name holds one.
    Public verification is left to answer `malformed` for such a code, as for any other typo:
    it parses a code before it asks the database anything.
    """
    if request.blueprint == "public":
        return
    if "\x00" in request.path or any(
        "\x00" in key or "\x00" in value for key, value in request.args.items(multi=True)
    ):
        raise CentralError(ERR_NUL_CHARACTER, "the address holds a NUL character (%00)")


def json_body(max_bytes: int) -> Any:
    """Return the request's decoded JSON body, or raise a coded error."""
    if request.mimetype != JSON:
        given = (request.content_type or "none")[:64]
        raise CentralError(
            ERR_UNSUPPORTED_MEDIA_TYPE,
            f"send the body as Content-Type: {JSON} (this request said {given!r})",
            415,
        )
    return schema.loads(request.get_data(cache=False), max_bytes)


def json_object(max_bytes: int) -> dict[str, Any]:
    """Return the request's JSON body, which must be an object."""
    body = json_body(max_bytes)
    if not isinstance(body, dict):
        raise CentralError(ERR_INVALID, "send a JSON object")
    return body
