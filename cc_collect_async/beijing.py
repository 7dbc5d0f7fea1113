"""Beijing time: the vendor's zone and every date format the project reads or writes.

Timestamps on the wire are Beijing time (UTC+8) without an offset, ``YYYY-MM-DD HH:MM:SS``,
sometimes with a trailing space; ``live/record`` takes minutes and ``max_parallel`` dates.
The command line accepts the same layouts (and ``T`` between date and time).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

__all__ = [
    "BEIJING",
    "DATE",
    "MINUTE",
    "SECOND",
    "as_beijing",
    "format_date",
    "format_minute",
    "parse_text",
    "parse_wire_time",
]

#: The vendor's time zone: every timestamp on the wire is Beijing time without an offset.
BEIJING = timezone(timedelta(hours=8), "UTC+08:00")

SECOND = "%Y-%m-%d %H:%M:%S"
MINUTE = "%Y-%m-%d %H:%M"
DATE = "%Y-%m-%d"
#: Layouts accepted as text, most precise first.
_LAYOUTS = (SECOND, MINUTE, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", DATE)


def parse_text(text: str) -> datetime:
    """A naive Beijing-time datetime from ``YYYY-MM-DD[ HH:MM[:SS]]`` (``T`` allowed);
    raises ``ValueError`` naming the value otherwise."""
    stripped = text.strip()
    for layout in _LAYOUTS:
        try:
            return datetime.strptime(stripped, layout)
        except ValueError:
            continue
    raise ValueError(f"not a date (YYYY-MM-DD) or time (YYYY-MM-DD HH:MM): {text!r}")


def parse_wire_time(value: object) -> datetime | None:
    """A vendor timestamp (``2017-09-12 16:22:43 ``) as an aware UTC+8 datetime; None for
    None or blank text."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_beijing(value)
    text = str(value).strip()
    if not text:
        return None
    return parse_text(text).replace(tzinfo=BEIJING)


def as_beijing(value: datetime) -> datetime:
    """An aware datetime in Beijing time: aware values are converted, naive ones are taken
    to be Beijing time already."""
    return value.astimezone(BEIJING) if value.tzinfo else value.replace(tzinfo=BEIJING)


def _naive_beijing(value: date) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(BEIJING).replace(tzinfo=None) if value.tzinfo else value
    return datetime(value.year, value.month, value.day)


def format_minute(value: date) -> str:
    """``YYYY-MM-DD HH:MM`` in Beijing time (a date is its midnight)."""
    return _naive_beijing(value).strftime(MINUTE)


def format_date(value: date) -> str:
    """``YYYY-MM-DD`` in Beijing time."""
    return _naive_beijing(value).strftime(DATE)
