"""``--metrics-file PATH``: the harvest's figures in Prometheus text format, for cron.

node_exporter's textfile collector reads ``*.prom`` files from a directory; a nightly job
writes its figures there when it ends and the monitoring alerts when
``cc_collect_harvest_last_success_timestamp_seconds`` grows old. The file is written whole
under a temporary name and renamed into place, so the collector never reads half of it.
The last success is carried over from the previous file when this run did not succeed.
Written by hand (the format is a few lines of text), so the command line needs no
prometheus-client.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..harvest.filesystem import write_atomic

__all__ = ["add_option", "render", "write"]

_LAST_SUCCESS = "cc_collect_harvest_last_success_timestamp_seconds"


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


def render(
    manifest: Mapping[str, Any],
    *,
    exit_code: int,
    duration: float,
    now: float,
    last_success: float | None,
    this_run: Mapping[str, Any] | None = None,
) -> str:
    """The file's text. ``manifest`` is the output directory's (its totals cover every run
    into it); ``this_run`` the figures of this run alone (requests, retries, rate_limited)."""
    run = this_run or {}
    kinds: Mapping[str, Mapping[str, Any]] = manifest.get("kinds") or {}
    lines: list[str] = []

    def metric(name: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

    metric(
        "cc_collect_harvest_records",
        "Records in the output directory, by kind.",
        [(f'{{kind="{_label(k)}"}}', int(c.get("records") or 0)) for k, c in kinds.items()],
    )
    metric(
        "cc_collect_harvest_units",
        "Units (live x kind) in the output directory, by kind and state.",
        [
            (f'{{kind="{_label(k)}",state="{state}"}}', int(c.get(field) or 0))
            for k, c in kinds.items()
            for state, field in (("done", "units"), ("failed", "failed"))
        ],
    )
    metric(
        "cc_collect_harvest_lives",
        "Lives in the output directory.",
        [("", int(manifest.get("lives") or 0))],
    )
    for name, key, help_text in (
        ("cc_collect_harvest_requests", "requests", "HTTP requests sent by the last run."),
        ("cc_collect_harvest_retries", "retries", "Retried attempts in the last run."),
        (
            "cc_collect_harvest_rate_limited",
            "rate_limited",
            "Replies saying too fast in the last run.",
        ),
    ):
        metric(name, help_text, [("", int(run.get(key) or 0))])
    metric(
        "cc_collect_harvest_duration_seconds",
        "Wall time of the last run.",
        [("", round(duration, 3))],
    )
    metric(
        "cc_collect_harvest_complete",
        "1 when the output directory holds every unit.",
        [("", 1 if manifest.get("complete") else 0)],
    )
    metric("cc_collect_harvest_exit_code", "Exit code of the last run.", [("", exit_code)])
    metric(
        "cc_collect_harvest_last_run_timestamp_seconds",
        "When the last run ended (Unix time).",
        [("", round(now, 3))],
    )
    success = now if exit_code == 0 else last_success
    if success is not None:
        metric(
            _LAST_SUCCESS,
            "When a run last ended with every unit complete (Unix time).",
            [("", round(success, 3))],
        )
    return "\n".join(lines) + "\n"


def previous_success(path: Path) -> float | None:
    """The last success recorded in an earlier file at ``path``, if any."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    found = re.search(rf"^{_LAST_SUCCESS} (\S+)$", text, re.MULTILINE)
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
