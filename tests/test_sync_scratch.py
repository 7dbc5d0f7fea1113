"""DuckDB's scratch files: a sync killed by SIGKILL leaves its scratch directory beside the
database file, and the next sync of that file removes it (never another file's)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cc_collect_async.database import open_backend, parse_target

_KILLED_SYNC = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime, timezone
    from cc_collect_async.database import open_backend, parse_target
    from cc_collect_async.database.backend import Group
    from cc_collect_async.database.tables import KIND_TABLES
    from cc_collect_async.harvest import KINDS

    backend = open_backend(parse_target(sys.argv[1]), "acct")
    page = backend.page_rows(KIND_TABLES["chat"], "L1", "R1", [{"id": 1}], KINDS["chat"].page_keys)
    unit = ("L1", "chat", "acct", "R1", 1, 1, 0, None, None, datetime.now(timezone.utc), "r", False)
    backend.commit(Group(units=[unit], rows={"chat": [page]}, replaced={"chat": ["L1"]}))
    backend.execute("SELECT count(*) FROM (SELECT i FROM range(4000000) r(i) ORDER BY hash(i))")
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _scratch(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if "cc-sync-" in name)


def test_a_killed_syncs_scratch_is_removed_by_the_next_sync_of_that_file(tmp_path: Path) -> None:
    database = f"duckdb:///{tmp_path / 'cc.duckdb'}"
    other = tmp_path / ".other.duckdb.cc-sync-live"
    other.mkdir()  # another database's scratch in the same folder: not ours to remove
    killed = subprocess.run([sys.executable, "-c", _KILLED_SYNC, database], check=False)
    assert killed.returncode == -9
    left = _scratch(tmp_path)
    # The killed sync's staging and spill directories are beside its file.
    assert len(left) == 3 and other.name in left and ".cc.duckdb.cc-sync-spill" in left
    backend = open_backend(parse_target(database), "acct")
    try:
        assert _scratch(tmp_path) == [other.name]
        assert backend.execute("SELECT count(*) FROM cc_chat") == [(1,)]
    finally:
        backend.close()
    assert _scratch(tmp_path) == [other.name]


def test_duckdb_spills_beside_the_file_not_into_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file is attached to an in-memory connection, whose temporary files went to .tmp
    # under the current directory (DuckDB 1.4 moved a sync's new rows there).
    work, data = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    data.mkdir()
    monkeypatch.chdir(work)
    backend = open_backend(parse_target(f"duckdb:///{data / 'cc.duckdb'}"), "acct")
    try:
        # A sort of more than the sync's 16 MB of DuckDB's memory: it spills.
        spilled = "SELECT count(*) FROM (SELECT i FROM range(4000000) AS r(i) ORDER BY hash(i))"
        assert backend.execute(spilled) == [(4_000_000,)]
        assert os.listdir(work) == []
        assert _scratch(data) == [".cc.duckdb.cc-sync-spill"]
    finally:
        backend.close()
    assert _scratch(data) == []
