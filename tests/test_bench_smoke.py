"""The benchmarks still run: ``python -m benchmarks --quick naive_loops`` from end to end.

A smoke test only: it checks that the scenario ran and printed its table and targets, never
how fast anything was (timing belongs in ``benchmarks/``, not in the test suite).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_a_quick_benchmark_scenario_runs_to_the_end() -> None:
    pytest.importorskip("uvicorn", reason="the simulator server needs the sim extra")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "naive_loops"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "The same harvest three ways" in done.stdout
    assert "harvest >= 10x faster than the sequential loop" in done.stdout
    assert "Summary of targets" in done.stdout
