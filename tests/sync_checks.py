"""What the sync tests check a database against: the simulator's ground truth, read back
through the database's own driver (not the code under test); and :func:`store`, records
committed by hand as one unit through a backend."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from cc_collect_async.database import open_backend, parse_target
from cc_collect_async.database.backend import Group
from cc_collect_async.database.tables import KIND_TABLES
from cc_collect_async.harvest import KINDS
from cc_collect_async.sim import Truth, record_key


def store(url: str, kind: str, records: list[dict[str, Any]], liveid: str = "L1") -> None:
    """``records`` committed as one unit of ``kind`` of ``liveid``, as a sync commits it."""
    backend = open_backend(parse_target(url), "acct")
    try:
        page = backend.page_rows(KIND_TABLES[kind], liveid, "R1", records, KINDS[kind].page_keys)
        unit = (liveid, kind, "acct", "R1", len(records), 1, 0, None, None)
        unit += (datetime.now(timezone.utc), "run", False)
        backend.commit(Group(units=[unit], rows={kind: [page]}, replaced={kind: [liveid]}))
    finally:
        backend.close()


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Run one query on a ``duckdb:///`` file or a PostgreSQL URL, read-only for DuckDB."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as connection:
            return list(connection.execute(sql).fetchall())
    import duckdb

    path = url.removeprefix("duckdb:///")
    with duckdb.connect(path, read_only=True) as connection:
        return list(connection.execute(sql).fetchall())


def record_keys(url: str, kind: str) -> Counter[Any]:
    """Every stored record of ``kind`` by the simulator's natural key (from ``raw``)."""
    found: Counter[Any] = Counter()
    for liveid, raw in rows(url, f"SELECT liveid, raw::text FROM cc_{kind}"):
        found[record_key(kind, liveid, json.loads(raw))] += 1
    return found


def assert_matches_truth(url: str, truth: Truth, kinds: Iterable[str]) -> None:
    """Every record of the truth exactly once, nothing else; one row per live."""
    for kind in kinds:
        if kind == "summary":
            found = Counter(liveid for (liveid,) in rows(url, "SELECT liveid FROM cc_summary"))
            assert set(found) == {live.liveid for live in truth.lives}
            assert max(found.values(), default=1) == 1
            continue
        keys = record_keys(url, kind)
        assert max(keys.values(), default=1) == 1, f"{kind}: records stored twice"
        assert set(keys) == truth.keys[kind], f"{kind}: stored records differ from the truth"
    lives = {liveid for (liveid,) in rows(url, "SELECT liveid FROM cc_lives")}
    assert lives == {live.liveid for live in truth.lives}
