"""``cc-collect sync`` as a person runs it: a subprocess against the simulator on loopback,
SIGKILLed at several moments and rerun (every record exactly once, only missing units
fetched), a second sync on the same file, and the one-line errors with their exit codes."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from postgres_server import PostgresServer
from sync_checks import assert_matches_truth, rows

from cc_collect_async.cli import main
from cc_collect_async.sim import (
    DEMO_API_KEY,
    DEMO_USERID,
    DatasetSpec,
    SimConfig,
    Simulator,
    serve,
)

SPEC = DatasetSpec(lives=40, huge_every=0)
KINDS = ("chat", "access", "vote", "answercard", "rollcall")
WINDOW = ["--since", "2026-11-01", "--until", "2026-11-03"]


@pytest.fixture
def served() -> Iterator[tuple[Simulator, str]]:
    sim = Simulator(SPEC, SimConfig(latency=0.01))
    with serve(sim) as url:
        yield sim, url


def _env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(CC_BASE_URL=url, CC_USERID=DEMO_USERID, CC_API_KEY=DEMO_API_KEY)
    env.pop("CC_DATABASE_URL", None)
    return env


def _command(db: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "cc_collect_async", "sync", "--db", db, *WINDOW,
        "--rate", "300", "--group-seconds", "0.05", "-q", *extra,
    ]  # fmt: skip


def _wait_for(condition: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not callable(condition) or not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_sigkill_at_several_moments_then_rerun(
    served: tuple[Simulator, str], tmp_path: Path
) -> None:
    sim, url = served
    db = f"duckdb:///{tmp_path / 'cc.duckdb'}"
    truth = sim.truth()
    units = len(truth.lives) * len(KINDS)
    committed_before: list[int] = []
    for moment in (2, 40, 110):
        sim.reset_stats()
        process = subprocess.Popen(_command(db), env=_env(url), stderr=subprocess.PIPE)
        _wait_for(lambda m=moment, p=process: sim.stats.requests >= m or p.poll() is not None)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL, "the sync ended before it was killed"
        committed_before.append(rows(db, "SELECT count(*) FROM cc_units")[0][0])
    assert committed_before[-1] < units  # still something to do

    sim.reset_stats()
    done = subprocess.run(_command(db), env=_env(url), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # One listing page, then one request per missing unit (every unit here is one page).
    assert sim.stats.requests == 1 + units - committed_before[-1]
    assert_matches_truth(db, truth, KINDS)
    assert rows(db, "SELECT count(*), count(DISTINCT liveid || kind) FROM cc_units") == [
        (units, units)
    ]
    runs = rows(db, "SELECT complete FROM cc_runs ORDER BY started_at")
    assert [complete for (complete,) in runs] == [False, False, False, True]


def test_a_second_sync_on_the_same_file_fails_fast_with_exit_4(
    served: tuple[Simulator, str], tmp_path: Path
) -> None:
    sim, url = served
    db = f"duckdb:///{tmp_path / 'cc.duckdb'}"
    first = subprocess.Popen(
        _command(db).__add__(["--rate", "20"]), env=_env(url), stderr=subprocess.PIPE
    )
    try:
        _wait_for(lambda: sim.stats.requests > 0)
        second = subprocess.run(_command(db), env=_env(url), capture_output=True, text=True)
        assert second.returncode == 4
        assert "in use by another sync" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(60)
    assert first.returncode == 130


def test_an_interrupted_sync_reports_what_it_committed(
    served: tuple[Simulator, str], tmp_path: Path
) -> None:
    """SIGINT mid-run: exit 130, and the report (stderr, --json) says what was committed,
    as the database holds it; it said "interrupted before anything was fetched"."""
    sim, url = served
    db = f"duckdb:///{tmp_path / 'cc.duckdb'}"
    process = subprocess.Popen(
        _command(db, "--rate", "40", "--json"),
        env=_env(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: sim.stats.requests > 60)  # 1.5 s in: groups have committed
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    report = json.loads(stdout)
    assert report["complete"] is False and report["harvest"]["cancelled"] is True
    assert f"interrupted: {report['units_committed']:,} units committed" in stderr
    assert "before anything was fetched" not in stderr
    assert rows(db, "SELECT count(*), sum(records) FROM cc_units") == [
        (report["units_committed"], report["records_committed"])
    ]
    assert report["units_committed"] > 0


def _run(
    argv: list[str], url: str, capsys: pytest.CaptureFixture[str], **extra: str
) -> tuple[int, str]:
    environ = {**_env(url), **extra}
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environ)
    try:
        code = main(argv)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return code, capsys.readouterr().err


def test_bad_databases_are_one_line_and_a_distinct_exit_code(
    served: tuple[Simulator, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    postgres_server: PostgresServer,
) -> None:
    sim, url = served
    text = tmp_path / "notes.duckdb"
    text.write_text("hello\n" * 1000)
    wrong_password = postgres_server.url(password="not-the-pw-42")
    unreachable = "postgresql://postgres:secret-pw-9@127.0.0.1:9/nothing"
    for db, code, words in (
        (f"duckdb:///{text}", 2, "not a DuckDB database"),
        ("mysql://h/db", 2, "unknown database kind"),
        (wrong_password, 4, "password authentication failed"),
        (wrong_password, 4, "the password goes in the URL, PGPASSWORD or ~/.pgpass"),
        (unreachable, 4, "cannot connect"),
        (f"duckdb:///{tmp_path / 'missing-dir' / 'x.duckdb'}", 4, "does not exist; create it"),
    ):
        got, err = _run(["sync", "--db", db, *WINDOW, "-q"], url, capsys)
        assert got == code, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], err
        assert "not-the-pw-42" not in err and "secret-pw-9" not in err
    assert sim.stats.requests == 0
    assert text.read_text() == "hello\n" * 1000


def test_a_bad_database_url_from_the_environment_is_named_as_such(
    served: tuple[Simulator, str], capsys: pytest.CaptureFixture[str]
) -> None:
    sim, url = served
    libpq = "host=127.0.0.1 dbname=cc password=env-pw-77"
    code, err = _run(["sync", *WINDOW, "-q"], url, capsys, CC_DATABASE_URL=libpq)
    assert code == 2 and "CC_DATABASE_URL looks like a libpq key=value string" in err, err
    assert "env-pw-77" not in err and sim.stats.requests == 0


def test_a_full_disk_while_staging_rows_is_one_line_and_exit_4(
    served: tuple[Simulator, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # DuckDB's own writes failing say so in one line already; the rows staged beside the
    # file for DuckDB to read were written by Python, and a full disk there was a traceback.
    import builtins

    from cc_collect_async.database import duckdb_backend

    def full(file: str, *args: Any, **kwargs: Any) -> Any:
        if str(file).endswith(".rows"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), file)
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(duckdb_backend, "open", full, raising=False)
    url = served[1]
    db = f"duckdb:///{tmp_path / 'cc.duckdb'}"
    code, err = _run(["sync", "--db", db, *WINDOW, "-q"], url, capsys)
    assert code == 4, err
    first = err.strip().splitlines()[0]
    assert "cannot write rows to stage" in first and "No space left on device" in first, err
    assert "Traceback" not in err and url not in err
    assert not [p for p in tmp_path.iterdir() if ".cc-sync-" in p.name]  # its scratch is gone


def test_a_complete_sync_and_its_rerun_through_the_command(
    served: tuple[Simulator, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, url = served
    db = f"duckdb:///{tmp_path / 'cc.duckdb'}"
    code, err = _run(["sync", "--db", db, *WINDOW, "--rate", "300", "--kinds", "chat"], url, capsys)
    assert code == 0, err
    assert "complete:" in err and "watermark now 2026-11-03 00:00" in err and "cc_chat" in err
    assert "units already final are skipped as their lives are listed" in err
    sim.reset_stats()
    code, err = _run(["sync", "--db", db, "--until", "2026-11-03"], url, capsys)
    assert code == 0 and "nothing to do" in err
    assert sim.stats.requests == 0
    # The header said final units were skipped also when --refresh-days fetched them again.
    argv = ["sync", "--db", db, "--until", "2026-11-03", "--refresh-days", "1", "--kinds", "chat"]
    code, err = _run(argv, url, capsys)
    assert code == 0 and sim.stats.requests > 0, err
    assert "every unit is fetched again (--refresh-days), final or not" in err, err
    code, err = _run([*argv, "--since", "2026-11-01"], url, capsys)
    assert code == 0
    assert "skipped for lives started before 2026-11-02 00:00, fetched again after" in err, err


def test_the_demo_syncs_into_a_duckdb_file_and_queries_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cc_collect_async.sim import DatasetSpec as Spec

    out = tmp_path / "cc-demo"
    assert main(["demo", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "one query over" in err and "chat_lines" in err
    spec = Spec()
    truth = Simulator(spec).truth()
    assert_matches_truth(f"duckdb:///{tmp_path / 'cc-demo.duckdb'}", truth, ("chat", "summary"))
