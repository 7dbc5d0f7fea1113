"""``raw`` holds a record exactly as received, also where a typed text column cannot: a lone
UTF-16 surrogate (a truncated emoji) and NUL, read back through the database's own driver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from postgres_server import PostgresServer
from sync_checks import rows, store

from cc_collect_async import json_codec

RECORDS: list[dict[str, Any]] = [
    {"id": 1, "username": "title \ud83d", "content": "tail \udc00 and 😀"},
    {"id": 2, "username": "a\x00b", "content": {"nested": "x\x00\ud83d"}},
    {"id": 3, "username": "plain", "content": "ok"},
]


def _raw(database: str) -> list[Any]:
    stored = rows(database, "SELECT record_key, raw::text FROM cc_chat ORDER BY record_key")
    return [json_codec.loads(raw) for _, raw in stored]


def test_postgres_raw_reads_back_as_the_record_received(postgres_server: PostgresServer) -> None:
    database = postgres_server.fresh_database()
    store(database, "chat", RECORDS)
    assert _raw(database) == RECORDS


def test_duckdb_raw_keeps_nul_and_replaces_only_lone_surrogates(tmp_path: Path) -> None:
    # DuckDB's JSON type refuses a lone surrogate's escape ("no low surrogate in string").
    database = f"duckdb:///{tmp_path / 'cc.duckdb'}"
    store(database, "chat", RECORDS)
    first, second, third = _raw(database)
    assert first == {"id": 1, "username": "title \ufffd", "content": "tail \ufffd and 😀"}
    assert second == {"id": 2, "username": "a\x00b", "content": {"nested": "x\x00\ufffd"}}
    assert third == RECORDS[2]


def test_typed_text_columns_hold_what_they_can(database: str) -> None:
    store(database, "chat", RECORDS)
    stored = dict(rows(database, "SELECT record_key, username FROM cc_chat"))
    assert stored["1"] == "title \ufffd"
    assert stored["3"] == "plain"
    # DuckDB's VARCHAR holds NUL; PostgreSQL's text cannot (U+FFFD marks the place).
    assert stored["2"] in ("a\x00b", "a\ufffdb")


def test_a_record_larger_than_the_default_line_limits_is_stored_whole(database: str) -> None:
    # A vote's replies can run to megabytes in one record; DuckDB's CSV reader refused a
    # line over 2 MB ("CSV Error on Line"), and took a 30 MB buffer on DuckDB 1.2-1.4,
    # over the sync's memory limit ("Out of Memory Error").
    huge = {"id": 9, "username": "many", "content": "x" * 5_000_000}
    store(database, "chat", [RECORDS[2], huge])
    assert _raw(database) == [RECORDS[2], huge]


def test_the_reply_views_read_what_text_cannot_hold(database: str) -> None:
    # PostgreSQL's reply views failed every query (their json cannot turn NUL or a lone
    # surrogate into text) once one vote held either.
    replies = [
        {"uid": "a\x00b", "uname": "title \ud83d", "choices": [1]},
        {"uid": "u2", "uname": "tail \udc00, 😀 and a backslash: \\ud83d \\u0000", "choices": []},
        {"uid": "u3", "uname": "plain", "choices": [2]},
        {"uid": "u4", "uname": "a backslash's text \\ud83d, then \udc00 alone", "choices": []},
    ]
    store(database, "vote", [{"vote_id": "V1", "reply_data": replies}])
    stored = rows(database, "SELECT uid, uname FROM cc_vote_replies ORDER BY uid")
    assert stored[0][0] in ("a\x00b", "a\ufffdb")  # DuckDB's text holds NUL
    assert stored[0][1] == "title \ufffd"
    assert stored[1:] == [
        ("u2", "tail \ufffd, 😀 and a backslash: \\ud83d \\u0000"),
        ("u3", "plain"),
        ("u4", "a backslash's text \\ud83d, then \ufffd alone"),
    ]
