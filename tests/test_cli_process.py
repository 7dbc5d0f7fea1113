"""``cc-collect`` as a real process: killed with SIGKILL mid-run and resumed, interrupted with
SIGINT (exit 130), the ``sim`` command, and ``python -m cc_collect_async``.

The simulator serves over loopback with some latency and the harvest runs at a fixed rate,
so "midway" is reliably midway: the test waits until some units are committed (the journal
grows a line per unit) and then sends the signal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from loopback import raw_server, respond, trickle

from cc_collect_async.harvest import read_manifest, read_records
from cc_collect_async.harvest.jsonl import read_jsonl
from cc_collect_async.sim import (
    DEMO_API_KEY,
    DEMO_USERID,
    DatasetSpec,
    SimConfig,
    Simulator,
    record_key,
    serve,
)

SPEC = DatasetSpec(lives=12, rooms=3)
KINDS = ("chat", "access", "vote", "answercard", "rollcall")
# 60 units at 40 requests/s: about a second and a half of work, plenty of time to interrupt.
HARVEST = [
    "harvest",
    "--since",
    "2026-11-01",
    "--until",
    "2026-11-03",
    "--rate",
    "40",
    "--concurrency",
    "4",
]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Simulator, str]]:
    sim = Simulator(SPEC, SimConfig(latency=0.03))
    with serve(sim) as url:
        yield sim, url


@pytest.fixture
def env(served: tuple[Simulator, str]) -> dict[str, str]:
    _, url = served
    return {
        **os.environ,
        "CC_USERID": DEMO_USERID,
        "CC_API_KEY": DEMO_API_KEY,
        "CC_BASE_URL": url,
        "PYTHONUNBUFFERED": "1",
    }


def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cc_collect_async", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def committed_units(out: Path) -> int:
    journal = out / ".parts" / "units.jsonl"
    return journal.read_bytes().count(b"\n") if journal.exists() else 0


def wait_for_units(out: Path, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while committed_units(out) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the harvest made no progress"
        time.sleep(0.01)


def assert_equals_truth(out: Path, sim: Simulator) -> None:
    truth = sim.truth(datetime(2026, 11, 1), datetime(2026, 11, 3))
    assert sorted(r["liveid"] for r in read_records(out, "lives")) == sorted(
        live.liveid for live in truth.lives
    )
    for kind in KINDS:
        keys = Counter(record_key(kind, r["liveid"], r) for r in read_records(out, kind))
        assert not [k for k, n in keys.items() if n > 1], f"{kind}: records written twice"
        assert set(keys) == truth.keys[kind], f"{kind}: records missing"


def assert_parts_are_whole_units(out: Path) -> dict[str, int]:
    """Every unit the journal names is whole in its kind's spool: its byte range holds
    exactly the records its journal line counts, one JSON object per line."""
    per_kind: Counter[str] = Counter()
    spools = {kind: (out / ".parts" / f"{kind}.jsonl").read_bytes() for kind in KINDS}
    for entry in read_jsonl(out / ".parts" / "units.jsonl"):
        kind, start = entry["kind"], entry["offset"]
        lines = spools[kind][start : start + entry["length"]].splitlines(keepends=True)
        assert len(lines) == entry["records"], entry
        assert all(line.endswith(b"\n") and json.loads(line) for line in lines), entry
        per_kind[kind] += len(lines)
    return dict(per_kind)


def test_sigkill_midway_then_rerun_finishes_with_every_record_once(
    served: tuple[Simulator, str], env: dict[str, str], tmp_path: Path
) -> None:
    sim, _ = served
    out = tmp_path / "out"
    argv = [*HARVEST, "--out", str(out)]
    process = start(argv, env)
    wait_for_units(out, 8, process)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL

    manifest = read_manifest(out)
    assert manifest["complete"] is False, "killed before the end, or the test proves nothing"
    # Nothing half-written under a final name: no kind file yet, and whole parts only.
    assert not [p for p in out.iterdir() if p.suffix == ".jsonl"]
    assert_parts_are_whole_units(out)
    done_before = committed_units(out)
    assert 8 <= done_before < 60

    rerun = subprocess.run(
        [sys.executable, "-m", "cc_collect_async", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert rerun.returncode == 0, rerun.stderr
    assert "resuming:" in rerun.stderr
    assert_equals_truth(out, sim)
    manifest = read_manifest(out)
    assert manifest["complete"] is True
    assert [run["outcome"] for run in manifest["runs"]] == ["killed", "complete"]
    assert manifest["runs"][-1]["units_skipped"] >= done_before
    assert not (out / ".parts").exists()


def test_sigint_commits_finished_units_exits_130_and_a_rerun_finishes(
    served: tuple[Simulator, str], env: dict[str, str], tmp_path: Path
) -> None:
    sim, _ = served
    out = tmp_path / "out"
    argv = [*HARVEST, "--out", str(out)]
    process = start(argv, env)
    wait_for_units(out, 5, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 130, stderr
    assert "SIGINT" in stderr and "interrupted:" in stderr and "Traceback" not in stderr
    manifest = read_manifest(out)
    assert manifest["complete"] is False
    assert manifest["runs"][-1]["outcome"] == "interrupted"
    # Units expected: those of every live listed, not only of those handed on by then.
    if manifest["units"]["expected_is"] == "exact":
        assert manifest["units"]["expected"] == SPEC.lives * len(KINDS)
    # The files assembled at the interruption hold exactly the committed units.
    per_kind = assert_parts_are_whole_units(out)
    for kind in KINDS:
        rows = list(read_jsonl(out / f"{kind}.jsonl"))
        assert len(rows) == per_kind.get(kind, 0) == manifest["kinds"][kind]["records"]

    rerun = subprocess.run(
        [sys.executable, "-m", "cc_collect_async", *argv, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["complete"] is True
    assert_equals_truth(out, sim)


def test_sim_command_serves_until_ctrl_c(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "cc_collect_async", "sim", "--lives", "3", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        assert "simulator on http://127.0.0.1:" in banner, banner
        url = banner.split(" on ", 1)[1].split(":", 2)
        base_url = ":".join(url[:2]) + ":" + url[2].split(":", 1)[0]
        lines = [process.stderr.readline() for _ in range(4)]
        export = next(line for line in lines if "export" in line)
        assert f"CC_USERID={DEMO_USERID}" in export and f"CC_API_KEY={DEMO_API_KEY}" in export
        listed = subprocess.run(
            [
                sys.executable,
                "-m",
                "cc_collect_async",
                "lives",
                "--since",
                "2026-11-01",
                "--until",
                "2026-11-03",
            ],
            env={
                **os.environ,
                "CC_USERID": DEMO_USERID,
                "CC_API_KEY": DEMO_API_KEY,
                "CC_BASE_URL": base_url,
            },
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert listed.returncode == 0, listed.stderr
        assert len(listed.stdout.splitlines()) == 3
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=15)
    assert process.returncode == 0


def test_console_script_and_module_agree() -> None:
    module = subprocess.run(
        [sys.executable, "-m", "cc_collect_async", "--version"], capture_output=True, text=True
    )
    assert module.returncode == 0 and module.stdout.startswith("cc-collect ")
    script = Path(sys.executable).with_name("cc-collect")
    if script.exists():
        direct = subprocess.run([str(script), "--version"], capture_output=True, text=True)
        assert direct.stdout == module.stdout


@pytest.mark.parametrize(
    ("environ", "argv", "message"),
    [
        ({"CC_API_KEY": "   "}, [], "CC_API_KEY (or --api-key)"),
        ({"CC_USERID": "  "}, [], "CC_USERID (or --userid)"),
        ({}, ["--until", "0001-01-01"], "expected a time from 1970-01-01"),
        ({"CC_BASE_URL": "http://127.0.0.1:99999"}, [], "has a port out of range"),
        ({"CC_BASE_URL": "http://"}, [], "has no host"),
    ],
)
def test_misconfiguration_exits_2_with_one_line_and_creates_nothing(
    served: tuple[Simulator, str],
    env: dict[str, str],
    tmp_path: Path,
    environ: dict[str, str],
    argv: list[str],
    message: str,
) -> None:
    sim, _ = served
    sim.reset_stats()
    done = subprocess.run(
        [sys.executable, "-m", "cc_collect_async", "harvest", "--out", "o", *argv],
        env={**env, **environ},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert DEMO_API_KEY not in done.stderr and done.stdout == ""
    assert list(tmp_path.iterdir()) == []
    assert sim.stats.requests == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_while_starting_up_exits_130_without_a_traceback(
    env: dict[str, str], tmp_path: Path, signum: signal.Signals
) -> None:
    """SIGINT, or a scheduler's SIGTERM (it killed the process silently with 143), while the
    command still imports its HTTP stack (the longest part of start-up).

    ``-X importtime`` reports each module as its import ends; the signal is sent once the
    first module that ``main`` itself imports is reported, so it lands somewhere in the rest
    of start-up: whatever the exact moment, one line and 130."""
    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "cc_collect_async", *HARVEST, "--out", "o"],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if line.rsplit("|", 1)[-1].strip() == "cc_collect_async.beijing":
            process.send_signal(signum)
            break
    else:
        raise AssertionError("the command never imported cc_collect_async.beijing")
    rest = process.stderr.read()
    process.wait(timeout=60)
    said = [line for line in rest.splitlines() if not line.startswith("import time:")]
    assert process.returncode == 130, said
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest
    assert said[-1] == "cc-collect: interrupted" or "interrupted:" in said[-1], said


def test_a_server_that_trickles_its_reply_cannot_hold_a_harvest(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Headers at once, then a byte a second for ever: each attempt runs out of --timeout,
    is retried like any network failure, and the unit fails: exit 1, the failure listed.
    The bound is the retry policy's (attempts x --timeout plus its backoff, about 17 s
    here), not for ever."""
    with raw_server(trickle(1.0)) as server:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "cc_collect_async",
                "harvest",
                "--live",
                "R1:L1",
                "--kinds",
                "vote",
                "--timeout",
                "0.3",
                "--out",
                str(tmp_path / "out"),
            ],
            env={**env, "CC_BASE_URL": server.url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        attempts = len(server.heads)
    assert done.returncode == 1, done.stderr
    assert "failed: vote of live L1" in done.stderr and "Traceback" not in done.stderr
    assert attempts > 1, "the attempt that ran out of time was retried"
    assert read_manifest(tmp_path / "out")["failures"][0]["liveid"] == "L1"


def test_call_prints_a_reply_with_a_lone_surrogate_and_a_big_integer_as_received(
    env: dict[str, str],
) -> None:
    """A truncated emoji (a lone surrogate escape) and an integer beyond 64 bits: the
    pretty-printed envelope on stdout holds both exactly, as JSON escapes where UTF-8 cannot
    carry them, instead of a UnicodeEncodeError traceback from the real stdout."""
    reply = b'{"result":"OK","data":{"livecount":123456789012345678901234567890,"n":"a \\ud83d"}}'
    with raw_server(respond(reply)) as server:
        done = subprocess.run(
            [sys.executable, "-m", "cc_collect_async", "call", "user_count", "liveid=L1"],
            env={**env, "CC_BASE_URL": server.url, "PYTHONIOENCODING": "utf-8"},
            capture_output=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"Traceback" not in done.stderr
    printed = json.loads(done.stdout.decode("utf-8"))
    assert printed["data"] == {"livecount": 123456789012345678901234567890, "n": "a \ud83d"}


def test_a_harvest_on_the_aiohttp_engine_never_imports_httpx(
    served: tuple[Simulator, str], env: dict[str, str], tmp_path: Path
) -> None:
    """httpx (with the click and pygments its own command line pulls in when they are
    installed) costs a process 3 MB it does not use when aiohttp carries the requests."""
    program = (
        "import sys\n"
        "from cc_collect_async.cli import main\n"
        f"code = main({[*HARVEST, '--out', str(tmp_path / 'o'), '-q']!r})\n"
        "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'httpx', 'httpcore'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.split("\n")[0] == "0 []", (done.stdout, done.stderr)
    assert_equals_truth(tmp_path / "o", served[0])
