"""``cc-collect harvest --log-format json`` and ``--metrics-file`` as cron runs them: a real
process against the simulator over loopback, its stderr read line by line and its metrics
file parsed with prometheus-client's own parser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cc_collect_async.cli import metrics_file
from cc_collect_async.sim import DEMO_API_KEY, DEMO_USERID, DatasetSpec, SimConfig, Simulator, serve

SPEC = DatasetSpec(lives=4, rooms=2, chat_per_live=10, access_per_live=10)
HARVEST = ["harvest", "--since", "2026-11-01", "--until", "2026-11-03", "--kinds", "chat,access"]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Simulator, str]]:
    # Some faults, so the run retries and the library has something to log.
    sim = Simulator(SPEC, SimConfig(fault_rate=0.3, fault_kinds=("http503",), fault_seed=3))
    with serve(sim) as url:
        yield sim, url


def run(argv: list[str], url: str, api_key: str = DEMO_API_KEY) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CC_USERID": DEMO_USERID, "CC_API_KEY": api_key, "CC_BASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "cc_collect_async", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def json_lines(stderr: str) -> list[dict[str, object]]:
    lines = stderr.splitlines()
    assert lines, "nothing on stderr"
    parsed = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    for entry in parsed:
        assert set(entry) == {"time", "level", "event", "fields"}, entry
    return parsed


def metrics(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_json_log_format_prints_only_json_lines(
    served: tuple[Simulator, str], tmp_path: Path
) -> None:
    sim, url = served
    out = tmp_path / "night"
    done = run([*HARVEST, "--out", str(out), "--log-format", "json", "-vv"], url)
    assert done.returncode == 0, done.stderr
    entries = json_lines(done.stderr)
    events = [str(e["event"]) for e in entries]
    assert any(e.startswith("harvesting ") for e in events)
    assert any("retrying" in e for e in events)  # the library's own log, -v
    finished = entries[-1]
    assert finished["event"] == "finished" and finished["level"] == "info"
    fields = finished["fields"]
    assert isinstance(fields, dict)
    assert fields["exit_code"] == 0 and fields["complete"] is True
    truth = sim.truth()
    assert fields["records"] == len(truth.keys["chat"]) + len(truth.keys["access"])
    assert fields["kinds"]["chat"]["records"] == len(truth.keys["chat"])  # type: ignore[index]
    assert DEMO_API_KEY not in done.stderr


def test_json_log_format_reports_errors_as_json_too(
    served: tuple[Simulator, str], tmp_path: Path
) -> None:
    _, url = served
    done = run([*HARVEST, "--out", str(tmp_path / "x"), "--log-format", "json"], url, "wrong-key")
    assert done.returncode == 3
    entries = json_lines(done.stderr)
    errors = [e for e in entries if e["level"] == "error"]
    assert errors and "authentication rejected" in str(errors[0]["event"])


def test_metrics_file_for_the_textfile_collector(
    served: tuple[Simulator, str], tmp_path: Path
) -> None:
    sim, url = served
    out, prom = tmp_path / "night", tmp_path / "cc.prom"
    done = run([*HARVEST, "--out", str(out), "--quiet", "--metrics-file", str(prom)], url)
    assert done.returncode == 0, done.stderr
    first = metrics(prom)
    truth = sim.truth()
    assert first[("cc_collect_harvest_records", (("kind", "chat"),))] == len(truth.keys["chat"])
    assert first[("cc_collect_harvest_units", (("kind", "access"), ("state", "done")))] == 4
    assert first[("cc_collect_harvest_units", (("kind", "access"), ("state", "failed")))] == 0
    assert first[("cc_collect_harvest_requests", ())] >= 9  # 1 listing + 8 units + retries
    assert first[("cc_collect_harvest_retries", ())] >= 1
    assert first[("cc_collect_harvest_exit_code", ())] == 0
    assert first[("cc_collect_harvest_complete", ())] == 1
    success = first[("cc_collect_harvest_last_success_timestamp_seconds", ())]
    assert success == first[("cc_collect_harvest_last_run_timestamp_seconds", ())]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    # A failed run the next night keeps the last success and says what went wrong.
    failed = run([*HARVEST, "--out", str(out), "--metrics-file", str(prom)], url, "wrong-key")
    assert failed.returncode == 0  # the directory is complete: nothing to ask the vendor
    broken = run(
        [*HARVEST, "--out", str(tmp_path / "other"), "--metrics-file", str(prom)], url, "bad"
    )
    assert broken.returncode == 3
    second = metrics(prom)
    assert second[("cc_collect_harvest_exit_code", ())] == 3
    assert second[("cc_collect_harvest_last_success_timestamp_seconds", ())] >= success
    assert second[("cc_collect_harvest_last_run_timestamp_seconds", ())] > success


def test_metrics_file_in_a_missing_directory_is_a_usage_error(
    served: tuple[Simulator, str], tmp_path: Path
) -> None:
    _, url = served
    prom = tmp_path / "nowhere" / "cc.prom"
    done = run([*HARVEST, "--out", str(tmp_path / "o"), "--metrics-file", str(prom)], url)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"cc-collect: error: --metrics-file: directory {prom.parent} does not exist; create it"
    ]
    assert not (tmp_path / "o").exists()
    (tmp_path / "metrics").mkdir()  # a directory named where the file should be
    done = run(
        [*HARVEST, "--out", str(tmp_path / "o"), "--metrics-file", str(tmp_path / "metrics")], url
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"cc-collect: error: --metrics-file: {tmp_path / 'metrics'} is a directory; "
        "name a file in it"
    ]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["harvest", "--since", "2026-13-01", "--log-format", "json"],  # refused by argparse
        ["sync", "--log-format=json", "--since", "2026-11-02", "--until", "2026-11-01"],
        ["harvest", "--log-format", "json", "--kinds", "chats"],
        ["harvest", "--log-format", "json", "--bogus"],
    ],
)
def test_usage_errors_are_json_lines_too(
    served: tuple[Simulator, str], tmp_path: Path, argv: list[str]
) -> None:
    """A shipper reading stderr as JSON got plain text for exit 2 and no finished event."""
    _, url = served
    done = run([*argv, "--out" if argv[0] == "harvest" else "--db", str(tmp_path / "o")], url)
    assert done.returncode == 2
    events = [json.loads(line) for line in done.stderr.splitlines()]
    assert [e["level"] for e in events] == ["error", "info"]
    assert "error:" in events[0]["event"]
    assert events[1]["event"] == "finished" and events[1]["fields"] == {"exit_code": 2}
    assert list(tmp_path.iterdir()) == []


def test_render_escapes_label_values_and_parses() -> None:
    text = metrics_file.render(
        {"kinds": {'we"ird\\kind': {"records": 3, "units": 1, "failed": 0}}, "complete": False},
        exit_code=1,
        duration=1.5,
        now=1_800_000_000.0,
        last_success=None,
    )
    families = {f.name: f for f in text_string_to_metric_families(text)}
    sample = families["cc_collect_harvest_records"].samples[0]
    assert sample.labels == {"kind": 'we"ird\\kind'} and sample.value == 3
    assert "cc_collect_harvest_last_success_timestamp_seconds" not in families


# -- cc-collect sync ---------------------------------------------------------------------------

SYNC = ["sync", "--since", "2026-11-01", "--until", "2026-11-03", "--kinds", "chat,access"]


def test_sync_writes_a_metrics_file_and_a_second_night_counts_final_units_as_skipped(
    served: tuple[Simulator, str], tmp_path: Path
) -> None:
    sim, url = served
    db, prom = f"duckdb:///{tmp_path / 'cc.duckdb'}", tmp_path / "sync.prom"
    done = run([*SYNC, "--db", db, "--quiet", "--metrics-file", str(prom)], url)
    assert done.returncode == 0, done.stderr
    first = metrics(prom)
    truth = sim.truth()
    assert first[("cc_collect_sync_records", (("kind", "chat"),))] == len(truth.keys["chat"])
    assert first[("cc_collect_sync_units", (("kind", "access"), ("state", "done")))] == 4
    assert first[("cc_collect_sync_units", (("kind", "access"), ("state", "skipped")))] == 0
    assert first[("cc_collect_sync_lives", ())] == 4
    assert first[("cc_collect_sync_retries", ())] >= 1
    assert first[("cc_collect_sync_complete", ())] == 1
    assert first[("cc_collect_sync_exit_code", ())] == 0
    # 2026-11-03 00:00 Beijing time: where the next incremental sync starts.
    assert first[("cc_collect_sync_watermark_timestamp_seconds", ())] == 1_793_635_200
    success = first[("cc_collect_sync_last_success_timestamp_seconds", ())]

    again = run([*SYNC, "--db", db, "--quiet", "--metrics-file", str(prom)], url)
    assert again.returncode == 0, again.stderr
    second = metrics(prom)
    assert second[("cc_collect_sync_units", (("kind", "chat"), ("state", "skipped")))] == 4
    assert second[("cc_collect_sync_units", (("kind", "chat"), ("state", "done")))] == 0
    assert second[("cc_collect_sync_last_success_timestamp_seconds", ())] > success

    # A database that cannot be used: exit 4, the last success kept.
    (tmp_path / "not-a-db").write_text("hello")
    broken = run(
        [*SYNC, "--db", f"duckdb:///{tmp_path / 'not-a-db'}", "--metrics-file", str(prom)], url
    )
    assert broken.returncode == 2, broken.stderr
    third = metrics(prom)
    assert third[("cc_collect_sync_exit_code", ())] == 2
    assert third[("cc_collect_sync_complete", ())] == 0
    assert (
        third[("cc_collect_sync_last_success_timestamp_seconds", ())]
        == (second[("cc_collect_sync_last_success_timestamp_seconds", ())])
    )
    assert DEMO_API_KEY not in prom.read_text()


def test_sync_json_log_format_prints_only_json_lines_and_ends_with_its_figures(
    served: tuple[Simulator, str], tmp_path: Path
) -> None:
    sim, url = served
    db = f"duckdb:///{tmp_path / 'cc.duckdb'}"
    done = run([*SYNC, "--db", db, "--log-format", "json", "-v"], url)
    assert done.returncode == 0, done.stderr
    entries = json_lines(done.stderr)
    assert any(str(e["event"]).startswith("syncing into ") for e in entries)
    assert any("retrying" in str(e["event"]) for e in entries)  # the library's log, -v
    finished = entries[-1]
    assert finished["event"] == "finished"
    fields = finished["fields"]
    assert isinstance(fields, dict)
    truth = sim.truth()
    assert fields["exit_code"] == 0 and fields["complete"] is True
    assert fields["records_committed"] == len(truth.keys["chat"]) + len(truth.keys["access"])
    assert fields["units_committed"] == 8 and fields["lives"] == 4
    assert fields["watermark_after"] == "2026-11-03T00:00:00+08:00"
    assert DEMO_API_KEY not in done.stderr

    wrong = run([*SYNC, "--db", db, "--log-format", "json"], url, "wrong-key")
    assert wrong.returncode == 3
    errors = [e for e in json_lines(wrong.stderr) if e["level"] == "error"]
    assert errors and "authentication rejected" in str(errors[0]["event"])
