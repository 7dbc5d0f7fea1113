"""``--metrics-file PATH``: a harvest's or a sync's figures in Prometheus text format, for cron.

node_exporter's textfile collector reads ``*.prom`` files from a directory; a nightly job
writes its figures there when it ends and the monitoring alerts when
``cc_collect_harvest_last_success_timestamp_seconds`` (``cc_collect_sync_...`` for a sync)
grows old. The file is written whole under a temporary name and renamed into place, so the
collector never reads half of it.
The last success is carried over from the previous file when this run did not succeed.
Written by hand (the format is a few lines of text), so the command line needs no
prometheus-client.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ..harvest.filesystem import write_atomic

__all__ = ["add_option", "previous_success", "render", "render_sync", "write"]


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-file",
        type=Path,
        metavar="PATH",
        help="write the run's figures here at the end, in Prometheus text format "
        "(for node_exporter's textfile collector: name it *.prom)",
    )


def _number(value: float) -> str:
    if math.isinf(value) or math.isnan(value):
        return "NaN"
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Text:
    """The file's lines, metric by metric (every metric a gauge)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(self, name: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} gauge")
        self.lines.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

    def run_end(
        self,
        prefix: str,
        *,
        exit_code: int,
        duration: float,
        now: float,
        last_success: float | None,
    ) -> str:
        """The figures every run ends with, and the whole text."""
        self.metric(
            f"{prefix}_duration_seconds", "Wall time of the last run.", [("", round(duration, 3))]
        )
        self.metric(f"{prefix}_exit_code", "Exit code of the last run.", [("", exit_code)])
        self.metric(
            f"{prefix}_last_run_timestamp_seconds",
            "When the last run ended (Unix time).",
            [("", round(now, 3))],
        )
        success = now if exit_code == 0 else last_success
        if success is not None:
            self.metric(
                f"{prefix}_last_success_timestamp_seconds",
                "When a run last ended with every unit complete (Unix time).",
                [("", round(success, 3))],
            )
        return "\n".join(self.lines) + "\n"

    def pace(self, prefix: str, run: Mapping[str, Any]) -> None:
        """The run's requests, retries and "too fast" replies."""
        for key, help_text in (
            ("requests", "HTTP requests sent by the last run."),
            ("retries", "Retried attempts in the last run."),
            ("rate_limited", "Replies saying too fast in the last run."),
        ):
            self.metric(f"{prefix}_{key}", help_text, [("", int(run.get(key) or 0))])


def render(
    manifest: Mapping[str, Any],
    *,
    exit_code: int,
    duration: float,
    now: float,
    last_success: float | None,
    this_run: Mapping[str, Any] | None = None,
) -> str:
    """``cc-collect harvest``'s file. ``manifest`` is the output directory's (its totals
    cover every run into it); ``this_run`` the figures of this run alone (requests, retries,
    rate_limited)."""
    kinds: Mapping[str, Mapping[str, Any]] = manifest.get("kinds") or {}
    text = _Text()
    text.metric(
        "cc_collect_harvest_records",
        "Records in the output directory, by kind.",
        [(f'{{kind="{_label(k)}"}}', int(c.get("records") or 0)) for k, c in kinds.items()],
    )
    text.metric(
        "cc_collect_harvest_units",
        "Units (live x kind) in the output directory, by kind and state.",
        [
            (f'{{kind="{_label(k)}",state="{state}"}}', int(c.get(field) or 0))
            for k, c in kinds.items()
            for state, field in (("done", "units"), ("failed", "failed"))
        ],
    )
    text.metric(
        "cc_collect_harvest_lives",
        "Lives in the output directory.",
        [("", int(manifest.get("lives") or 0))],
    )
    text.pace("cc_collect_harvest", this_run or {})
    text.metric(
        "cc_collect_harvest_complete",
        "1 when the output directory holds every unit.",
        [("", 1 if manifest.get("complete") else 0)],
    )
    return text.run_end(
        "cc_collect_harvest",
        exit_code=exit_code,
        duration=duration,
        now=now,
        last_success=last_success,
    )


def render_sync(
    report: Mapping[str, Any] | None,
    *,
    exit_code: int,
    duration: float,
    now: float,
    last_success: float | None,
) -> str:
    """``cc-collect sync``'s file, from its JSON report (None: the sync ended before its
    plan, e.g. on a database error). Counts are this run's: units committed, failed and
    skipped as final, by kind; the watermark is where the next sync starts."""
    sync = report or {}
    harvest: Mapping[str, Any] = sync.get("harvest") or {}
    kinds: Mapping[str, Mapping[str, Any]] = harvest.get("kinds") or {}
    skipped: Mapping[str, int] = sync.get("units_skipped_by_kind") or {}
    text = _Text()
    text.metric(
        "cc_collect_sync_records",
        "Records committed by the last run, by kind.",
        [(f'{{kind="{_label(k)}"}}', int(c.get("records") or 0)) for k, c in kinds.items()],
    )
    text.metric(
        "cc_collect_sync_units",
        "Units (live x kind) of the last run, by kind and state (skipped: final before).",
        [
            (f'{{kind="{_label(k)}",state="{state}"}}', int(value))
            for k, c in kinds.items()
            for state, value in (
                # (the report's units are every unit that ended, failed ones included)
                ("done", (c.get("units") or 0) - (c.get("failed") or 0)),
                ("failed", c.get("failed") or 0),
                ("skipped", skipped.get(k) or 0),
            )
        ],
    )
    text.metric(
        "cc_collect_sync_lives",
        "Lives listed by the last run.",
        [("", int(harvest.get("lives") or 0))],
    )
    text.pace("cc_collect_sync", harvest)
    text.metric(
        "cc_collect_sync_transactions",
        "Transactions the last run committed.",
        [("", int(sync.get("transactions") or 0))],
    )
    text.metric(
        "cc_collect_sync_complete",
        "1 when the last run stored every unit of its window.",
        [("", 1 if report is not None and sync.get("complete") else 0)],
    )
    watermark = sync.get("watermark_after") or sync.get("watermark_before")
    if watermark:
        text.metric(
            "cc_collect_sync_watermark_timestamp_seconds",
            "Where the account's next incremental sync starts at the latest (Unix time).",
            [("", datetime.fromisoformat(watermark).timestamp())],
        )
    return text.run_end(
        "cc_collect_sync",
        exit_code=exit_code,
        duration=duration,
        now=now,
        last_success=last_success,
    )


def previous_success(path: Path, command: str = "harvest") -> float | None:
    """The last success recorded in an earlier file of ``command`` at ``path``, if any."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    name = f"cc_collect_{command}_last_success_timestamp_seconds"
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    if found is None:
        return None
    try:
        return float(found.group(1))
    except ValueError:
        return None


def write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file in the same directory, then
    a rename); raises OSError when the directory is missing or not writable."""
    write_atomic(path, text.encode(), fsync=True)
