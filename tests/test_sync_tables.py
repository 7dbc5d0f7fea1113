"""The pure parts of sync: times of lives, record keys, raw text, ``--db`` parsing and the
incremental window rule."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from cc_collect_async.beijing import BEIJING
from cc_collect_async.database import DatabaseUsageError, parse_target, plan_sync
from cc_collect_async.database.backend import SyncState
from cc_collect_async.database.incremental import SyncPlan
from cc_collect_async.database.tables import record_key_text, storable, wire_time


def test_wire_time_trims_the_vendors_trailing_space_and_is_beijing_time() -> None:
    moment = wire_time("2026-11-01 08:30:00 ")
    assert moment == datetime(2026, 11, 1, 0, 30, tzinfo=timezone.utc)
    assert wire_time("2026-11-01 08:30:00") == moment
    assert wire_time("2026-11-01") == datetime(2026, 11, 1, tzinfo=BEIJING)


@pytest.mark.parametrize("value", ["", "   ", None, "2026-13-45 10:00:00", "soon", 17, [1]])
def test_wire_time_is_none_for_anything_that_is_no_time(value: object) -> None:
    assert wire_time(value) is None


def test_record_key_text_is_the_value_for_one_field_and_json_for_several() -> None:
    assert record_key_text("abc") == "abc"
    assert record_key_text(12345) == "12345"
    assert record_key_text(("v1", "2026-11-01 10:00:00 ")) == '["v1","2026-11-01 10:00:00 "]'
    assert record_key_text(None) == "null"


def test_a_lone_surrogate_becomes_a_replacement_character_and_nothing_else_changes() -> None:
    record = {"content": "ok \ud83d", "name": "张三 😀", "n": 1}
    kept, text = storable(record)
    assert kept["content"] == "ok \ufffd"
    assert kept["name"] == "张三 😀"
    assert text == '{"content":"ok \ufffd","name":"张三 😀","n":1}'
    plain = {"content": "a\u2028b"}
    assert storable(plain) == (plain, '{"content":"a\\u2028b"}')
    # Where the JSON column takes the escape (PostgreSQL's json), the text stays exact.
    kept, exact = storable(record, exact=True)
    assert kept["content"] == "ok \ufffd"
    assert exact == '{"content":"ok \\ud83d","name":"张三 😀","n":1}'


def test_db_urls() -> None:
    relative = parse_target("duckdb:///cc.duckdb")
    assert (relative.dialect, relative.location, relative.schema) == ("duckdb", "cc.duckdb", "main")
    assert parse_target("duckdb:////var/x.duckdb").location == "/var/x.duckdb"
    assert parse_target("data/x.duckdb", "s1").schema == "s1"
    pg = parse_target("postgresql://bob:hunter2@db.example:5433/cc?sslmode=require", "night")
    assert pg.dialect == "postgres" and pg.schema == "night"
    assert "hunter2" not in pg.display and "hunter2" not in repr(pg)
    assert pg.display == "PostgreSQL postgresql://bob:***@db.example:5433/cc (schema night)"
    assert parse_target("postgres://h/db").schema == "public"
    for bad in ("", "mysql://x/y", "duckdb://x.duckdb", "duckdb:///"):
        with pytest.raises(DatabaseUsageError):
            parse_target(bad)
    # Not files to create: a libpq string (its password had become a file name), a URL
    # missing its slashes, an in-memory database the sync would lose. The text is not
    # quoted back: it may hold a password.
    for bad in (
        "host=127.0.0.1 port=5432 user=cc password=hunter2 dbname=cc",
        "duckdb:cc.duckdb",
        "duckdb:///:memory:",
        ":memory:",
        "postgresql:hunter2@h/db",
    ):
        with pytest.raises(DatabaseUsageError) as caught:
            parse_target(bad)
        assert "hunter2" not in str(caught.value)
    with pytest.raises(DatabaseUsageError):
        parse_target("x.duckdb", "")
    # A usage error (exit 2) before connecting, not the server's refusal (exit 4) after.
    with pytest.raises(DatabaseUsageError, match="PostgreSQL's own"):
        parse_target("postgresql://h/db", "pg_nightly")
    assert parse_target("duckdb:///x.duckdb", "pg_nightly").schema == "pg_nightly"


NOW = datetime(2026, 11, 10, 2, 30, 45, tzinfo=BEIJING)


def _state(
    watermark: datetime | None, oldest_open: datetime | None, resume_from: datetime | None = None
) -> SyncState:
    """The state of an account that has synced chat alone."""
    return SyncState({"chat": watermark} if watermark else {}, oldest_open, resume_from)


def _plan(state: SyncState, **options: Any) -> SyncPlan:
    return plan_sync(state, kinds=("chat",), **options)


def test_a_first_sync_takes_yesterday_and_today_until_now() -> None:
    plan = _plan(_state(None, None), now=NOW)
    assert plan.since == datetime(2026, 11, 9, tzinfo=BEIJING)
    assert plan.until == datetime(2026, 11, 10, 2, 30, tzinfo=BEIJING)
    assert plan.advance_to == plan.until and plan.skip_until == plan.until


def test_the_window_starts_at_the_earlier_of_watermark_and_oldest_unfinished_live() -> None:
    watermark = datetime(2026, 11, 9, 2, 30, tzinfo=BEIJING)
    running = datetime(2026, 11, 8, 23, 10, tzinfo=BEIJING)
    assert _plan(_state(watermark, None), now=NOW).since == watermark
    plan = _plan(_state(watermark, running), now=NOW)
    assert plan.since == running and plan.advance_to == plan.until
    later = datetime(2026, 11, 9, 12, tzinfo=BEIJING)
    assert _plan(_state(watermark, later), now=NOW).since == watermark


def test_a_run_that_did_not_complete_is_resumed_from_its_start() -> None:
    watermark = datetime(2026, 11, 9, 2, 30, tzinfo=BEIJING)
    failed_run = datetime(2026, 11, 1, tzinfo=BEIJING)
    plan = _plan(_state(watermark, None, failed_run), now=NOW)
    assert plan.since == failed_run and plan.advance_to == plan.until
    assert _plan(_state(None, None, failed_run), now=NOW).since == failed_run
    # ... and the plan says so (the header said "watermark none, oldest unfinished live
    # none" and started two weeks back without a word why)
    assert plan.unfinished_from == failed_run
    given = _plan(_state(watermark, None, failed_run), now=NOW, since=watermark)
    assert given.unfinished_from is None


def test_an_explicit_since_after_the_watermark_leaves_the_watermark_alone() -> None:
    watermark = datetime(2026, 11, 1, tzinfo=BEIJING)
    plan = _plan(_state(watermark, None), now=NOW, since=datetime(2026, 11, 5))
    assert plan.advance_to is None
    joined = _plan(_state(watermark, None), now=NOW, since=datetime(2026, 10, 30))
    assert joined.advance_to == joined.until


def test_refresh_days_reach_back_and_stop_skipping_there() -> None:
    watermark = datetime(2026, 11, 10, tzinfo=BEIJING)
    plan = _plan(_state(watermark, None), now=NOW, refresh_days=3)
    assert plan.skip_until == plan.until - timedelta(days=3) == plan.since


def test_each_kind_continues_from_its_own_watermark() -> None:
    """Chat synced to 11-02, votes (a sync of --kinds vote alone) to 11-10: a sync of both
    starts at 11-02, or the chat of 11-02 to 11-10 would never be fetched."""
    chat, vote = datetime(2026, 11, 2, tzinfo=BEIJING), datetime(2026, 11, 10, tzinfo=BEIJING)
    state = SyncState({"chat": chat, "vote": vote}, None)
    plan = plan_sync(state, kinds=("chat", "vote"), now=NOW)
    assert plan.since == plan.watermark == chat
    assert plan.advance_kinds == ("chat", "vote") and plan.watermark_after == plan.until
    assert plan_sync(state, kinds=("vote",), now=NOW).since == vote


def test_a_backfill_leaves_later_watermarks_where_they_are() -> None:
    watermark = datetime(2026, 11, 4, tzinfo=BEIJING)
    plan = _plan(
        _state(watermark, None), now=NOW, since=datetime(2026, 11, 1), until=datetime(2026, 11, 2)
    )
    assert plan.advance_kinds == ("chat",) and plan.watermark_after == watermark


def test_a_kind_never_synced_joins_anywhere_and_the_others_keep_theirs() -> None:
    chat = datetime(2026, 11, 1, tzinfo=BEIJING)
    state = SyncState({"chat": chat}, None)
    plan = plan_sync(state, kinds=("chat", "vote"), now=NOW, since=datetime(2026, 11, 5))
    assert plan.advance_kinds == ("vote",) and plan.watermark_after == chat


def test_nothing_to_do_when_the_watermark_is_the_end() -> None:
    end = datetime(2026, 11, 10, tzinfo=BEIJING)
    plan = _plan(_state(end, None), now=NOW, until=end)
    assert plan.window is None


def test_a_window_that_ends_after_now_moves_the_watermark_to_now_only() -> None:
    # --until tomorrow: the lives of the rest of today had not started when they were
    # listed; a watermark at tomorrow would make every later sync skip them.
    watermark = datetime(2026, 11, 9, 2, 30, tzinfo=BEIJING)
    plan = _plan(_state(watermark, None), now=NOW, until=datetime(2026, 11, 11, 12))
    assert plan.until == datetime(2026, 11, 11, 12, tzinfo=BEIJING)  # listed that far
    assert plan.advance_to == plan.watermark_after == datetime(2026, 11, 10, 2, 30, tzinfo=BEIJING)
