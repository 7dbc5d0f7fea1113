"""Models: frozen and slotted, Beijing-time datetimes, tolerant of extra fields, platform
codes with meaning, the exact wire dict kept in ``.raw``."""

from __future__ import annotations

import copy
import inspect
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from cc_collect_async import (
    BEIJING,
    ENDPOINTS,
    AccessRecord,
    ChatRecord,
    DecodeError,
    LiveDuration,
    LiveRecord,
    LiveSummary,
    LiveUserCount,
    MaxParallel,
    Platform,
    VoteRecord,
    models,
    parse_beijing_time,
    structure,
)

MODEL_CLASSES = [cls for _, cls in inspect.getmembers(models, inspect.isclass) if attrs.has(cls)]
UTC8 = timezone(timedelta(hours=8))


def test_every_endpoint_model_is_a_model() -> None:
    endpoint_models = {e.model for e in ENDPOINTS.values()}
    assert len(endpoint_models) == 13
    assert endpoint_models <= set(MODEL_CLASSES)


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_models_are_frozen_and_slotted(cls: type) -> None:
    instance = cls()
    assert "__slots__" in cls.__dict__
    assert not hasattr(instance, "__dict__")
    first = attrs.fields(cls)[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(instance, first, None)
    with pytest.raises((AttributeError, attrs.exceptions.FrozenInstanceError)):
        instance.not_a_field = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2017-09-12 16:22:43", datetime(2017, 9, 12, 16, 22, 43, tzinfo=UTC8)),
        ("2017-09-12 16:22:43 ", datetime(2017, 9, 12, 16, 22, 43, tzinfo=UTC8)),
        ("  2017-09-12 16:22:43\t", datetime(2017, 9, 12, 16, 22, 43, tzinfo=UTC8)),
        ("2019-01-02 00:00", datetime(2019, 1, 2, 0, 0, tzinfo=UTC8)),
        ("2019-01-02", datetime(2019, 1, 2, tzinfo=UTC8)),
    ],
)
def test_vendor_times_are_aware_beijing_datetimes(text: str, expected: datetime) -> None:
    parsed = parse_beijing_time(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.utcoffset() == timedelta(hours=8)
    assert parsed.tzinfo == BEIJING


def test_beijing_time_is_eight_hours_ahead_of_utc() -> None:
    parsed = parse_beijing_time("2017-09-12 16:22:43")
    assert parsed == datetime(2017, 9, 12, 8, 22, 43, tzinfo=timezone.utc)


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_blank_times_become_none(blank: Any) -> None:
    assert parse_beijing_time(blank) is None
    assert structure({"time": blank, "max_parallel": 3}, MaxParallel).time is None


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_blank_numbers_become_none(blank: Any) -> None:
    # One chat record with a blank id made the whole reply a DecodeError.
    assert structure({"id": blank, "content": "hi"}, ChatRecord).id is None
    assert structure({"duration": blank}, LiveDuration).duration is None
    assert structure({"livecount": blank}, LiveUserCount).livecount is None


def test_a_number_that_is_prose_is_not_retried() -> None:
    with pytest.raises(DecodeError) as caught:
        structure({"id": "seven"}, ChatRecord)
    assert not caught.value.retryable  # the server would send the same record again


def test_garbled_time_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        structure({"start_time": "yesterday"}, LiveRecord)


@pytest.mark.parametrize("wire", [[1, 2], "a record", 7])
def test_a_record_that_is_not_an_object_is_a_decode_error(wire: Any) -> None:
    with pytest.raises(DecodeError):
        structure(wire, ChatRecord)


def test_trailing_spaces_in_records() -> None:
    record = structure(
        {"enter_time": "2017-09-12 16:22:43 ", "exit_time": "2017-09-12 17:22:43 "},
        AccessRecord,
    )
    assert record.enter_time == datetime(2017, 9, 12, 16, 22, 43, tzinfo=UTC8)
    assert record.exit_time == datetime(2017, 9, 12, 17, 22, 43, tzinfo=UTC8)


def test_unknown_fields_are_ignored_and_kept_in_raw() -> None:
    wire = {"liveid": "L1", "class_name": "c", "brand_new_field": {"x": 1}, "room_type": 3}
    record = structure(wire, LiveRecord)
    assert record.liveid == "L1"
    assert record.room_type == 3
    assert not hasattr(record, "brand_new_field")
    assert record.raw["brand_new_field"] == {"x": 1}


def test_missing_fields_default_to_none() -> None:
    record = structure({"liveid": "L1"}, LiveRecord)
    assert record == LiveRecord(liveid="L1")
    assert record.start_time is None and record.room_type is None


def test_numbers_sent_as_text() -> None:
    assert structure({"max_parallel": "2132"}, MaxParallel).max_parallel == 2132
    assert structure({"duration": "1.5"}, LiveDuration).duration == 1.5
    assert structure({"id": " 7 "}, ChatRecord).id == 7


def test_raw_is_the_exact_wire_dict() -> None:
    wire = {"id": 123, "timestamp": "2019-02-18 17:22:50", "content": "hi", "extra": [1]}
    snapshot = copy.deepcopy(wire)
    record = structure(wire, ChatRecord)
    assert record.raw is wire
    assert record.raw == snapshot  # untouched: the trailing text, types and extras as sent


def test_raw_is_left_out_of_equality_and_repr() -> None:
    a = structure({"id": 1, "content": "x", "noise": 1}, ChatRecord)
    b = structure({"id": 1, "content": "x", "noise": 2}, ChatRecord)
    assert a == b
    assert "noise" not in repr(a)
    assert a.raw != b.raw


def test_nested_records_are_typed() -> None:
    wire = {
        "publish_data": {"vote_id": "v1", "choices": ["a", "b"], "style": "1"},
        "reply_data": [{"uid": "u1", "choices": [0, "1"]}],
    }
    record = structure(wire, VoteRecord)
    assert record.publish_data.vote_id == "v1"
    assert record.publish_data.choices == ("a", "b")
    assert record.publish_data.style == 1
    assert record.reply_data[0].choices == (0, 1)
    assert record.raw is wire


def test_platform_codes_keep_their_meaning() -> None:
    assert (Platform.WEB, Platform.ANDROID, Platform.IOS) == (5, 2, 3)
    summary = structure({"platforms": {"5": 10, "2": 20, "3": 30, "9": 1}}, LiveSummary)
    assert summary.platforms == {5: 10, 2: 20, 3: 30, 9: 1}
    by_platform = summary.by_platform()
    assert by_platform == {Platform.WEB: 10, Platform.ANDROID: 20, Platform.IOS: 30, 9: 1}
    assert {type(k) for k in by_platform} == {Platform, int}
    assert by_platform[Platform.WEB] == 10
    assert summary.raw["platforms"] == {"5": 10, "2": 20, "3": 30, "9": 1}


def test_empty_summary() -> None:
    summary = structure({}, LiveSummary)
    assert summary.platforms == {} and summary.locations == {}
    assert summary.by_platform() == {}
