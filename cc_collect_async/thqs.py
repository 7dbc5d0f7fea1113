"""THQS request signing: the vendor's scheme for authenticating every collect call.

The query string is the request parameters (None dropped), each key and value encoded the
way :func:`urllib.parse.quote_plus` does, sorted by key and joined with ``&``. The API key
never travels: it is only the salt of an MD5 over that string plus the current Unix time.
A signature is only valid for a short while, so callers sign once per attempt.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from urllib.parse import quote_plus

__all__ = ["Clock", "encode_params", "sign", "signature"]

Clock = Callable[[], float]

ParamValue = str | int | float | bool | None


def _text(value: object) -> str:
    if isinstance(value, bool):
        # The vendor is a PHP/Python shop that expects 1/0; "True" would never match.
        return "1" if value else "0"
    return str(value)


# What quote_plus leaves as it is. Most keys and values (ids, numbers, dates without their
# time) are only these, and the check is several times cheaper than quoting (benchmarks/).
_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch


def _quote(text: str) -> str:
    return text if _PLAIN(text) else quote_plus(text)


def encode_params(params: Mapping[str, object]) -> str:
    """The canonical, signed part of the query: sorted ``key=value`` pairs, None dropped."""
    pairs = sorted(
        (_quote(str(key)), _quote(_text(value)))
        for key, value in params.items()
        if value is not None
    )
    return "&".join(f"{key}={value}" for key, value in pairs)


def signature(canonical: str, timestamp: int, api_key: str) -> str:
    """Upper-case hex MD5 of ``canonical&time=T&salt=K``."""
    salted = f"{canonical}&time={timestamp}&salt={api_key}"
    return hashlib.md5(salted.encode("utf-8")).hexdigest().upper()


def sign(params: Mapping[str, object], api_key: str, *, clock: Clock = time.time) -> str:
    """Return the full signed query string ``qs&time=t&hash=h`` for ``params``."""
    canonical = encode_params(params)
    timestamp = int(clock())
    digest = signature(canonical, timestamp, api_key)
    prefix = f"{canonical}&" if canonical else ""
    return f"{prefix}time={timestamp}&hash={digest}"
