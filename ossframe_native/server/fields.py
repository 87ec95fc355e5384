"""The one parser for every number a request carries (query, headers, presigned URLs).

``str.isdigit`` accepts Unicode digits that ``int`` refuses (``²``) and ``int`` reads any number
of digits; a request's numbers are instead at most :data:`MAX_DIGITS` ASCII digits, so no value
a client sends can raise or cost more than a few microseconds.
"""

from __future__ import annotations

from ossframe_native.server.xml import OssError

MAX_DIGITS = 19  # every value fits in a signed 64-bit integer
_ASCII_DIGITS = frozenset("0123456789")


def ascii_int(text: str | None, max_digits: int = MAX_DIGITS) -> int | None:
    """``text`` as a non-negative integer if it is 1 to ``max_digits`` ASCII digits, else
    ``None`` (never an exception)."""
    if not text or len(text) > max_digits or not _ASCII_DIGITS.issuperset(text):
        return None
    return int(text)


def count_field(
    text: str | None, name: str, low: int, high: int, default: int | None = None
) -> int:
    """A numeric request field in ``low..high``; 400 ``InvalidArgument`` otherwise.

    An absent or empty field is ``default`` when one is given.
    """
    if not text and default is not None:
        return default
    value = ascii_int(text)
    if value is None or not low <= value <= high:
        shown = (text or "")[:40]
        raise OssError(400, "InvalidArgument", f"{name} {shown!r}: give an integer {low} to {high}")
    return value
