"""Typed columns, typed by each database in SQL, read back through the database's own
driver: the same rules in DuckDB and PostgreSQL, and an odd value is NULL in its column,
never a failed sync."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sync_checks import rows, store

from cc_collect_async import json_codec
from cc_collect_async.database import open_backend, parse_target
from cc_collect_async.database.ddl import SCHEMA_VERSION
from cc_collect_async.database.staged import staged_lines


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def test_the_main_fields_are_typed_and_the_record_kept_as_received(database: str) -> None:
    record = {
        "publish_data": {
            "vote_id": "V9",
            "style": 1,
            "choices": [{"id": 1, "text": "是"}],
            "publish_time": "2026-11-01 10:00:00 ",
        },
        "reply_data": [{"uid": "a"}, {"uid": "b"}],
    }
    store(database, "vote", [record])
    ((liveid, roomid, key, vote_id, style, choices, publish_time, title, replies, raw),) = rows(
        database,
        "SELECT liveid, roomid, record_key, vote_id, style, choices::text, publish_time, "
        "title, replies, raw::text FROM cc_vote",
    )
    assert (liveid, roomid, key, vote_id, style, replies) == ("L1", "R1", "V9", "V9", 1, 2)
    assert publish_time == _utc(2026, 11, 1, 2)  # Beijing time, the trailing space trimmed
    assert title is None
    assert choices == '[{"id":1,"text":"是"}]'  # as written, not respaced
    assert raw == (
        '{"publish_data":{"vote_id":"V9","style":1,"choices":[{"id":1,"text":"是"}],'
        '"publish_time":"2026-11-01 10:00:00 "},"reply_data":[{"uid":"a"},{"uid":"b"}]}'
    )


# (record key, what "id" holds, what "timestamp" holds, the id typed, the time typed)
ODD_VALUES: list[tuple[str, Any, Any, int | None, datetime | None]] = [
    ("1", 1, "2026-11-01 10:00:00", 1, _utc(2026, 11, 1, 2)),
    ("22", "22", "2026-11-01 10:00", 22, _utc(2026, 11, 1, 2)),
    (" 7 ", " 7 ", " 2026-11-01T10:00:05 ", 7, _utc(2026, 11, 1, 2, 0, 5)),
    ("-9223372036854775808", -(2**63), "2028-02-29", -(2**63), _utc(2028, 2, 28, 16)),
    ("9223372036854775808", 2**63, "2026-02-29 10:00:00", None, None),
    ("1180591620717411303424", 2**70, "2026-04-31 10:00:00", None, None),
    ("1.0", 1.0, "2026-13-01 10:00:00", None, None),
    ("--5", "--5", "0000-01-01 00:00:00", None, None),
    ("true", True, "yesterday", None, None),
    ("x", "x", 20261101, None, None),
    ("nothing", "nothing", None, None, None),
]


def test_a_value_that_does_not_fit_its_column_is_null_there_and_kept_in_raw(
    database: str,
) -> None:
    records = [{"id": value, "timestamp": time} for _, value, time, _, _ in ODD_VALUES]
    store(database, "chat", records)
    stored = {
        key: (id_, moment, json_codec.loads(raw))
        for key, id_, moment, raw in rows(
            database, "SELECT record_key, id, timestamp, raw::text FROM cc_chat"
        )
    }
    assert len(stored) == len(records)
    for (key, _, _, id_, moment), record in zip(ODD_VALUES, records, strict=True):
        assert stored[key] == (id_, moment, record), key


def test_a_duration_is_a_finite_number_or_null(database: str) -> None:
    # One summary per live: (what "duration" holds, the column).
    durations: list[tuple[Any, float | None]] = [
        (12.5, 12.5),
        ("30", 30.0),
        (" 2.5e1 ", 25.0),
        (7, 7.0),
        ("abc", None),
        ("1e999", None),
        ("nan", None),
        (True, None),
    ]
    for number, (value, _) in enumerate(durations):
        store(database, "summary", [{"duration": {"duration": value}}], liveid=f"L{number}")
    stored = dict(rows(database, "SELECT liveid, duration FROM cc_summary"))
    assert stored == {f"L{number}": typed for number, (_, typed) in enumerate(durations)}


def test_ids_and_keys_with_control_characters_are_stored_as_json_text(database: str) -> None:
    # \x1f separates staged fields, \x01 is PostgreSQL's CSV quote there, \n ends a row.
    store(database, "chat", [{"id": "a\x01b"}, {"id": "c\x1fd"}, {"id": "e\nf"}, {"id": "g"}])
    keys = {key for (key,) in rows(database, "SELECT record_key FROM cc_chat")}
    assert keys == {'"a\\u0001b"', '"c\\u001fd"', '"e\\nf"', "g"}


def test_text_columns_hold_numbers_as_written_and_objects_as_their_json(database: str) -> None:
    store(
        database,
        "chat",
        [
            {"id": 1, "username": 1.5, "content": {"a": [1, "b"]}, "chat_userid": True},
            {"id": 2, "username": None, "content": ["x"], "chat_userid": 12},
        ],
    )
    stored = rows(database, "SELECT username, content, chat_userid FROM cc_chat ORDER BY id")
    assert stored == [("1.5", '{"a":[1,"b"]}', "true"), (None, '["x"]', "12")]


def test_nul_and_lone_surrogates_in_typed_text(database: str) -> None:
    store(
        database,
        "chat",
        [
            {"id": 1, "username": "a\x00b", "content": "x \ud83d", "timestamp": "2026-11-01"},
            {"id": 2, "username": "ok", "content": {"k": "\x00"}, "timestamp": "2026-11-02"},
        ],
    )
    stored = rows(database, "SELECT id, username, content, timestamp FROM cc_chat ORDER BY id")
    (_, name, content, moment), (_, name_2, content_2, moment_2) = stored
    # DuckDB's VARCHAR holds NUL; PostgreSQL's text cannot (U+FFFD marks the place).
    assert name in ("a\x00b", "a\ufffdb")
    assert content == "x \ufffd"
    # The rest of such a record is typed as usual.
    assert moment == _utc(2026, 10, 31, 16)
    assert (name_2, moment_2) == ("ok", _utc(2026, 11, 1, 16))
    assert content_2 in ('{"k":"\\u0000"}', '{"k":"\ufffd"}')


def test_reply_views_type_times_and_leave_impossible_ones_null(database: str) -> None:
    card = {
        "publish_data": {"qvote_id": "Q1"},
        "reply_data": [
            {"uid": "a", "choice": [1], "reply_time": "2026-11-01 10:00:00 "},
            {"uid": "b", "choice": [2], "reply_time": "2026-02-30 10:00:00"},
        ],
    }
    store(database, "answercard", [card])
    stored = rows(database, "SELECT uid, reply_time FROM cc_answercard_replies ORDER BY uid")
    assert stored == [("a", _utc(2026, 11, 1, 2)), ("b", None)]


def test_a_schema_of_the_version_before_is_brought_up_to_date(database: str) -> None:
    card = {"publish_data": {"qvote_id": "Q1"}, "reply_data": [{"uid": "a", "choice": [1]}]}
    store(database, "answercard", [card])
    backend = open_backend(parse_target(database), "acct")
    try:
        # Version 1, with a reply view that is not this version's.
        backend.execute(
            f"UPDATE cc_meta SET value = '{SCHEMA_VERSION - 1}' WHERE key = 'schema_version'"
        )
        backend.execute("DROP VIEW cc_answercard_replies")
        backend.execute(
            "CREATE VIEW cc_answercard_replies AS SELECT liveid, roomid, qvote_id, "
            "NULL::text AS uid, NULL::json AS choice, NULL::timestamptz AS reply_time "
            "FROM cc_answercard"
        )
    finally:
        backend.close()
    store(database, "chat", [{"id": 2}])
    assert rows(database, "SELECT value FROM cc_meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    assert rows(database, "SELECT qvote_id, uid FROM cc_answercard_replies") == [("Q1", "a")]
    assert rows(database, "SELECT id FROM cc_chat") == [(2,)]


def test_staged_rows_give_postgresql_a_typing_copy_only_where_it_needs_one() -> None:
    def key(records: Any) -> list[Any]:
        return [record["id"] for record in records]

    usual = staged_lines("L1", "R1", [{"id": 3, "t": "x"}], key, exact=True)
    assert usual == b'L1\x1fR1\x1f3\x1f{"id":3,"t":"x"}\x1f\n'
    # A backslash before "ud" in the text looks like an escape: the copy is the same text.
    looks_odd = staged_lines("L1", "R1", [{"id": 1, "t": "a\\ud"}], key, exact=True)
    raw = b'{"id":1,"t":"a\\\\ud"}'
    assert looks_odd.rstrip(b"\n").split(b"\x1f") == [b"L1", b"R1", b"1", raw, raw]
    odd = staged_lines("L\x1f1", "R\x001", [{"id": 2, "t": "x\x00\ud83d"}], key, exact=True)
    fields = odd.rstrip(b"\n").split(b"\x1f")
    assert fields == [
        b'"L\\u001f1"',
        b'"R\\u00001"',
        b"2",
        b'{"id":2,"t":"x\\u0000\\ud83d"}',
        '{"id":2,"t":"x\ufffd\ufffd"}'.encode(),
    ]
    # DuckDB takes four fields, its raw with lone surrogates replaced.
    duck = staged_lines("L1", "R1", [{"id": 2, "t": "x\x00\ud83d"}], key)
    assert duck == 'L1\x1fR1\x1f2\x1f{"id":2,"t":"x\\u0000\ufffd"}\n'.encode()
