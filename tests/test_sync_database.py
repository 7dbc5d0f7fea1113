"""``sync`` and ``DatabaseSink`` against the simulator, into a real DuckDB file and a real
PostgreSQL server: every record exactly once, typed, replaced whole; the incremental state;
what a second sync, a newer schema, a foreign file or a lost connection meet."""

from __future__ import annotations

import gc
import json
import math
import sys
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import attrs
import duckdb
import pytest
from postgres_server import PASSWORD, PostgresServer
from sync_checks import assert_matches_truth, rows, store

from cc_collect_async import AuthError, CollectClient, RetryPolicy
from cc_collect_async.beijing import BEIJING
from cc_collect_async.cli.metrics_file import render_sync
from cc_collect_async.database import (
    SCHEMA_VERSION,
    DatabaseBusyError,
    DatabaseError,
    DatabaseSink,
    DatabaseUsageError,
    NotADatabaseError,
    SchemaVersionError,
    duckdb_backend,
    open_backend,
    parse_target,
    sync,
)
from cc_collect_async.database.backend import Backend, Group, RunFinish, RunStart
from cc_collect_async.database.ddl import COLUMNS, DUCKDB, HISTORY, LIVES, UNITS
from cc_collect_async.database.tables import KIND_TABLES
from cc_collect_async.harvest import ALL_KINDS, KINDS, Harvester, Live, Window
from cc_collect_async.sim import (
    DEMO_API_KEY,
    DEMO_USERID,
    Dataset,
    DatasetSpec,
    SimConfig,
    Simulator,
)

pytestmark = pytest.mark.anyio

SPEC = DatasetSpec(lives=14, huge_every=6)
SINCE = SPEC.window_start
UNTIL = SPEC.window_start + timedelta(days=SPEC.window_days)
FAST = {"initial_rate": 1000.0}
README_QUERY = """
SELECT CAST(l.start_time AT TIME ZONE 'Asia/Shanghai' AS DATE) AS day, u.kind,
       sum(u.records) AS records
FROM cc_units AS u JOIN cc_lives AS l ON l.liveid = u.liveid
GROUP BY day, u.kind ORDER BY day, u.kind"""


def client_for(sim: Simulator, **options: Any) -> CollectClient:
    return CollectClient(
        DEMO_USERID, DEMO_API_KEY, base_url="http://sim", transport=sim.transport(), **options
    )


async def test_every_record_once_typed_with_its_units_run_and_watermark(database: str) -> None:
    faults: Any = ("http500", "drop", "truncate")
    sim = Simulator(SPEC, SimConfig(fault_rate=0.1, fault_kinds=faults, fault_seed=3))
    quick_retries = RetryPolicy(initial_backoff=0.01, max_backoff=0.05)
    async with client_for(sim, retry=quick_retries) as client:
        report = await sync(
            client, database, since=SINCE, until=UNTIL, kinds=ALL_KINDS, harvest_options=FAST
        )
    assert report.complete and report.harvest is not None and report.harvest.retries > 0
    truth = sim.truth(SINCE, UNTIL)
    assert_matches_truth(database, truth, ALL_KINDS)
    assert report.committed_units == len(truth.lives) * len(ALL_KINDS)
    assert report.committed_records == report.harvest.records
    # Typed columns from Beijing time, trailing spaces and all.
    for enter, raw in rows(database, "SELECT enter_time, raw::text FROM cc_access"):
        wire = json.loads(raw)["enter_time"]
        assert enter == datetime.strptime(wire.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
    units = rows(
        database, "SELECT kind, count(*), sum(records), bool_and(final) FROM cc_units GROUP BY kind"
    )
    assert {kind: (count, int(records)) for kind, count, records, _ in units} == {
        kind: (len(truth.lives), truth.count(kind) if kind != "summary" else len(truth.lives))
        for kind in ALL_KINDS
    }
    assert all(final for *_, final in units)
    (run,) = rows(database, "SELECT complete, records, requests, until FROM cc_runs")
    assert run[:3] == (True, report.harvest.records, report.harvest.requests)
    assert sorted(rows(database, "SELECT kind, watermark FROM cc_watermarks")) == [
        (kind, UNTIL.replace(tzinfo=BEIJING)) for kind in sorted(ALL_KINDS)
    ]
    # The README's example query runs on both databases.
    per_day = rows(database, README_QUERY)
    assert sum(int(n) for *_, n in per_day) == report.harvest.records
    assert {day for day, *_ in per_day} == {SINCE.date(), (SINCE + timedelta(days=1)).date()}
    # The reply views unnest what the records hold.
    replies = sum(
        len(json.loads(raw)["reply_data"])
        for (raw,) in rows(database, "SELECT raw::text FROM cc_vote")
    )
    assert rows(database, "SELECT count(*) FROM cc_vote_replies") == [(replies,)]


async def test_a_rerun_of_final_units_lists_lives_and_fetches_nothing_else(database: str) -> None:
    sim = Simulator(SPEC)
    async with client_for(sim) as client:
        await sync(client, database, since=SINCE, until=UNTIL, harvest_options=FAST)
        sim.reset_stats()
        again = await sync(client, database, since=SINCE, until=UNTIL, harvest_options=FAST)
        incremental = await sync(client, database, until=UNTIL, harvest_options=FAST)
    assert again.harvest is not None and again.committed_units == 0
    assert again.units_skipped == len(sim.truth(SINCE, UNTIL).lives) * 5
    assert sim.stats.requests == 1  # one listing page
    assert incremental.plan.window is None  # the watermark is the end: nothing to list
    assert_matches_truth(database, sim.truth(SINCE, UNTIL), ("chat", "access", "vote"))


async def test_final_units_are_looked_up_a_listing_page_at_a_time(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Looked up for the whole window at once, a re-sweep of a year-old DuckDB file had to
    # hold 3 M final units (DuckDB ran out of memory; a Python set of them is 565 MB).
    asked: list[int] = []
    looked_up = Backend.final_units

    def final_units(self: Backend, *args: Any) -> set[tuple[str, str]]:
        found = looked_up(self, *args)
        asked.append(len(args[2]))
        return found

    monkeypatch.setattr(Backend, "final_units", final_units)
    sim = Simulator(SPEC)
    lives = len(sim.truth(SINCE, UNTIL).lives)
    paged = {**FAST, "page_length": 4}
    async with client_for(sim) as client:
        await sync(client, database, since=SINCE, until=UNTIL, harvest_options=paged)
        asked.clear()
        again = await sync(
            client, database, since=SINCE - timedelta(days=400), until=UNTIL, harvest_options=paged
        )
    assert asked == [4] * (lives // 4) + [lives % 4]
    assert again.committed_units == 0 and again.units_skipped == lives * 5


async def test_a_lost_connection_during_a_lookup_reconnects(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.fresh_database()
    sim = Simulator(SPEC)
    async with client_for(sim) as client:
        await sync(client, url, since=SINCE, until=UNTIL, kinds="chat", harvest_options=FAST)
        liveids = [live.liveid for live in sim.truth(SINCE, UNTIL).lives]
        async with DatabaseSink(url, account=client.userid) as sink:
            _terminate_syncs(postgres_server.url())
            backend = sink.backend
            assert backend is not None
            found = await sink.query(backend.final_units, client.userid, ("chat",), liveids, UNTIL)
    assert found == {(liveid, "chat") for liveid in liveids} and sink.reconnects == 1


async def test_a_rerun_that_skips_every_unit_commits_its_lives_in_groups(tmp_path: Path) -> None:
    # Lives used to ride only with a unit: a rerun of a big account sent every live in its
    # last transaction, and 20,000 of them in one upsert ran DuckDB out of memory.
    database = f"duckdb:///{tmp_path / 'cc.duckdb'}"
    sim = Simulator(SPEC)
    listed = sim.truth(SINCE, UNTIL).lives
    lives = len(listed)
    async with client_for(sim) as client:
        await sync(client, database, since=SINCE, until=UNTIL, harvest_options=FAST)
        harvester = Harvester(
            client,
            window=Window(SINCE, UNTIL),
            skip={(live.liveid, kind) for live in listed for kind in ALL_KINDS},
            kinds=ALL_KINDS,
            initial_rate=1000,
        )
        async with DatabaseSink(database, account=client.userid, group_rows=5) as sink:
            report = await harvester.run(sink)
    assert report.complete and report.units == 0
    assert sink.transactions == lives // 5 + 1  # groups of 5 lives, then the rest and the run
    assert rows(database, "SELECT count(*) FROM cc_lives") == [(lives,)]


def test_duckdb_upserts_twenty_thousand_lives_within_its_memory_limit(tmp_path: Path) -> None:
    # One statement of 20,000 rows needed 48 MB of DuckDB's 24; the upsert goes in parts.
    backend = open_backend(parse_target(f"duckdb:///{tmp_path / 'cc.duckdb'}"), DEMO_USERID)
    try:
        seen = datetime(2026, 11, 3, tzinfo=timezone.utc)
        raw = json.dumps({"class_name": "第一讲", "room_type": 3, "end_time": "2026-11-02"})
        for _ in range(2):  # the second time every row is already there
            lives = [
                (f"{n:016X}", DEMO_USERID, f"R{n % 7}", "第一讲", 3, seen, None, seen, seen, raw)
                for n in range(20_000)
            ]
            with backend.transaction():
                backend.upsert(LIVES, COLUMNS[LIVES], lives, keep=("first_seen",))
        assert backend.execute(f"SELECT count(*), count(DISTINCT liveid) FROM {LIVES}") == [
            (20_000, 20_000)
        ]
    finally:
        backend.close()


def test_duckdb_bookkeeping_rows_arrive_as_they_were_given(tmp_path: Path) -> None:
    # They cross into DuckDB as one JSON text (DuckDB before 2.0 converts a list parameter
    # element by element): every value must come out as it went in.
    backend = open_backend(parse_target(f"duckdb:///{tmp_path / 'cc.duckdb'}"), DEMO_USERID)
    seen = datetime(2026, 11, 3, 1, 2, 3, 456789, tzinfo=timezone.utc)
    ended = datetime(2026, 11, 2, 23, 0, tzinfo=BEIJING)
    raw = '{"class_name": "a\\u0000b \U0001f393", "n": 1.10, "big": 123456789012345678901}'
    live = ("L'1", DEMO_USERID, 'R"1', "a\x00b 🎓 '第一讲'", -7, ended, None, seen, seen, raw)
    unit = ("L'1", "chat", DEMO_USERID, 'R"1', 2**40, 3, 0, '["gap"]', None, seen, "r", False)
    try:
        with backend.transaction():
            backend.upsert(LIVES, COLUMNS[LIVES], [live], keep=("first_seen",))
            backend.upsert(UNITS, COLUMNS[UNITS], [unit], keep=())
        assert backend.execute(f"SELECT *, raw::VARCHAR FROM {LIVES}") == [(*live, raw)]
        assert backend.execute(f"SELECT * EXCLUDE (issues), issues::VARCHAR FROM {UNITS}") == [
            (*unit[:7], *unit[8:], unit[7])
        ]
    finally:
        backend.close()


def _bookkeeping(first: int, count: int, seen: datetime) -> Group:
    """A group of ``count`` lives, each with its five units and no rows, as a sync commits
    them."""
    liveids = [f"{n:016X}" for n in range(first, first + count)]
    kinds = ("chat", "access", "vote", "answercard", "rollcall")
    group = Group(replaced={kind: list(liveids) for kind in kinds})
    for liveid in liveids:
        group.lives.append((liveid, DEMO_USERID, "R1", "第一讲", 3, seen, seen, seen, seen, "{}"))
        group.units += [
            (liveid, kind, DEMO_USERID, "R1", 0, 1, 0, None, seen, seen, "run", True)
            for kind in kinds
        ]
    return group


def test_duckdb_bookkeeping_of_a_long_history_stays_within_its_memory_limit(
    tmp_path: Path,
) -> None:
    # With a primary key on cc_lives and cc_units, DuckDB held their index in memory whole:
    # at the sync's 24 MB it ran out at about 185,000 units, and every later sync failed.
    url = f"duckdb:///{tmp_path / 'cc.duckdb'}"
    seen = datetime(2026, 11, 3, tzinfo=timezone.utc)
    backend = open_backend(parse_target(url), DEMO_USERID)
    try:
        for first in range(0, 45_000, 3_000):  # 45,000 lives, 225,000 units
            backend.commit(_bookkeeping(first, 3_000, seen))
        assert backend.memory_bytes == duckdb_backend._MEMORY_BYTES  # never raised
    finally:
        backend.close()
    backend = open_backend(parse_target(url), DEMO_USERID)  # the next night's sync
    later = seen + timedelta(days=1)
    try:
        backend.commit(_bookkeeping(44_000, 2_000, later))  # 1,000 lives seen again
        assert backend.memory_bytes == duckdb_backend._MEMORY_BYTES
    finally:
        backend.close()
    assert rows(url, "SELECT count(*), count(DISTINCT liveid) FROM cc_lives") == [(46_000, 46_000)]
    assert rows(url, "SELECT count(*), count(DISTINCT (liveid, kind)) FROM cc_units") == [
        (230_000, 230_000)
    ]
    # A live seen again keeps when it was first seen; its unit row is the new one.
    assert rows(
        url,
        "SELECT l.first_seen, l.last_seen, u.fetched_at FROM cc_lives AS l JOIN cc_units AS u "
        "ON u.liveid = l.liveid WHERE l.liveid = '000000000000ADD4' AND u.kind = 'chat'",
    ) == [(seen, later, later)]


def _run(
    backend: Backend,
    kinds: tuple[str, ...],
    since: int,
    until: int,
    done: bool,
    started: datetime | None = None,
) -> None:
    """A run of ``kinds`` over 11-``since`` to 11-``until``, complete or not."""
    run_id = uuid.uuid4().hex
    started = started or datetime.now(timezone.utc)
    window = [datetime(2026, 11, day, tzinfo=BEIJING) for day in (since, until)]
    text = json.dumps(list(kinds))
    backend.begin_run(RunStart(run_id, DEMO_USERID, "http://sim", started, *window, text))
    if done:
        finish = RunFinish(run_id, DEMO_USERID, {"finished_at": started, "complete": True})
        backend.commit(Group(finish=finish))


def test_a_run_that_did_not_complete_is_resumed_until_its_kinds_are_synced_over_its_window(
    database: str,
) -> None:
    # Night 1's chat and vote was interrupted; a one-off chat sync completed; night 1's
    # command again must start where night 1 did, or its votes are never fetched.
    resume = datetime(2026, 11, 1, tzinfo=BEIJING)
    backend = open_backend(parse_target(database), DEMO_USERID)
    try:
        _run(backend, ("chat", "vote"), 1, 3, done=False)
        _run(backend, ("chat",), 1, 4, done=True)  # other kinds: votes still to resume
        assert backend.state(DEMO_USERID, ("chat", "vote")).resume_from == resume
        assert backend.state(DEMO_USERID, ("chat",)).resume_from is None
        _run(backend, ("chat", "vote"), 2, 4, done=True)  # narrower: not the whole window
        assert backend.state(DEMO_USERID, ("vote",)).resume_from == resume
        _run(backend, ("vote",), 1, 4, done=True)  # votes over the whole window
        assert backend.state(DEMO_USERID, ("chat", "vote")).resume_from is None
    finally:
        backend.close()


def test_a_run_with_until_in_the_future_that_did_not_complete_is_covered_by_a_nightly(
    database: str,
) -> None:
    # --until 11-20, interrupted on 11-04: it had listed nothing after 11-04, and a nightly
    # run (ending at its own start) covers it; or every nightly would start at 11-01 again.
    backend = open_backend(parse_target(database), DEMO_USERID)
    try:
        _run(backend, ("chat",), 1, 20, done=False, started=datetime(2026, 11, 4, tzinfo=BEIJING))
        assert backend.state(DEMO_USERID, ("chat",)).resume_from == datetime(
            2026, 11, 1, tzinfo=BEIJING
        )
        _run(backend, ("chat",), 1, 5, done=True, started=datetime(2026, 11, 5, tzinfo=BEIJING))
        assert backend.state(DEMO_USERID, ("chat",)).resume_from is None
    finally:
        backend.close()


def test_an_accounts_watermark_of_version_3_becomes_one_per_kind_it_has(database: str) -> None:
    """Version 3 kept one watermark per account; version 4 one per (account, kind), carried
    over to each kind the account has units of (and not to kinds it never synced)."""
    seen = datetime(2026, 11, 3, tzinfo=timezone.utc)
    mark = datetime(2026, 11, 2, 16, tzinfo=timezone.utc)
    backend = open_backend(parse_target(database), DEMO_USERID)
    try:
        backend.commit(_bookkeeping(0, 2, seen))
        backend.execute("DROP TABLE cc_watermarks")
        backend.execute(
            "CREATE TABLE cc_watermarks (userid text PRIMARY KEY, watermark timestamptz, "
            "run_id text, updated_at timestamptz)"
        )
        backend.execute(
            "INSERT INTO cc_watermarks VALUES ('other', ?, 'r0', ?), (?, ?, 'r1', ?)".replace(
                "?", backend.dialect.param
            ),
            (mark, seen, DEMO_USERID, mark, seen),
        )
        backend.execute("UPDATE cc_meta SET value = '3' WHERE key = 'schema_version'")
    finally:
        backend.close()
    backend = open_backend(parse_target(database), DEMO_USERID)
    try:
        state = backend.state(DEMO_USERID, ("chat", "vote", "brainstorm"))
    finally:
        backend.close()
    assert state.watermarks == {"chat": mark, "vote": mark}  # no brainstorm units: none
    assert rows(database, "SELECT DISTINCT kind FROM cc_watermarks ORDER BY kind") == [
        (kind,) for kind in sorted(("chat", "access", "vote", "answercard", "rollcall"))
    ]
    assert rows(database, "SELECT value FROM cc_meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]


def test_a_duckdb_file_of_schema_version_2_is_rebuilt_without_the_index(tmp_path: Path) -> None:
    path = tmp_path / "cc.duckdb"
    url = f"duckdb:///{path}"
    seen = datetime(2026, 11, 3, tzinfo=timezone.utc)
    backend = open_backend(parse_target(url), DEMO_USERID)
    try:
        backend.commit(_bookkeeping(0, 10, seen))
    finally:
        backend.close()
    before = {table: sorted(rows(url, f"SELECT * FROM {table}")) for table in HISTORY}
    version_2 = attrs.evolve(DUCKDB, index_history=True)  # a primary key on both
    with duckdb.connect(str(path)) as connection:
        for table in HISTORY:
            connection.execute(f"ALTER TABLE {table} RENAME TO old")
            connection.execute(version_2.create_table("main", table))
            connection.execute(f"INSERT INTO {table} SELECT * FROM old")
            connection.execute("DROP TABLE old")
        connection.execute("UPDATE cc_meta SET value = '2' WHERE key = 'schema_version'")
    indexed = (
        "SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' "
        "AND table_name IN ('cc_lives', 'cc_units') ORDER BY table_name"
    )
    assert rows(url, indexed) == [("cc_lives",), ("cc_units",)]

    backend = open_backend(parse_target(url), DEMO_USERID)
    try:
        backend.commit(_bookkeeping(5, 10, seen + timedelta(days=1)))
    finally:
        backend.close()
    assert rows(url, indexed) == []
    assert rows(url, "SELECT value FROM cc_meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    assert rows(url, "SELECT count(*), count(DISTINCT liveid) FROM cc_lives") == [(15, 15)]
    kept = sorted(rows(url, "SELECT * FROM cc_units WHERE liveid < '0000000000000005'"))
    assert kept == [row for row in before[UNITS] if row[0] < "0000000000000005"]


@pytest.mark.parametrize("kind", ["vote", "answercard", "brainstorm"])
def test_duckdb_loads_a_group_of_large_records_within_its_memory_limit(
    tmp_path: Path, kind: str
) -> None:
    # A record with its replies is 1.3-2 KB; DuckDB parses a statement's rows 2,048 at a time
    # and needs up to 18 times their bytes: a sync of these kinds alone ran out of memory.
    data = Dataset(DatasetSpec(lives=3_000, rooms=10, huge_every=0, window_days=30))
    backend = open_backend(parse_target(f"duckdb:///{tmp_path / 'cc.duckdb'}"), DEMO_USERID)
    table = KIND_TABLES[kind]
    group, records = Group(), 0
    for live in data.lives():
        page = data.records(live.liveid, kind)
        if page and records < 5_000:  # a group's worth (DatabaseSink's group_rows)
            group.rows.setdefault(kind, []).append(
                backend.page_rows(table, live.liveid, live.roomid, page, KINDS[kind].page_keys)
            )
            group.replaced.setdefault(kind, []).append(live.liveid)
            records += len(page)
    try:
        backend.commit(group)
        assert backend.execute(f"SELECT count(*) FROM {table.name}") == [(records,)]
        assert backend.memory_bytes == duckdb_backend._MEMORY_BYTES  # never raised
    finally:
        backend.close()


def test_duckdb_gives_a_record_of_megabytes_more_memory_for_its_statement_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 5 MB record needs about 64 MB of DuckDB's memory; the sync keeps 16 MB otherwise.
    backend = open_backend(parse_target(f"duckdb:///{tmp_path / 'cc.duckdb'}"), DEMO_USERID)
    chat = KIND_TABLES["chat"]
    huge = {"id": 1, "username": "u", "content": "x" * 5_000_000}
    page = backend.page_rows(chat, "L1", "R1", [huge], KINDS["chat"].page_keys)
    limit = "SELECT current_setting('memory_limit')"
    try:
        before = backend.execute(limit)
        with backend.transaction():
            backend.load(chat, [page])
        assert backend.execute(f"SELECT length(content) FROM {chat.name}") == [(5_000_000,)]
        assert backend.execute(limit) == before
        # A statement that fails aborts the transaction; the rollback lowers the limit.
        monkeypatch.setattr(duckdb_backend, "_insert_typed", lambda *_: "SELECT error('boom')")
        with pytest.raises(DatabaseError, match="boom"), backend.transaction():
            backend.load(chat, [page])
        assert backend.execute(limit) == before
    finally:
        backend.close()


_TIGHT = DatasetSpec(lives=30, rooms=3, huge_every=0, chat_per_live=2_000)
_TIGHT_UNTIL = _TIGHT.window_start + timedelta(days=_TIGHT.window_days)


async def _sync_tight(sim: Simulator, database: str) -> Any:
    """Every kind of the _TIGHT window, whatever DuckDB's memory has been set to."""
    async with client_for(sim) as client:
        return await sync(
            client,
            database,
            since=_TIGHT.window_start,
            until=_TIGHT_UNTIL,
            kinds=ALL_KINDS,
            harvest_options=FAST,
        )


async def test_duckdb_gives_a_group_that_runs_out_of_memory_more_and_commits_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At 4 MB DuckDB runs out of memory in statements, and at COMMIT (a TransactionException
    # there): each group runs again, whole, with twice the memory.
    monkeypatch.setattr(duckdb_backend, "_MEMORY_BYTES", 4_000_000)
    monkeypatch.setattr(duckdb_backend, "_MEMORY_CEILING", 64_000_000)
    sim = Simulator(_TIGHT)
    database = f"duckdb:///{tmp_path / 'cc.duckdb'}"
    limits: list[int] = []
    commit = duckdb_backend.DuckDBBackend.commit

    def watched(backend: duckdb_backend.DuckDBBackend, group: Group) -> None:
        commit(backend, group)
        limits.append(backend.memory_bytes)

    monkeypatch.setattr(duckdb_backend.DuckDBBackend, "commit", watched)
    report = await _sync_tight(sim, database)
    assert report.complete
    assert_matches_truth(database, sim.truth(_TIGHT.window_start, _TIGHT_UNTIL), ALL_KINDS)
    assert 4_000_000 < max(limits) <= 64_000_000
    assert limits == sorted(limits)  # kept for the rest of the sync


async def test_duckdb_out_of_memory_at_its_ceiling_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(duckdb_backend, "_MEMORY_BYTES", 4_000_000)
    monkeypatch.setattr(duckdb_backend, "_MEMORY_CEILING", 4_000_000)
    sim = Simulator(_TIGHT)
    database = f"duckdb:///{tmp_path / 'cc.duckdb'}"
    with pytest.raises(DatabaseError) as caught:
        await _sync_tight(sim, database)
    message = str(caught.value)
    # DuckDB's words: "Out of Memory Error: ...", or at COMMIT "Failed to commit: could not
    # allocate block ...".
    assert "Out of Memory" in message or "Failed to commit" in message
    assert "memory at 4 MB, the most" in message
    assert "\n" not in message
    assert rows(database, "SELECT count(*) FROM cc_runs WHERE complete") == [(0,)]


def _chat(records: int) -> list[dict[str, Any]]:
    return [{"id": n, "username": f"u{n % 97}", "content": f"message {n}"} for n in range(records)]


def _storage(path: Path) -> tuple[int, set[str]]:
    """Row groups of cc_chat and the compressions of its raw column, as DuckDB stored them."""
    with duckdb.connect(str(path), read_only=True) as connection:
        ((groups,),) = connection.execute(
            "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('cc_chat')"
        ).fetchall()
        found = connection.execute(
            "SELECT DISTINCT compression FROM pragma_storage_info('cc_chat') "
            "WHERE column_name = 'raw' AND compression <> 'Constant'"
        ).fetchall()
    return groups, {str(name) for (name,) in found}


def test_duckdb_writes_row_groups_of_8192_rows_and_json_with_zstd(tmp_path: Path) -> None:
    # Every checkpoint rewrites a table's last, partly filled row group: DuckDB's 122,880
    # rows made a million records' sync take 30 s instead of 20-22. zstd: a smaller file,
    # for less CPU than DuckDB's own choice (DuckDB 1.4 and later, storage format 1.2).
    store(f"duckdb:///{tmp_path / 'cc.duckdb'}", "chat", _chat(20_000))
    groups, compressions = _storage(tmp_path / "cc.duckdb")
    version = tuple(int(part) for part in duckdb.__version__.split(".")[:2])
    assert groups == (3 if version >= (1, 4) else 1)  # set from DuckDB 1.4 on
    if version >= (2, 0):  # 1.4 writes storage format 1.0 unless told otherwise
        assert compressions == {"ZSTD"}
    else:
        assert "ZSTD" not in compressions


def test_duckdb_keeps_json_compressed_in_a_file_of_an_older_storage_format(
    tmp_path: Path,
) -> None:
    # Asked for zstd, a file in a format without it stores the column uncompressed (DuckDB
    # itself leaves a segment uncompressed here and there: FSST is what compresses it).
    path = tmp_path / "cc.duckdb"
    duckdb.connect(str(path), config={"storage_compatibility_version": "v1.0.0"}).close()
    store(f"duckdb:///{path}", "chat", _chat(20_000))
    _, compressions = _storage(path)
    assert "ZSTD" not in compressions
    assert compressions - {"Uncompressed"}


async def test_a_live_whose_chat_is_one_reply_of_100000_records_is_stored(database: str) -> None:
    # Chat has no pages: one reply is a live's every message. One INSERT of it ran DuckDB out
    # of memory; it goes in parts of a few MB now, still in the unit's one transaction.
    spec = DatasetSpec(lives=1, rooms=1, empty_every=0, huge_every=0, chat_per_live=100_000)
    sim = Simulator(spec)
    since, until = spec.window_start, spec.window_start + timedelta(days=spec.window_days)
    async with client_for(sim) as client:
        report = await sync(
            client, database, since=since, until=until, kinds=["chat"], harvest_options=FAST
        )
    truth = sim.truth(since, until)
    assert report.complete and report.transactions == 1 + 1  # the unit, then the run's end
    assert len(truth.keys["chat"]) >= 50_000
    assert_matches_truth(database, truth, ("chat",))


async def test_failed_units_are_not_stored_and_a_rerun_fetches_only_them(tmp_path: Path) -> None:
    database = f"duckdb:///{tmp_path / 'cc.duckdb'}"
    flaky = Simulator(SPEC, SimConfig(fault_rate=0.3, fault_kinds=("http500",), fault_seed=2))
    async with client_for(flaky, retry=RetryPolicy(max_attempts=1)) as client:
        first = await sync(client, database, since=SINCE, until=UNTIL, harvest_options=FAST)
    assert first.harvest is not None and first.harvest.failures and not first.complete
    assert first.harvest.lives == len(Simulator(SPEC).truth(SINCE, UNTIL).lives)
    failed = {(f.liveid, f.kind) for f in first.harvest.failures}
    stored = set(rows(database, "SELECT liveid, kind FROM cc_units"))
    assert not failed & stored
    assert rows(database, "SELECT count(*) FROM cc_watermarks") == [(0,)]
    # cc_runs.units: the units stored (it counted the failed ones too)
    assert rows(database, "SELECT complete, units FROM cc_runs") == [(False, len(stored))]
    assert first.committed_units == len(stored)
    report = {"harvest": first.harvest.to_dict()}
    metrics = render_sync(report, exit_code=1, duration=1.0, now=0.0, last_success=None)
    done = sum(
        int(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("cc_collect_sync_units{") and 'state="done"' in line
    )
    assert done == len(stored)  # the failed units are state="failed" only

    steady = Simulator(SPEC)
    async with client_for(steady) as client:
        second = await sync(client, database, until=UNTIL, harvest_options=FAST)
    # Every missing unit here is one request (no live has more than one page).
    assert steady.stats.requests == 1 + len(failed)
    assert second.complete and second.committed_units == len(failed)
    assert_matches_truth(
        database, steady.truth(SINCE, UNTIL), ("chat", "access", "vote", "answercard", "rollcall")
    )


async def test_one_unit_per_transaction_is_a_setting(tmp_path: Path) -> None:
    database = f"duckdb:///{tmp_path / 'cc.duckdb'}"
    sim = Simulator(SPEC)
    options: dict[str, Any] = {"since": SINCE, "until": UNTIL, "kinds": ["chat", "access"]}
    async with client_for(sim) as client:
        # A group that never comes due by time, only by size.
        grouped = await sync(client, database, group_seconds=3600, harvest_options=FAST, **options)
        alone = await sync(
            client,
            f"duckdb:///{tmp_path / 'alone.duckdb'}",
            group_seconds=0,
            harvest_options=FAST,
            **options,
        )
    assert alone.transactions == alone.committed_units + 1  # and the run's own row
    # Grouped by size only here (5,000 rows a group): 5,450 rows make two transactions.
    assert grouped.committed_records == 5450
    assert grouped.transactions == 2 and grouped.committed_units == alone.committed_units


async def test_the_sink_works_with_harvester_run(database: str) -> None:
    sim = Simulator(SPEC)
    async with client_for(sim) as client:
        harvester = Harvester(
            client, window=Window(SINCE, UNTIL), kinds=["chat", "summary"], initial_rate=1000
        )
        async with DatabaseSink(database, account=client.userid, group_seconds=0.05) as sink:
            report = await harvester.run(sink)
    assert report.complete and sink.committed_records == report.records
    assert_matches_truth(database, sim.truth(SINCE, UNTIL), ("chat", "summary"))


async def test_a_sink_takes_one_run_and_only_inside_async_with(tmp_path: Path) -> None:
    """A second Harvester.run on the same sink reported complete and stored nothing (or,
    committing unit by unit, never returned): it is refused now, as is a sink never
    entered."""
    sim = Simulator(SPEC)
    database = f"duckdb:///{tmp_path / 'cc.duckdb'}"
    day = timedelta(days=1)
    async with client_for(sim) as client:
        async with DatabaseSink(database, account=client.userid, group_seconds=0) as sink:
            first = Harvester(client, window=Window(SINCE, SINCE + day), kinds=["chat"])
            assert (await first.run(sink)).complete
            second = Harvester(client, window=Window(SINCE + day, UNTIL), kinds=["chat"])
            with anyio.fail_after(30), pytest.raises(RuntimeError, match=r"one Harvester\.run"):
                await second.run(sink)
        never_entered = DatabaseSink(database, account=client.userid)
        third = Harvester(client, window=Window(SINCE, UNTIL), kinds=["chat"])
        with pytest.raises(RuntimeError, match="async with DatabaseSink"):
            await third.run(never_entered)


async def test_sync_raises_its_errors_as_themselves_not_in_a_group(tmp_path: Path) -> None:
    """``except AuthError`` around sync() let a group of one AuthError through."""
    sim = Simulator(SPEC)
    database = tmp_path / "cc.duckdb"  # a path, as well as a URL
    async with CollectClient(
        DEMO_USERID, "not-the-key", base_url="http://sim", transport=sim.transport()
    ) as wrong:
        with pytest.raises(AuthError):
            await sync(wrong, database, since=SINCE, until=UNTIL, kinds="chat")
    async with client_for(sim) as client:
        with pytest.raises(ValueError, match="must be before until"):
            await sync(client, database, since=UNTIL, until=SINCE)
        report = await sync(client, database, since=SINCE, until=UNTIL, kinds="all")
    assert report.complete and set(report.harvest.kinds) == set(ALL_KINDS)  # type: ignore[union-attr]


async def test_the_sink_keeps_when_a_live_was_listed_only_while_the_harvest_holds_it(
    tmp_path: Path,
) -> None:
    # A backfill lists hundreds of thousands of lives in one run: what the sink keeps per
    # live (when it was listed, which decides a unit's finality) must go with the live.
    async with DatabaseSink(f"duckdb:///{tmp_path / 'cc.duckdb'}", account=DEMO_USERID) as sink:
        for n in range(1_000):
            await sink.live(Live("R1", f"{n:016X}"))
        held = Live("R1", "HELD")
        await sink.live(held)
        gc.collect()
        assert list(sink._listed) == [held]


async def test_a_refetch_replaces_the_units_rows_whole_even_when_empty(database: str) -> None:
    target = parse_target(database)
    backend = open_backend(target, "acct")
    table = KIND_TABLES["chat"]

    def commit(records: list[dict[str, Any]]) -> None:
        from cc_collect_async.harvest import KINDS

        page = backend.page_rows(table, "L1", "R1", records, KINDS["chat"].page_keys)
        unit = (
            "L1",
            "chat",
            "acct",
            "R1",
            len(records),
            1,
            0,
            None,
            None,
            datetime.now(timezone.utc),
            "run",
            False,
        )
        rows = {"chat": [page]} if records else {}
        backend.commit(Group(units=[unit], rows=rows, replaced={"chat": ["L1"]}))

    try:
        commit([{"id": 1, "content": "a\x00b"}, {"id": 2, "content": "two"}])
        commit([{"id": 2, "content": "two, edited"}, {"id": 3, "content": "three"}])
        # Read through the backend's own connection: DuckDB lets no other in meanwhile.
        assert sorted(backend.execute("SELECT record_key, content FROM cc_chat")) == [
            ("2", "two, edited"),
            ("3", "three"),
        ]
        commit([])
        assert backend.execute("SELECT count(*) FROM cc_chat") == [(0,)]
        assert backend.execute("SELECT records FROM cc_units") == [(0,)]
    finally:
        backend.close()


async def test_a_second_sync_of_the_same_database_fails_fast(database: str) -> None:
    target = parse_target(database)
    first = open_backend(target, DEMO_USERID)
    sim = Simulator(SPEC)
    try:
        async with client_for(sim) as client:
            with pytest.raises(DatabaseBusyError, match="in use by another sync"):
                await sync(client, database, since=SINCE, until=UNTIL)
    finally:
        first.close()
    assert sim.stats.requests == 0


async def test_a_duckdb_file_this_process_holds_open_is_in_use(tmp_path: Path) -> None:
    # A web backend that reads the file and syncs in the same process: DuckDB refused the
    # second open with "Unique file handle conflict", which read as a broken database.
    path = tmp_path / "cc.duckdb"
    sim = Simulator(SPEC)
    with duckdb.connect(str(path)):
        async with client_for(sim) as client:
            with pytest.raises(DatabaseBusyError, match="in use by another sync"):
                await sync(client, f"duckdb:///{path}", since=SINCE, until=UNTIL)
    assert sim.stats.requests == 0


async def test_a_newer_schema_is_refused_before_anything_is_fetched(database: str) -> None:
    backend = open_backend(parse_target(database), "acct")
    backend.execute("UPDATE cc_meta SET value = '99' WHERE key = 'schema_version'")
    backend.close()
    sim = Simulator(SPEC)
    async with client_for(sim) as client:
        with pytest.raises(SchemaVersionError, match="schema version 99, newer"):
            await sync(client, database, since=SINCE, until=UNTIL)
    assert sim.stats.requests == 0


async def test_a_file_that_is_not_a_duckdb_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n" * 100)
    sim = Simulator(SPEC)
    async with client_for(sim) as client:
        with pytest.raises(NotADatabaseError, match="not a DuckDB database"):
            await sync(client, f"duckdb:///{path}", since=SINCE, until=UNTIL)
    assert sim.stats.requests == 0
    assert path.read_text() == "not a database\n" * 100


async def test_a_duckdb_file_in_a_missing_directory_is_one_line_that_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # duckdb:///tmp/x.duckdb is relative (the SQLAlchemy convention): a user meaning /tmp
    # got DuckDB's "Cannot open file", with nothing on why.
    monkeypatch.chdir(tmp_path)
    sim = Simulator(SPEC)
    async with client_for(sim) as client:
        with pytest.raises(DatabaseError) as raised:
            await sync(client, "duckdb:///tmp/cc.duckdb", since=SINCE, until=UNTIL)
    message = str(raised.value)
    assert "\n" not in message
    assert f"the directory {tmp_path / 'tmp'} does not exist" in message
    assert "duckdb:////" in message  # how to write an absolute path
    assert sim.stats.requests == 0
    assert not (tmp_path / "tmp").exists()


# -- PostgreSQL only ---------------------------------------------------------------------


async def test_postgres_locks_per_account_and_schema(postgres_server: PostgresServer) -> None:
    url = postgres_server.fresh_database()
    # Ten times: a lock must be free as soon as its sync has closed, not a moment later when
    # the server has seen the connection go (about one time in twenty, the sync that came
    # next found the account still locked).
    for _ in range(10):
        first = open_backend(parse_target(url), "account-a")
        try:
            with pytest.raises(
                DatabaseBusyError, match="in use by another sync of account account-a"
            ):
                open_backend(parse_target(url), "account-a")
            other_account = open_backend(parse_target(url), "account-b")
            other_schema = open_backend(parse_target(url, "team2"), "account-a")
            other_account.close()
            other_schema.close()
        finally:
            first.close()
        open_backend(parse_target(url), "account-a").close()


async def _refused_before_fetching(url: str) -> str:
    """The one-line message of a sync into ``url`` that fails before any request."""
    sim = Simulator(SPEC)
    async with client_for(sim) as client:
        with pytest.raises(DatabaseError) as caught:
            await sync(client, url, since=SINCE, until=UNTIL)
    assert sim.stats.requests == 0
    message = str(caught.value)
    assert "\n" not in message
    return message


async def test_wrong_postgres_credentials_are_one_line_without_the_password(
    postgres_server: PostgresServer,
) -> None:
    message = await _refused_before_fetching(postgres_server.url(password="wrong-pw-77"))
    assert "password authentication failed" in message
    assert "wrong-pw-77" not in message


def _role(postgres_server: PostgresServer, url: str) -> str:
    """A new role that may create tables in the schema ``public`` of ``url``'s database and
    nothing else (no CREATE on the database): its URL."""
    import psycopg

    dbname = url.rsplit("/", 1)[1]
    role = f"loader_{dbname}"  # roles belong to the whole cluster
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'loader-pw'")
        admin.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
    return postgres_server.url(dbname, password="loader-pw", user=role)


async def test_a_role_allowed_only_into_its_schema_syncs(postgres_server: PostgresServer) -> None:
    url = postgres_server.fresh_database()
    loader = _role(postgres_server, url)
    sim = Simulator(SPEC)
    async with client_for(sim) as client:
        report = await sync(client, loader, since=SINCE, until=UNTIL, kinds=("chat",))
    assert report.complete
    assert report.committed_records == sim.truth(SINCE, UNTIL).count("chat") > 0


async def test_a_role_that_may_not_create_temporary_tables_is_refused_before_fetching(
    postgres_server: PostgresServer,
) -> None:
    import psycopg

    url = postgres_server.fresh_database()
    loader = _role(postgres_server, url)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'REVOKE TEMPORARY ON DATABASE "{url.rsplit("/", 1)[1]}" FROM PUBLIC')
    message = await _refused_before_fetching(loader)
    assert "permission denied to create temporary tables" in message


def _terminate_syncs(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'cc-collect sync'"
        )


class _Saboteur:
    """A sink in front of the DatabaseSink that kills its PostgreSQL session before the
    fifth unit's commit, so that commit meets a dead connection; with ``refused_for``
    seconds (inf: for good), the database also refuses new connections that long, as a
    server restarting does."""

    def __init__(
        self, sink: DatabaseSink, admin_url: str, database: str, refused_for: float = 0.0
    ) -> None:
        self.sink = sink
        self.admin_url = admin_url
        self.database = database
        self.refused_for = refused_for
        self.units = 0

    def allow(self, allowed: bool) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS {allowed}')

    async def live(self, live: Any) -> None:
        await self.sink.live(live)

    async def write(self, batch: Any) -> None:
        await self.sink.write(batch)

    async def unit_end(self, result: Any) -> None:
        self.units += 1
        if self.units == 5:
            if self.refused_for:
                self.allow(False)
            _terminate_syncs(self.admin_url)
            if 0 < self.refused_for < math.inf:
                threading.Timer(self.refused_for, self.allow, (True,)).start()
        await self.sink.unit_end(result)

    async def close(self, report: Any) -> None:
        await self.sink.close(report)


# 2 s: the first reconnect, refused, left no connection, and the next attempt ran the commit
# on None: an AttributeError's traceback, exit 1, no metrics file.
@pytest.mark.parametrize("refused_for", [0.0, 2.0])
async def test_a_lost_connection_retries_the_commit(
    postgres_server: PostgresServer, refused_for: float
) -> None:
    url = postgres_server.fresh_database()
    sim = Simulator(SPEC)
    async with client_for(sim) as client:
        harvester = Harvester(
            client, window=Window(SINCE, UNTIL), kinds=["chat", "access"], initial_rate=1000
        )
        async with DatabaseSink(url, account=client.userid, group_seconds=0) as sink:
            database = url.rsplit("/", 1)[1]
            saboteur = _Saboteur(sink, postgres_server.url(), database, refused_for)
            report = await harvester.run(saboteur)
    assert report.complete and sink.reconnects == 1
    assert_matches_truth(url, sim.truth(SINCE, UNTIL), ("chat", "access"))


async def test_a_server_gone_for_good_ends_the_sync_with_one_line(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cc_collect_async.database import sink as sink_module

    monkeypatch.setattr(sink_module, "_FIRST_WAIT", 0.05)
    monkeypatch.setattr(sink_module, "_LONGEST_WAIT", 0.2)
    url = postgres_server.fresh_database()
    database = url.rsplit("/", 1)[1]
    sim = Simulator(SPEC)
    try:
        async with client_for(sim) as client:
            harvester = Harvester(
                client, window=Window(SINCE, UNTIL), kinds=["chat"], initial_rate=1000
            )
            with pytest.raises(DatabaseError) as caught:
                async with DatabaseSink(url, account=client.userid, group_seconds=0) as sink:
                    saboteur = _Saboteur(sink, postgres_server.url(), database, math.inf)
                    await harvester.run(saboteur)
    finally:
        saboteur.allow(True)
    message = str(caught.value)
    assert "connection lost while committing, and 9 attempts over" in message
    assert "\n" not in message and PASSWORD not in message


async def test_refresh_days_fetch_final_units_again(tmp_path: Path) -> None:
    database = f"duckdb:///{tmp_path / 'cc.duckdb'}"
    sim = Simulator(SPEC)
    kinds = ["chat", "access"]
    async with client_for(sim) as client:
        first = await sync(
            client, database, since=SINCE, until=UNTIL, kinds=kinds, harvest_options=FAST
        )
        # The last day again (final units included), the first day's left alone.
        again = await sync(
            client, database, until=UNTIL, kinds=kinds, refresh_days=1, harvest_options=FAST
        )
    last_day = [
        live
        for live in sim.truth(SINCE, UNTIL).lives
        if live.start_time >= UNTIL - timedelta(days=1)
    ]
    assert again.plan.since == (UNTIL - timedelta(days=1)).replace(tzinfo=BEIJING)
    assert again.committed_units == len(last_day) * len(kinds) < first.committed_units
    assert_matches_truth(database, sim.truth(SINCE, UNTIL), kinds)


def test_a_postgresql_target_without_its_extra_is_refused_before_anything_is_fetched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cc_collect_async.database.postgres_backend import PostgresBackend

    monkeypatch.setitem(sys.modules, "psycopg", None)  # what an absent package looks like
    target = parse_target("postgresql://u@127.0.0.1:1/db")
    with pytest.raises(DatabaseUsageError, match=r"^psycopg is not installed: pip install"):
        PostgresBackend(target)


def test_a_watermark_of_version_4_past_its_runs_start_goes_back_to_it(database: str) -> None:
    # Before version 5 a sync with --until tomorrow moved the watermark to tomorrow, and
    # every later sync skipped the lives that started in between.
    started = datetime(2026, 11, 5, 10, 0, 42, tzinfo=BEIJING)
    backend = open_backend(parse_target(database), DEMO_USERID)
    try:
        _run(backend, ("chat",), 1, 6, done=False, started=started)
        (run_id,) = backend.execute("SELECT run_id FROM cc_runs")[0]
        backend.execute(
            "INSERT INTO cc_watermarks (userid, kind, watermark, run_id, updated_at) VALUES "
            f"('{DEMO_USERID}', 'chat', TIMESTAMPTZ '2026-11-06 12:00:00+08', '{run_id}', now()),"
            f"('{DEMO_USERID}', 'vote', TIMESTAMPTZ '2026-11-05 09:00:00+08', '{run_id}', now())"
        )
        backend.execute("UPDATE cc_meta SET value = '4' WHERE key = 'schema_version'")
    finally:
        backend.close()
    backend = open_backend(parse_target(database), DEMO_USERID)  # the next sync upgrades
    try:
        marks = dict(backend.execute("SELECT kind, watermark FROM cc_watermarks"))
    finally:
        backend.close()
    assert marks == {
        "chat": datetime(2026, 11, 5, 10, 0, tzinfo=BEIJING),  # the minute its listing reached
        "vote": datetime(2026, 11, 5, 9, 0, tzinfo=BEIJING),  # before its run's start: kept
    }
