"""The database half of ``cc-collect demo``: the same simulator synced into a DuckDB file
beside the demo's directory, and one query over it, so the first command a person runs
shows the database path working too."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TextIO

from ..database import parse_target
from ..harvest import ALL_KINDS, Window
from .args import Credentials, Display
from .exits import ExitCode
from .sync import SyncOptions, run_sync

__all__ = ["DEMO_QUERY", "database_path", "show_query", "sync_demo"]

#: The busiest lives by chat lines, with their title and day (Beijing time).
DEMO_QUERY = """\
SELECT l.class_name, CAST(l.start_time AT TIME ZONE 'Asia/Shanghai' AS DATE) AS day,
       count(*) AS chat_lines, count(DISTINCT c.chat_userid) AS chatters
FROM cc_chat AS c JOIN cc_lives AS l ON l.liveid = c.liveid
GROUP BY l.class_name, day ORDER BY chat_lines DESC LIMIT 5"""


def database_path(out: Path) -> Path:
    return Path(f"{out}.duckdb")


def sync_demo(
    url: str,
    credentials: Credentials,
    window: Window,
    out: Path,
    display: Display,
    stderr: TextIO,
    stdout: TextIO,
) -> ExitCode | None:
    """Sync the demo's window into ``<out>.duckdb`` (from nothing); None where DuckDB is not
    installed (a note says how to get it)."""
    if importlib.util.find_spec("duckdb") is None:
        if not display.quiet:
            print(
                "cc-collect: demo: install the duckdb extra (pip install -e '.[duckdb]') to "
                "see cc-collect sync fill a database too",
                file=stderr,
            )
        return None
    path = database_path(out)
    for stale in (path, Path(f"{path}.wal")):
        if stale.exists():
            os.remove(stale)
    if not display.quiet:
        print(
            f"cc-collect: demo: the same lives into a database: cc-collect sync --db "
            f"duckdb:///{path}",
            file=stderr,
            flush=True,
        )
    return run_sync(
        SyncOptions(
            credentials=credentials,
            target=parse_target(f"duckdb:///{path}"),
            kinds=ALL_KINDS,
            since=window.since,
            until=window.until,
            # One JSON document on stdout at most: the harvest's manifest.
            display=Display(quiet=display.quiet, verbose=display.verbose),
            initial_rate=200.0,
        ),
        stderr=stderr,
        stdout=stdout,
    )


def show_query(out: Path, stderr: TextIO) -> None:
    """Print :data:`DEMO_QUERY` and what it returns from the demo's database."""
    import duckdb

    with duckdb.connect(str(database_path(out)), read_only=True) as connection:
        found = connection.execute(DEMO_QUERY).fetchall()
    print(f"cc-collect: demo: one query over {database_path(out)}:\n{DEMO_QUERY}", file=stderr)
    for title, day, lines, chatters in found:
        name = " ".join(str(title).split())
        print(f"  {day}  {lines:>6,} lines  {chatters:>4,} chatters  {name}", file=stderr)
