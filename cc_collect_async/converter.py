"""The one cattrs converter that turns wire dicts into models.

All parsing rules live here: Beijing-time timestamps (read by :mod:`cc_collect_async.beijing`,
stray trailing spaces and all), numbers sent as strings, and the ``raw`` wire dict kept on
top-level records.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from .beijing import parse_wire_time
from .errors import DecodeError

__all__ = ["converter", "parse_beijing_time", "structure"]

T = TypeVar("T")

#: A vendor timestamp (``2017-09-12 16:22:43 ``) as an aware UTC+8 datetime (None for blank);
#: the name the package exports for :func:`cc_collect_async.beijing.parse_wire_time`.
parse_beijing_time = parse_wire_time


def _structure_int(value: object, _: type) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    return int(str(value).strip())


def _structure_float(value: object, _: type) -> float:
    return float(str(value).strip()) if isinstance(value, str) else float(value)  # type: ignore[arg-type]


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=False, prefer_attrib_converters=False)
    conv.register_structure_hook(datetime, lambda v, _: parse_wire_time(v))
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    # A number the server leaves blank ("") is no number, as a blank time is no time: every
    # number of a record is optional, and one blank made the whole reply fail.
    conv.register_structure_hook(
        int | None, lambda v, _: None if _blank(v) else _structure_int(v, int)
    )
    conv.register_structure_hook(
        float | None, lambda v, _: None if _blank(v) else _structure_float(v, float)
    )

    def has_raw(cls: type) -> bool:
        return attrs.has(cls) and "raw" in attrs.fields_dict(cls)

    def raw_keeping_hook(cls: type) -> Any:
        inner: Any = make_dict_structure_fn(cls, conv, raw=override(omit=True))

        def structure_record(value: Mapping[str, Any], _: type) -> Any:
            if not isinstance(value, Mapping):
                # A list or a string would pass the generated code as a record of all None.
                raise TypeError(f"a {cls.__name__} record must be an object, not {value!r:.60}")
            record = inner(value, cls)
            # Frozen classes: the raw dict is attached once, at construction time.
            object.__setattr__(record, "raw", value)
            return record

        return structure_record

    conv.register_structure_hook_factory(has_raw, raw_keeping_hook)
    return conv


#: The library's converter; use it to structure models from wire dicts yourself.
converter = _make_converter()


def structure(value: Any, cls: type[T]) -> T:
    """Structure a wire value into ``cls`` with the library's converter.

    A record that does not fit (a garbled timestamp, text where a number belongs) raises
    :class:`~cc_collect_async.errors.DecodeError`, so callers catching ``CollectError`` see
    every failure of a call, not cattrs' exception groups.
    """
    try:
        return converter.structure(value, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        name = getattr(cls, "__name__", str(cls))
        error = DecodeError(f"reply record does not fit {name}: {exc!r}")
        # The reply was whole JSON: asked again, the server sends the same record, so six
        # attempts only added a quarter of a minute of backoff before the same error.
        error.retryable = False
        raise error from exc
