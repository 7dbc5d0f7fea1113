"""``python -m benchmarks [--quick] [--markdown FILE] [scenario ...]``

Runs the scenarios (all by default, in the order below), prints each one's tables and
targets, and ends with a summary of every target. ``--quick`` shrinks every workload so the
whole run takes well under a minute (for CI); its figures are printed but its targets are
not judged. ``--markdown FILE`` also writes the results as Markdown (the figures section of
``benchmarks/README.md`` is that file).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from types import ModuleType

from . import (
    client_cpu_overhead,
    harvest_memory,
    harvest_scaling,
    latency_bound_harvest,
    rate_bound_harvest,
    rate_governor,
    speedup_over_naive_loops,
    sync_database,
    sync_memory,
)
from .context import Context
from .tables import ScenarioResult, Table, machine

SCENARIOS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (
        rate_bound_harvest,
        rate_governor,
        speedup_over_naive_loops,
        latency_bound_harvest,
        client_cpu_overhead,
        harvest_memory,
        harvest_scaling,
        sync_database,
        sync_memory,
    )
}


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of cc_collect_async against its simulator over loopback TCP.",
    )
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=", ".join(SCENARIOS))
    parser.add_argument("--quick", action="store_true", help="small workloads (CI); no verdicts")
    parser.add_argument("--markdown", metavar="FILE", help="also write the results as Markdown")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser.parse_args(argv)


def summary(results: Sequence[ScenarioResult]) -> Table:
    table = Table("Summary of targets", ("scenario", "target", "measured", "verdict"))
    for result in results:
        for check in result.checks:
            table.add(result.name, check.target, check.measured, check.verdict)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.list:
        for name, module in SCENARIOS.items():
            print(f"{name:14s} {module.TITLE}")
        return 0
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
        return 2
    chosen = args.scenarios or list(SCENARIOS)
    ctx = Context(quick=args.quick)
    about = machine()
    command = "python -m benchmarks" + (" --quick" if args.quick else "")
    if args.scenarios:
        command += " " + " ".join(args.scenarios)
    print(f"cc_collect_async benchmarks ({'quick' if args.quick else 'full'} run): {command}")
    for key, value in about.items():
        print(f"  {key}: {value}")
    print(flush=True)
    started = time.monotonic()
    results = []
    for name in chosen:
        began = time.monotonic()
        result: ScenarioResult = SCENARIOS[name].run(ctx)
        result.seconds = time.monotonic() - began
        results.append(result)
        print(result.text(), "\n", flush=True)
    total = time.monotonic() - started
    table = summary(results)
    print(table.text())
    print(f"\ntotal time: {total:.0f} s")
    if args.markdown:
        lines = [
            f"Command: `{command}`; total time {total:.0f} s.",
            "",
            "Machine: " + "; ".join(f"{k}: {v}" for k, v in about.items()) + ".",
            "",
            table.markdown(),
            "",
        ]
        for result in results:
            lines += [result.markdown(), ""]
        with open(args.markdown, "w", encoding="utf-8") as file:
            file.write("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
