"""What a person (or cron's mail) sees while and after a harvest runs.

On a terminal a small block is redrawn a few times a second from ``Harvester.progress()``;
anywhere else (a pipe, a log file, cron) a plain line every few seconds, so logs stay short
and greppable. All of it goes to stderr: stdout is for machine output (``--json``).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TextIO

import anyio

from ..harvest import Harvester, Progress

__all__ = [
    "LogProgress",
    "NoProgress",
    "ProgressView",
    "TerminalProgress",
    "failure_lines",
    "follow",
    "format_duration",
    "progress_view",
    "server_wait_phrase",
    "summary_table",
]


def format_duration(seconds: float) -> str:
    """``0:07``, ``12:03``, ``1:02:03``."""
    whole = max(round(seconds), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressView(Protocol):
    def update(self, progress: Progress) -> None: ...

    def finish(self, progress: Progress) -> None: ...


class NoProgress:
    """``--quiet``: nothing while running."""

    def update(self, progress: Progress) -> None:
        pass

    def finish(self, progress: Progress) -> None:
        pass


def _units_phrase(progress: Progress) -> str:
    total = progress.units_total + progress.units_skipped
    done = progress.units_done + progress.units_skipped
    text = f"{done:,}/{total:,}{'' if progress.planning_done else '+'} units"
    if progress.units_failed:
        text += f" ({progress.units_failed:,} failed)"
    return text


def server_wait_phrase(progress: Progress) -> str | None:
    """``server rate limit: resuming in 42 s`` (``... on chat: ...`` for one endpoint), or
    None while nothing waits for the server's quota."""
    if not progress.server_waits:
        return None
    parts = []
    for endpoint, seconds in sorted(progress.server_waits.items()):
        where = f" on {endpoint}" if endpoint else ""
        parts.append(f"server rate limit{where}: resuming in {math.ceil(max(seconds, 0))} s")
    return "; ".join(parts)


def _eta_phrase(progress: Progress) -> str:
    eta = progress.eta
    return f"ETA {format_duration(eta)}" if eta is not None else "ETA --:--"


class LogProgress:
    """Not a terminal: one plain line every ``every`` seconds, and one at the end."""

    def __init__(self, stream: TextIO, *, every: float = 10.0) -> None:
        self.stream = stream
        self.every = every
        self._last = time.monotonic()
        self._waiting: set[str] = set()

    def _line(self, progress: Progress) -> str:
        line = (
            f"cc-collect: {progress.lives:,} lives, {_units_phrase(progress)}, "
            f"{progress.records:,} records, {progress.requests:,} requests "
            f"({progress.request_rate:.1f}/s), {progress.retries:,} retries, "
            f"{progress.rate_limited:,} rate-limited, "
            f"{format_duration(progress.elapsed)} elapsed, {_eta_phrase(progress)}"
        )
        wait = server_wait_phrase(progress)
        return f"{line}; {wait}" if wait else line

    def update(self, progress: Progress) -> None:
        now = time.monotonic()
        # A wait for the server's quota is news at once, not ten seconds later.
        started_waiting = not set(progress.server_waits) <= self._waiting
        self._waiting = set(progress.server_waits)
        if now - self._last >= self.every or started_waiting:
            self._last = now
            print(self._line(progress), file=self.stream, flush=True)

    def finish(self, progress: Progress) -> None:
        pass  # the summary follows; a last progress line would only repeat it


class TerminalProgress:
    """A block of lines redrawn in place: totals, pace, and one line per kind."""

    def __init__(self, stream: TextIO, kinds: Sequence[str]) -> None:
        self.stream = stream
        self.kinds = tuple(kinds)
        self._drawn = 0

    def _lines(self, progress: Progress) -> list[str]:
        lives = f"{progress.lives:,}{'' if progress.planning_done else '+'} lives"
        lines = [
            f"harvest  {lives}  {_units_phrase(progress)}  "
            f"{progress.records:,} records  {format_duration(progress.elapsed)}  "
            f"{_eta_phrase(progress)}",
            f"         {progress.requests:,} requests  {progress.request_rate:.1f}/s  "
            f"{progress.retries:,} retries  {progress.rate_limited:,} rate-limited",
        ]
        wait = server_wait_phrase(progress)
        if wait:  # on the pace line: the block keeps its height, so redrawing stays exact
            lines[1] += f"  {wait}"
        skipped = progress.units_skipped_by_kind
        for kind in self.kinds:
            done = progress.units_done_by_kind.get(kind, 0) + skipped.get(kind, 0)
            total = max(progress.lives, done)
            records = progress.records_by_kind.get(kind, 0)
            lines.append(f"  {kind:<11} {done:>6,}/{total:<6,} {records:>12,} records")
        return lines

    def _draw(self, lines: list[str]) -> None:
        width = max(shutil.get_terminal_size((100, 20)).columns - 1, 20)
        # Back to the first line of the previous drawing; clear and rewrite each line, cut
        # to the terminal's width so no line wraps and throws the count off.
        out = f"\x1b[{self._drawn}F" if self._drawn else ""
        out += "".join(f"\x1b[2K{line[:width]}\n" for line in lines)
        self.stream.write(out)
        self.stream.flush()
        self._drawn = len(lines)

    def update(self, progress: Progress) -> None:
        self._draw(self._lines(progress))

    def finish(self, progress: Progress) -> None:
        self._draw(self._lines(progress))


def progress_view(
    stream: TextIO,
    *,
    quiet: bool,
    verbose: int,
    kinds: Sequence[str],
) -> ProgressView:
    """Terminal block, log lines, or nothing. Verbose logging interleaves its own lines, so
    it gets the log-line form even on a terminal."""
    if quiet:
        return NoProgress()
    if stream.isatty() and not verbose:
        return TerminalProgress(stream, kinds)
    return LogProgress(stream)


async def follow(harvester: Harvester, view: ProgressView, *, interval: float = 0.25) -> None:
    """Poll the harvester and update ``view`` until cancelled."""
    while True:
        await anyio.sleep(interval)
        view.update(harvester.progress())


def summary_table(manifest: Mapping[str, Any]) -> str:
    """Per kind: units, failed, pages, records, file; then totals (the whole harvest, earlier
    runs included)."""
    kinds: Mapping[str, Mapping[str, Any]] = manifest.get("kinds") or {}
    header = f"  {'kind':<11} {'units':>7} {'failed':>7} {'pages':>7} {'records':>10}  file"
    rows = [header]
    totals = {"units": 0, "failed": 0, "pages": 0, "records": 0}
    for kind, counts in kinds.items():
        for key in totals:
            totals[key] += int(counts.get(key) or 0)
        rows.append(
            f"  {kind:<11} {int(counts.get('units') or 0):>7,} "
            f"{int(counts.get('failed') or 0):>7,} {int(counts.get('pages') or 0):>7,} "
            f"{int(counts.get('records') or 0):>10,}  {counts.get('file') or ''}"
        )
    rows.append(
        f"  {'total':<11} {totals['units']:>7,} {totals['failed']:>7,} "
        f"{totals['pages']:>7,} {totals['records']:>10,}"
    )
    runs = manifest.get("runs") or []
    this_run = runs[-1] if runs else {}
    rows.append(
        f"{int(manifest.get('lives') or 0):,} lives; this run: "
        f"{int(this_run.get('requests') or 0):,} requests, "
        f"{int(this_run.get('retries') or 0):,} retries, "
        f"{int(this_run.get('rate_limited') or 0):,} rate-limited"
        + (
            f", {int(this_run.get('units_skipped') or 0):,} units done by earlier runs"
            if this_run.get("units_skipped")
            else ""
        )
    )
    return "\n".join(rows)


def failed_phrase(failures: Sequence[Mapping[str, Any]]) -> str:
    """What failed, for the closing line: "3 units failed", "listing lives failed", or both."""
    units = sum(1 for failure in failures if failure.get("kind") != "lives")
    parts = ["listing lives"] if len(failures) > units else []
    if units:
        parts.append(f"{units:,} unit{'' if units == 1 else 's'}")
    return f"{' and '.join(parts)} failed"


def failure_lines(
    manifest: Mapping[str, Any], *, see: str = "manifest.json", limit: int = 20
) -> list[str]:
    """One line per failed unit (at most ``limit``, then how many more, and where to
    ``see`` the whole list)."""
    failures: Sequence[Mapping[str, Any]] = manifest.get("failures") or []
    lines = []
    for failure in failures[:limit]:
        if failure.get("kind") == "lives":
            room = failure.get("roomid")
            where = f"listing lives of room {room}" if room else "listing lives"
        else:
            where = (
                f"{failure.get('kind')} of live {failure.get('liveid')} "
                f"(room {failure.get('roomid')})"
            )
        lines.append(f"cc-collect: failed: {where}: {failure.get('reason')}")
    if len(failures) > limit:
        lines.append(f"cc-collect: ... and {len(failures) - limit:,} more (see {see})")
    return lines
