"""The one JSON codec: orjson when installed, the standard library where orjson cannot.

Both directions keep a record's values exactly as received:

- integers of any size stay exact (orjson silently turns an integer beyond 64 bits into a
  float, so a body holding a long run of digits after ``:``, ``[`` or ``,`` is decoded by
  ``json``, which keeps it an ``int``);
- a lone UTF-16 surrogate escape (``"\\ud83d"``: a truncated emoji in a nickname) is valid
  JSON that orjson refuses; ``json`` accepts it, and :func:`dumps_line` writes it back as the
  same ``\\uXXXX`` escape;
- U+0085, U+2028 and U+2029 are written as escapes, so tools that split lines on them
  (Python's ``str.splitlines``, JavaScript) still see one record per line.

A float's spelling is not kept: ``1.10`` is written back as ``1.1`` and ``1E2`` as ``100.0``
(the same number).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["dumps", "dumps_line", "loads"]

try:
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson is absent
    orjson = None  # type: ignore[assignment]

# 19 digits in a row can exceed a signed 64-bit integer; a false positive (digits inside a
# string) only costs the slower decoder. Every digit mapped to "0" and every other byte to a
# space, one ``find`` looks for such a run: ten times cheaper than a regular expression,
# which took three times as long as orjson's decoding of the page (benchmarks/).
_DIGITS_ONLY = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_RUN = b"0" * 19


def _long_number(data: bytes) -> bool:
    return data.translate(_DIGITS_ONLY).find(_LONG_RUN) >= 0


_SEPARATORS = re.compile(b"\xc2\x85|\xe2\x80\xa8|\xe2\x80\xa9")
_ESCAPES = {sep.encode(): f"\\u{ord(sep):04x}".encode() for sep in "\u0085\u2028\u2029"}


def _escape_separator(match: re.Match[bytes]) -> bytes:
    return _ESCAPES[match.group()]


def loads(data: bytes | str) -> Any:
    """Decode one JSON document; raises ``ValueError`` when it is not one."""
    if orjson is not None and not _long_number(data.encode() if isinstance(data, str) else data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # lone surrogates, or not JSON at all: json says which
    return json.loads(data)


def _std_dumps(value: object, indent: int | None) -> bytes:
    separators = (",", ": ") if indent else (",", ":")
    text = json.dumps(value, ensure_ascii=False, separators=separators, indent=indent)
    # A lone surrogate cannot be UTF-8; written as its JSON escape it round-trips.
    return text.encode("utf-8", "backslashreplace")


def dumps(value: object, *, indent: bool = False) -> bytes:
    """One JSON document as UTF-8 bytes, non-ASCII as is, line separators escaped."""
    data: bytes
    if orjson is not None:
        try:
            data = orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else 0)
        except TypeError:  # an integer beyond 64 bits, or a lone surrogate
            data = _std_dumps(value, 2 if indent else None)
    else:  # pragma: no cover - exercised where orjson is absent
        data = _std_dumps(value, 2 if indent else None)
    # Three substring scans cost a quarter of one search for the alternatives.
    if b"\xe2\x80\xa8" in data or b"\xe2\x80\xa9" in data or b"\xc2\x85" in data:
        return _SEPARATORS.sub(_escape_separator, data)
    return data


def dumps_line(value: object) -> bytes:
    """One JSON line: :func:`dumps` followed by a newline."""
    return dumps(value) + b"\n"
