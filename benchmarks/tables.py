"""What a scenario hands back: tables of figures, the targets it checks, and notes; printed
as aligned text for a terminal and as Markdown for ``benchmarks/README.md``."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

__all__ = ["Check", "ScenarioResult", "Table", "machine", "ratio"]


def ratio(value: float, reference: float) -> str:
    """``value / reference`` as ``0.93x``; ``-`` when there is no reference."""
    if not reference:
        return "-"
    return f"{value / reference:.2f}x"


@attrs.define
class Table:
    title: str
    columns: Sequence[str]
    rows: list[Sequence[Any]] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append(cells)

    def _cells(self) -> list[list[str]]:
        return [[_text(cell) for cell in row] for row in self.rows]

    def text(self) -> str:
        cells = self._cells()
        widths = [len(c) for c in self.columns]
        for row in cells:
            for index, cell in enumerate(row):
                widths[index] = max(widths[index], len(cell))

        def line(row: Sequence[str]) -> str:
            parts = [
                cell.ljust(width) if index == 0 else cell.rjust(width)
                for index, (cell, width) in enumerate(zip(row, widths, strict=True))
            ]
            return "  ".join(parts).rstrip()

        out = [self.title, line(list(self.columns)), line(["-" * w for w in widths])]
        out += [line(row) for row in cells]
        out += [f"  {note}" for note in self.notes]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"**{self.title}**", ""]
        out.append("| " + " | ".join(self.columns) + " |")
        out.append(
            "|" + "|".join(":--" if i == 0 else "--:" for i in range(len(self.columns))) + "|"
        )
        for row in self._cells():
            out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
        if self.notes:
            out.append("")
            out += [f"- {note}" for note in self.notes]
        return "\n".join(out)


def _text(cell: Any) -> str:
    if cell is None:
        return "-"
    if isinstance(cell, float):
        if cell != cell:  # NaN
            return "-"
        if abs(cell) >= 100:
            return f"{cell:,.0f}"
        if abs(cell) >= 10:
            return f"{cell:.1f}"
        return f"{cell:.2f}"
    if isinstance(cell, int):
        return f"{cell:,}"
    return str(cell)


@attrs.define
class Check:
    """One target of the issue: what was measured against what was required."""

    target: str
    measured: str
    passed: bool | None  # None: not judged (quick mode, or informative only)

    @property
    def verdict(self) -> str:
        return {True: "met", False: "NOT MET", None: "n/a"}[self.passed]


@attrs.define
class ScenarioResult:
    name: str
    title: str
    setup: str
    tables: list[Table] = attrs.field(factory=list)
    checks: list[Check] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)
    seconds: float = 0.0

    def check_table(self) -> Table | None:
        if not self.checks:
            return None
        table = Table("Targets", ("target", "measured", "verdict"))
        for check in self.checks:
            table.add(check.target, check.measured, check.verdict)
        return table

    def text(self) -> str:
        out = [f"== {self.name}: {self.title} ==", f"setup: {self.setup}", ""]
        for table in self.tables:
            out += [table.text(), ""]
        checks = self.check_table()
        if checks is not None:
            out += [checks.text(), ""]
        out += [f"note: {note}" for note in self.notes]
        out.append(f"({self.seconds:.0f} s)")
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"### {self.name}: {self.title}", "", f"Setup: {self.setup}", ""]
        for table in self.tables:
            out += [table.markdown(), ""]
        checks = self.check_table()
        if checks is not None:
            out += [checks.markdown(), ""]
        out += [f"- {note}" for note in self.notes]
        if self.notes:
            out.append("")
        out.append(f"_Scenario time: {self.seconds:.0f} s._")
        return "\n".join(out)


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    versions = {}
    for name in ("httpx", "httpcore", "aiohttp", "anyio", "orjson", "uvicorn", "uvloop"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            continue
    try:
        kernel = subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
    except OSError:
        kernel = platform.release()
    try:
        cpus = len(os.sched_getaffinity(0))  # what nproc says
    except AttributeError:
        cpus = os.cpu_count() or 0
    return {
        "cpus (nproc)": str(cpus),
        "cpu model": model,
        "python": sys.version.split()[0],
        "kernel": kernel,
        "load average at start": load,
        "packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }
