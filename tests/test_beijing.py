"""Beijing time: one zone, the vendor's formats, text the command line accepts."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from cc_collect_async.beijing import (
    BEIJING,
    as_beijing,
    format_date,
    format_minute,
    parse_text,
    parse_wire_time,
)


def test_wire_time_with_trailing_space_is_aware_beijing() -> None:
    value = parse_wire_time("2017-09-12 16:22:43 ")
    assert value == datetime(2017, 9, 12, 8, 22, 43, tzinfo=timezone.utc)
    assert value is not None and value.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_blank_wire_time_is_none(blank: object) -> None:
    assert parse_wire_time(blank) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1)),
        ("2026-11-01 08:30", datetime(2026, 11, 1, 8, 30)),
        ("2026-11-01T08:30", datetime(2026, 11, 1, 8, 30)),
        (" 2026-11-01 08:30:15 ", datetime(2026, 11, 1, 8, 30, 15)),
    ],
)
def test_parse_text_layouts(text: str, expected: datetime) -> None:
    assert parse_text(text) == expected


@pytest.mark.parametrize("bad", ["2026-13-01", "yesterday", "2026/11/01", ""])
def test_parse_text_rejects_with_the_value(bad: str) -> None:
    with pytest.raises(ValueError, match="not a date"):
        parse_text(bad)


def test_formats_convert_aware_values_to_beijing() -> None:
    utc = datetime(2026, 11, 30, 20, 5, tzinfo=timezone.utc)
    assert format_minute(utc) == "2026-12-01 04:05"
    assert format_date(utc) == "2026-12-01"
    assert format_minute(date(2026, 12, 1)) == "2026-12-01 00:00"
    assert as_beijing(datetime(2026, 1, 1)).tzinfo is BEIJING
