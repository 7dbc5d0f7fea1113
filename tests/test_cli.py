"""``cc-collect`` end to end, in process: the real command against the simulator over
loopback TCP, real files, every exit code.

The process-level behaviour (SIGKILL, SIGINT, the console script itself) is in
``test_cli_process.py``.
"""

from __future__ import annotations

import io
import json
import os
import socket
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from cc_collect_async import CollectClient
from cc_collect_async.cli import main
from cc_collect_async.cli.args import (
    default_out,
    default_window,
    resolve_window,
)
from cc_collect_async.cli.progress import (
    LogProgress,
    TerminalProgress,
    failed_phrase,
    failure_lines,
    format_duration,
)
from cc_collect_async.harvest import (
    DEFAULT_KINDS,
    HarvestRequest,
    Progress,
    Window,
    read_manifest,
    read_records,
)
from cc_collect_async.models import BEIJING
from cc_collect_async.sim import DEMO_USERID, DatasetSpec, SimConfig, Simulator, record_key, serve

# Distinctive, so a leak shows up as a plain substring anywhere.
KEY = "cli-Secret+Key/=&0xC0FFEE"
SPEC = DatasetSpec(lives=8, rooms=2)
SINCE, UNTIL = "2026-11-01", "2026-11-03"
WINDOW = ["--since", SINCE, "--until", UNTIL]
# A fixed rate: the adaptive limiter's careful start would only make the tests slower.
FAST = ["--rate", "500"]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Simulator, str]]:
    sim = Simulator(SPEC, SimConfig(accounts={DEMO_USERID: KEY}))
    with serve(sim) as url:
        yield sim, url


@pytest.fixture
def sim(served: tuple[Simulator, str], monkeypatch: pytest.MonkeyPatch) -> Simulator:
    """The served simulator, counters zeroed, and the environment pointing at it."""
    simulator, url = served
    simulator.reset_stats()
    monkeypatch.setenv("CC_USERID", DEMO_USERID)
    monkeypatch.setenv("CC_API_KEY", KEY)
    monkeypatch.setenv("CC_BASE_URL", url)
    return simulator


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_files_equal_truth(out: Path, sim: Simulator, kinds: tuple[str, ...]) -> None:
    truth = sim.truth(datetime(2026, 11, 1), datetime(2026, 11, 3))
    lives = Counter(row["liveid"] for row in read_records(out, "lives"))
    assert lives == Counter(live.liveid for live in truth.lives)
    for kind in kinds:
        if kind == "summary":
            assert Counter(row["liveid"] for row in read_records(out, kind)) == lives
            continue
        keys = Counter(record_key(kind, row["liveid"], row) for row in read_records(out, kind))
        assert not [k for k, n in keys.items() if n > 1], f"{kind}: records written twice"
        assert set(keys) == truth.keys[kind], f"{kind}: records missing or unexpected"


# -- harvest -------------------------------------------------------------------------------


def test_window_harvest_equals_truth(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = run(
        capsys, "harvest", *WINDOW, "--kinds", "all", "--out", str(out), "--json", *FAST
    )

    assert code == 0, stderr
    assert_files_equal_truth(
        out,
        sim,
        ("chat", "access", "vote", "answercard", "rollcall", "brainstorm", "reward", "summary"),
    )
    manifest = json.loads(stdout)
    assert manifest == read_manifest(out)
    assert manifest["complete"] is True
    assert manifest["requests"] == sim.stats.requests
    assert manifest["source"] == {"base_url": os.environ["CC_BASE_URL"], "userid": DEMO_USERID}
    assert "complete:" in stderr and "chat.jsonl" in stderr  # the summary table


def test_rerun_of_a_finished_harvest_sends_nothing_and_says_so(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "out")
    assert run(capsys, "harvest", *WINDOW, "--out", out, *FAST)[0] == 0
    sim.reset_stats()

    code, stdout, stderr = run(capsys, "harvest", *WINDOW, "--out", out, *FAST)

    assert code == 0
    assert sim.stats.requests == 0
    assert "already holds this harvest, complete" in stderr and "nothing to do" in stderr
    assert stdout == ""


def test_quiet_prints_nothing_on_success(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, stderr = run(
        capsys, "harvest", *WINDOW, "--kinds", "chat", "--out", str(tmp_path), "-q", *FAST
    )
    assert (code, stdout, stderr) == (0, "", "")


def test_parquet_output(sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, stderr = run(
        capsys, "harvest", *WINDOW, "--format", "parquet", "--out", str(tmp_path), *FAST
    )
    assert code == 0, stderr
    assert sorted(p.name for p in tmp_path.glob("*.parquet")) == sorted(
        f"{k}.parquet" for k in DEFAULT_KINDS
    )
    assert not list(tmp_path.glob("chat.jsonl"))
    assert_files_equal_truth(tmp_path, sim, DEFAULT_KINDS)


def test_explicit_lives(sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live = sim.dataset.lives()[1]
    code, _, stderr = run(
        capsys,
        "harvest",
        "--live",
        f"{live.roomid}:{live.liveid}",
        "--kinds",
        "chat,rollcall",
        "--out",
        str(tmp_path),
    )
    assert code == 0, stderr
    rows = list(read_records(tmp_path, "rollcall"))
    assert len(rows) == sim.dataset.count(live.liveid, "rollcall")
    assert {(r["liveid"], r["roomid"]) for r in rows} <= {(live.liveid, live.roomid)}
    assert list(read_records(tmp_path, "lives")) == [{"roomid": live.roomid, "liveid": live.liveid}]


# -- exit codes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "2026-13-01"], "expected a Beijing time as YYYY-MM-DD"),
        (["--until", "yesterday"], "expected a Beijing time"),
        (["--kinds", "chat,chats"], "unknown kind(s) chats"),
        (["--since", "2026-11-02", "--until", "2026-11-02"], "must be before --until"),
        (["--since", "2026-11-03 10:00", "--until", "2026-11-03"], "must be before --until"),
        (["--live", "R:L", "--since", "2026-11-01"], "leave out --since"),
        (["--live", "justone"], "expected ROOMID:LIVEID"),
        (["--concurrency", "0"], "at least 1"),
        (["--rate", "-3"], "positive number"),
        (["--format", "csv"], "invalid choice"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_usage_errors_exit_2(
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    code, stdout, stderr = run(capsys, "harvest", "--out", str(tmp_path / "o"), *argv)
    assert code == 2
    assert message in stderr
    assert stdout == ""
    assert sim.stats.requests == 0
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "typo",
    [["--api_key", "s3cret-typed-key"], ["--apikey=s3cret-typed-key"], ["s3cret-typed-key"]],
)
def test_a_mistyped_option_is_named_without_its_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], typo: list[str]
) -> None:
    """argparse echoed every unrecognized word: a mistyped --api-key printed the key."""
    code, stdout, stderr = run(capsys, "harvest", "--out", str(tmp_path / "o"), *typo)
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert "unrecognized arguments" in stderr and "s3cret" not in stderr
    assert typo[0].partition("=")[0] in stderr or "1 value not shown" in stderr


def test_missing_credentials_exit_2_naming_the_variables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CC_USERID", "CC_API_KEY", "CC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    code, _, stderr = run(capsys, "harvest", "--out", str(tmp_path))
    assert code == 2
    assert stderr.count("\n") == 1, "one line"
    assert "CC_USERID" in stderr and "CC_API_KEY" in stderr

    monkeypatch.setenv("CC_USERID", "someone")
    code, _, stderr = run(capsys, "lives")
    assert code == 2 and "CC_API_KEY" in stderr and "CC_USERID" not in stderr


# Misconfiguration: each case is refused with one line and exit 2 before anything exists:
# no output directory, no request, no traceback, and the key is never echoed.
MISCONFIGURED: list[tuple[dict[str, str], list[str], str]] = [
    ({"CC_API_KEY": "   "}, [], "CC_API_KEY (or --api-key)"),
    ({"CC_USERID": "  "}, [], "CC_USERID (or --userid)"),
    ({}, ["--api-key", " "], "CC_API_KEY (or --api-key)"),
    ({}, ["--until", "0001-01-01"], "expected a time from 1970-01-01 to 9999-12-30"),
    ({}, ["--since", "0001-01-01", "--until", "2026-11-01"], "expected a time from 1970-01-01"),
    ({}, ["--since", "9999-12-31"], "expected a time from 1970-01-01 to 9999-12-30"),
    ({}, ["--until", "9999-12-31 23:59"], "expected a time from 1970-01-01 to 9999-12-30"),
    ({"CC_BASE_URL": "http://"}, [], "CC_BASE_URL: base URL 'http://' has no host"),
    ({"CC_BASE_URL": "http://127.0.0.1:99999"}, [], "has a port out of range"),
    ({"CC_BASE_URL": "http://[::1"}, [], "CC_BASE_URL: base URL 'http://[::1' is malformed"),
    ({}, ["--base-url", "ftp://x"], "--base-url: base URL 'ftp://x' must start with http://"),
    ({}, ["--timeout", "0"], "--timeout: expected a positive number"),
    ({}, ["--timeout", "nan"], "--timeout: expected a positive number"),
]


@pytest.mark.parametrize(
    ("command", "environ", "argv", "message"),
    [
        (command, environ, argv, message)
        for command in ("harvest", "lives", "call")
        for environ, argv, message in MISCONFIGURED
        # call takes no window
        if not (command == "call" and {"--since", "--until"} & set(argv))
    ],
)
def test_misconfiguration_exits_2_with_one_line_before_anything_is_created(
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    environ: dict[str, str],
    argv: list[str],
    message: str,
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "o"
    where = {
        "harvest": ["harvest", "--out", str(out)],
        "lives": ["lives"],
        "call": ["call", "user_count", "liveid=L"],
    }[command]
    monkeypatch.chdir(tmp_path)

    code, stdout, stderr = run(capsys, *where, *argv)

    assert code == 2, stderr
    assert stderr.count("\n") == 1 and message in stderr, stderr
    assert stdout == "" and "Traceback" not in stderr
    assert KEY not in stderr
    assert list(tmp_path.iterdir()) == [], "nothing created"
    assert sim.stats.requests == 0


@pytest.mark.parametrize("command", ["harvest", "lives", "call"])
def test_timeout_reaches_the_client(
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    from cc_collect_async.cli import runtime
    from cc_collect_async.client import DEFAULT_TIMEOUT

    built: list[CollectClient] = []

    class Recording(runtime.CollectClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(runtime, "CollectClient", Recording)
    live = sim.dataset.lives()[0]

    def argv(out: str) -> list[str]:
        return {
            "harvest": ["harvest", *WINDOW, "--kinds", "vote", *FAST, "--out", out],
            "lives": ["lives", *WINDOW],
            "call": ["call", "user_count", f"liveid={live.liveid}"],
        }[command]

    code, _, stderr = run(capsys, *argv(str(tmp_path / "a")), "--timeout", "7.5")
    assert code == 0, stderr
    # The first client is the command's; a harvest derives one (with_options) sharing its pool.
    assert built[0].timeout == 7.5

    built.clear()
    assert run(capsys, *argv(str(tmp_path / "b")))[0] == 0
    assert built[0].timeout == DEFAULT_TIMEOUT


def test_missing_pyarrow_is_a_usage_error(
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cc_collect_async.harvest import parquet

    def missing() -> None:
        raise parquet.ParquetUnavailableError("Parquet output needs pyarrow: pip install x")

    monkeypatch.setattr(parquet, "require_pyarrow", missing)
    code, _, stderr = run(capsys, "harvest", "--format", "parquet", "--out", str(tmp_path))
    assert code == 2 and "needs pyarrow" in stderr


def test_wrong_api_key_exits_3_without_echoing_it(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "Wrong-Key-987zyx"
    code, stdout, stderr = run(
        capsys, "harvest", *WINDOW, "--api-key", wrong, "--out", str(tmp_path), "-vv"
    )
    assert code == 3
    assert "authentication rejected" in stderr and "CC_API_KEY" in stderr
    assert wrong not in stdout + stderr
    assert read_manifest(tmp_path)["runs"][-1]["outcome"] == "auth-rejected"
    assert sim.stats.auth_failed >= 1


def test_failed_units_exit_1_listed_then_a_rerun_retries_only_them(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = sim.dataset.lives()[0]
    argv = [
        "harvest",
        "--live",
        f"{live.roomid}:{live.liveid}",
        "--live",
        f"{live.roomid}:NOSUCHLIVE",
        "--kinds",
        "chat,access",
        "--out",
        str(tmp_path),
    ]
    code, _, stderr = run(capsys, *argv)

    assert code == 1
    failed_lines = [line for line in stderr.splitlines() if "failed:" in line]
    assert len(failed_lines) == 2 and all("NOSUCHLIVE" in line for line in failed_lines)
    manifest = read_manifest(tmp_path)
    assert manifest["complete"] is False
    assert {f["liveid"] for f in manifest["failures"]} == {"NOSUCHLIVE"}
    assert len(list(read_records(tmp_path, "chat"))) == sim.dataset.count(live.liveid, "chat")

    sim.reset_stats()
    code, _, stderr = run(capsys, *argv)
    assert code == 1
    assert "resuming: 2 units already committed" in stderr
    assert sim.stats.requests == 2


def test_unwritable_out_exits_4(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for out in (blocker, blocker / "sub"):
        code, _, stderr = run(capsys, "harvest", *WINDOW, "--out", str(out))
        assert code == 4
        assert stderr.startswith("cc-collect: error: cannot") and stderr.count("\n") == 1
        assert "Traceback" not in stderr
    assert sim.stats.requests == 0


def test_full_disk_exits_4_without_a_traceback(
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cc_collect_async.harvest.journal import Journal

    # Every kind's spool is /dev/full: the first committed unit meets ENOSPC.
    monkeypatch.setattr(Journal, "spool", lambda self, kind: Path("/dev/full"))
    code, _, stderr = run(capsys, "harvest", *WINDOW, "--out", str(tmp_path), *FAST)
    assert code == 4
    assert "No space left on device" in stderr and "Traceback" not in stderr


def test_a_directory_holding_another_harvest_exits_2(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "harvest", *WINDOW, "--kinds", "chat", "--out", str(tmp_path), *FAST)[0] == 0
    sim.reset_stats()
    code, _, stderr = run(capsys, "harvest", *WINDOW, "--kinds", "vote", "--out", str(tmp_path))
    assert code == 2 and "holds a different harvest" in stderr
    assert sim.stats.requests == 0


def test_the_api_key_appears_in_no_output_and_no_file(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, stderr = run(
        capsys,
        "harvest",
        *WINDOW,
        "--kinds",
        "all",
        "--out",
        str(tmp_path),
        "--json",
        "-vv",
        *FAST,
    )
    assert code == 0
    assert "GET /collect" in stderr, "-vv logs every request, so there was plenty to leak"
    for text in (stdout, stderr):
        assert KEY not in text and quote_plus(KEY) not in text
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 5
    for path in files:
        data = path.read_bytes()
        assert KEY.encode() not in data and quote_plus(KEY).encode() not in data, path


# -- lives, call ---------------------------------------------------------------------------


def test_lives_prints_json_lines(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(capsys, "lives", *WINDOW)
    assert code == 0
    lives = [json.loads(line) for line in stdout.splitlines()]
    expected = sim.dataset.lives(datetime(2026, 11, 1), datetime(2026, 11, 3))
    assert [lv["liveid"] for lv in lives] == [lv.liveid for lv in expected]

    room = expected[0].roomid
    code, stdout, _ = run(capsys, "lives", *WINDOW, "--room", room)
    assert {json.loads(line)["roomid"] for line in stdout.splitlines()} == {room}


def test_lives_lists_the_rooms_it_can_and_exits_1_naming_the_one_it_cannot(
    sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    room = sim.dataset.lives()[0].roomid
    code, stdout, stderr = run(capsys, "lives", *WINDOW, "--room", "NOSUCHROOM", "--room", room)
    assert code == 1
    assert "listing lives of room NOSUCHROOM failed" in stderr
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert rows and {row["roomid"] for row in rows} == {room}


def test_call_prints_the_envelope(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    live = sim.dataset.lives()[0]
    code, stdout, _ = run(capsys, "call", "user_count", f"liveid={live.liveid}")
    assert code == 0
    envelope = json.loads(stdout)
    assert envelope["result"] == "OK"
    assert envelope["data"]["livecount"] == sim.dataset.viewer_count(live.liveid)
    assert stdout.startswith('{\n  "'), "pretty-printed"

    code, stdout, _ = run(
        capsys,
        "call",
        "rollcall",
        f"live_id={live.liveid}",
        "page_index=1",
        "page_num=5",
        "--method",
        "GET",
    )
    assert code == 0 and len(json.loads(stdout)["data"]["data"]) <= 5


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["call", "nosuch"], 2, "unknown endpoint 'nosuch'"),
        (["call", "chat", "roomid=R"], 2, "missing required parameter(s) liveid"),
        (["call", "chat", "roomid"], 2, "expected KEY=VALUE"),
        (["call", "user_count", "liveid=NOSUCH"], 1, "FAIL"),
    ],
)
def test_call_errors(
    sim: Simulator,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    code: int,
    message: str,
) -> None:
    got, stdout, stderr = run(capsys, *argv)
    assert got == code
    assert message in stderr and stdout == ""


# -- demo ----------------------------------------------------------------------------------


def test_demo_harvests_and_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cc-demo"
    code, stdout, stderr = run(capsys, "demo", "--out", str(out), "--json")
    assert code == 0, stderr
    assert "verified: every record exactly once" in stderr
    assert "MISMATCH" not in stderr
    manifest = json.loads(stdout)
    assert manifest["complete"] is True and manifest["retries"] > 0, "faults were injected"
    assert set(manifest["kinds"]) == {
        "chat",
        "access",
        "vote",
        "answercard",
        "rollcall",
        "brainstorm",
        "reward",
        "summary",
    }
    # A second demo starts over rather than reporting "nothing to do".
    code, _, stderr = run(capsys, "demo", "--out", str(out), "-q")
    assert (code, stderr) == (0, "")


def test_demo_refuses_a_directory_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "thesis.tex").write_text("keep me")
    code, _, stderr = run(capsys, "demo", "--out", str(tmp_path))
    assert code == 2 and "holds no cc-collect harvest" in stderr
    assert (tmp_path / "thesis.tex").exists()


# -- pieces --------------------------------------------------------------------------------


def test_default_window_is_yesterday_in_beijing() -> None:
    # 2026-11-02 01:30 in Beijing is still 2026-11-01 in UTC: the day is Beijing's.
    beijing_morning = datetime(2026, 11, 1, 17, 30, tzinfo=timezone.utc)
    assert default_window(beijing_morning) == (datetime(2026, 11, 1), datetime(2026, 11, 2))
    window = resolve_window(None, None, (), beijing_morning)
    assert (window.since, window.until) == (
        datetime(2026, 11, 1, tzinfo=BEIJING),
        datetime(2026, 11, 2, tzinfo=BEIJING),
    )
    only_until = resolve_window(None, datetime(2026, 10, 5), (), beijing_morning)
    assert only_until.since == datetime(2026, 10, 4, tzinfo=BEIJING)


def test_default_out_names_the_window() -> None:
    def out(since: datetime, until: datetime) -> str:
        request = HarvestRequest(kinds=("chat",), window=Window(since, until))
        return str(default_out(request))

    assert out(datetime(2026, 11, 1), datetime(2026, 11, 2)) == "cc-harvest-2026-11-01"
    assert out(datetime(2026, 11, 1), datetime(2026, 11, 3)) == "cc-harvest-2026-11-01_2026-11-03"
    assert (
        out(datetime(2026, 11, 1, 6), datetime(2026, 11, 1, 18))
        == "cc-harvest-2026-11-01T0600_2026-11-01T1800"
    )


def progress(**changes: Any) -> Progress:
    values: dict[str, Any] = {
        "lives": 4,
        "units_total": 8,
        "units_done": 6,
        "units_failed": 1,
        "records": 1234,
        "requests": 20,
        "retries": 2,
        "rate_limited": 1,
        "request_rate": 12.5,
        "elapsed": 3.0,
        "planning_done": True,
        "records_by_kind": {"chat": 1200, "vote": 34},
        "units_done_by_kind": {"chat": 3, "vote": 3},
    }
    values.update(changes)
    return Progress(**values)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_progress_redraws_in_place() -> None:
    stream = FakeTerminal()
    view = TerminalProgress(stream, ("chat", "vote"))
    view.update(progress(units_skipped_by_kind={"chat": 1}))
    first = stream.getvalue()
    assert "7/9 units (1 failed)" in first and "1,234 records" in first
    assert "12.5/s" in first and "2 retries" in first and "ETA 0:01" in first
    assert "chat" in first and "4/4" in first  # 3 fetched + 1 done earlier
    view.update(progress(planning_done=False, units_skipped_by_kind={"chat": 1}))
    assert stream.getvalue()[len(first) :].startswith("\x1b[4F"), "moves up over its 4 lines"


def test_log_progress_writes_plain_lines() -> None:
    stream = io.StringIO()
    view = LogProgress(stream, every=0.0)
    view.update(progress())
    line = stream.getvalue()
    assert line.startswith("cc-collect: 4 lives, 6/8 units (1 failed), 1,234 records")
    assert "\x1b" not in line and line.count("\n") == 1


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 7.4, 725, 3723)] == ["0:00", "0:07", "12:05", "1:02:03"]


def test_a_failed_lives_listing_exits_1(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, stderr = run(
        capsys, "harvest", *WINDOW, "--room", "NOSUCHROOM", "--out", str(tmp_path)
    )
    assert code == 1
    assert "failed: listing lives of room NOSUCHROOM: " in stderr
    assert "listing lives failed: listing lives failed" not in stderr
    assert "incomplete: listing lives failed; run the same command again" in stderr
    assert read_manifest(tmp_path)["complete"] is False


def test_the_failure_lines_say_where_the_rest_are() -> None:
    failures = [{"kind": "chat", "liveid": f"L{n}", "roomid": "R", "reason": "x"} for n in range(3)]
    lines = failure_lines({"failures": failures}, limit=2)
    assert lines[-1] == "cc-collect: ... and 1 more (see manifest.json)"
    synced = failure_lines({"failures": failures}, see="cc_runs.report, or --json", limit=2)
    assert synced[-1] == "cc-collect: ... and 1 more (see cc_runs.report, or --json)"


def test_the_closing_line_says_what_failed() -> None:
    lives, chat = {"kind": "lives", "roomid": "R1"}, {"kind": "chat", "liveid": "L1"}
    assert failed_phrase([chat]) == "1 unit failed"
    assert failed_phrase([chat] * 1200) == "1,200 units failed"
    assert failed_phrase([lives, lives]) == "listing lives failed"
    assert failed_phrase([lives, chat, chat]) == "listing lives and 2 units failed"


# -- event loop --------------------------------------------------------------------------------


def test_commands_run_on_uvloop_when_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import uvloop

    from cc_collect_async.cli import runtime
    from cc_collect_async.cli.exits import ExitCode

    loops: list[type] = []

    async def probe() -> ExitCode:
        loops.append(type(asyncio.get_running_loop()))
        return ExitCode.OK

    assert runtime.run_async(probe) == ExitCode.OK
    monkeypatch.setattr(runtime, "uvloop_available", lambda: False)
    assert runtime.run_async(probe) == ExitCode.OK
    assert loops[0] is uvloop.Loop
    assert not issubclass(loops[1], uvloop.Loop)


# -- requests in flight ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], 8),
        (["--rate", "10"], 8),
        (["--rate", "100"], 25),  # 100/s at a 250 ms round trip; 8 held it at 75%
        (["--rate", "5000"], 64),
        (["--rate", "100", "--concurrency", "4"], 4),
        (["--concurrency", "3"], 3),
    ],
)
def test_concurrency_follows_the_rate_unless_given(argv: list[str], expected: int) -> None:
    from cc_collect_async.cli.args import build_parser, harvest_options

    ns = build_parser().parse_args(["harvest", "--since", "2026-11-01", *argv])
    environ = {"CC_USERID": "U", "CC_API_KEY": "K"}
    assert harvest_options(ns, environ).concurrency == expected


def test_the_simulator_command_refuses_bad_values_and_a_taken_port_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, stderr = run(capsys, "sim", "--lives", "-1")
    assert (
        code == 2 and stderr == "cc-collect sim: error: lives must be >= 0, got -1 (see --help)\n"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, stderr = run(capsys, "sim", "--port", str(port))
    assert code == 2 and stderr.count("\n") == 1 and "Traceback" not in stderr
    assert f"cannot listen on 127.0.0.1:{port}" in stderr and "another --port" in stderr
