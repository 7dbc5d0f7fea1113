"""``cc-collect demo``: the whole tool in a few seconds, with proof it lost nothing.

Starts the simulator on a free loopback port with a little latency and a few injected faults
(so retries show), harvests its sample window with every kind through the very same code
path as ``cc-collect harvest``, then reads the files back and compares every record's
natural key with the simulator's ground truth: nothing missing, nothing twice.
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import timedelta
from typing import Any, TextIO

import attrs

from ..harvest import ALL_KINDS, Window
from ..harvest.filesystem import OutputError
from ..harvest.manifest import DifferentHarvestError, NotAHarvestDirectoryError
from ..harvest.outdir import read_records, remove_harvest
from ..harvest.request import HarvestRequest
from .args import Credentials, DemoOptions, HarvestOptions
from .commands import run_harvest
from .demo_database import show_query, sync_demo
from .exits import ExitCode

__all__ = ["Check", "run_demo", "verify"]

#: Faults that cost a retry but not seconds ("slow" would hold a request for seconds).
#: Typed loosely: SimConfig's ``converter=tuple`` makes mypy reject any precise type.
_DEMO_FAULTS: Any = ("http500", "http502", "http503", "drop", "truncate", "process_fail")


@attrs.frozen
class Check:
    """One kind's files against the truth."""

    kind: str
    expected: int
    found: int
    missing: int
    duplicated: int
    unexpected: int

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicated or self.unexpected)


def verify(directory: Any, truth: Any, kinds: tuple[str, ...]) -> list[Check]:
    """Compare the harvest in ``directory`` with a simulator :class:`~cc_collect_async.sim.Truth`.

    Record kinds are compared by natural key; ``summary`` (one record per live) and the lives
    file by live id.
    """
    from ..sim import record_key

    live_ids = {live.liveid for live in truth.lives}
    checks = []

    def by_live(kind: str) -> Check:
        found = Counter(str(row["liveid"]) for row in read_records(directory, kind))
        return Check(
            kind,
            expected=len(live_ids),
            found=sum(found.values()),
            missing=len(live_ids - set(found)),
            duplicated=sum(n - 1 for n in found.values() if n > 1),
            unexpected=len(set(found) - live_ids),
        )

    checks.append(by_live("lives"))
    for kind in kinds:
        if kind == "summary":
            checks.append(by_live(kind))
            continue
        keys = Counter(
            record_key(kind, str(row["liveid"]), row) for row in read_records(directory, kind)
        )
        expected = truth.keys[kind]
        checks.append(
            Check(
                kind,
                expected=len(expected),
                found=sum(keys.values()),
                missing=len(expected - set(keys)),
                duplicated=sum(n - 1 for n in keys.values() if n > 1),
                unexpected=len(set(keys) - expected),
            )
        )
    return checks


def _check_table(checks: list[Check]) -> str:
    rows = [
        f"  {'kind':<11} {'expected':>9} {'found':>9} {'missing':>8} {'twice':>6} "
        f"{'extra':>6}  result"
    ]
    for c in checks:
        rows.append(
            f"  {c.kind:<11} {c.expected:>9,} {c.found:>9,} {c.missing:>8,} "
            f"{c.duplicated:>6,} {c.unexpected:>6,}  {'ok' if c.ok else 'MISMATCH'}"
        )
    return "\n".join(rows)


def run_demo(
    options: DemoOptions, *, stderr: TextIO | None = None, stdout: TextIO | None = None
) -> ExitCode:
    # Looked up per call, not bound at import: tests and embedders swap sys.stderr.
    stderr, stdout = stderr or sys.stderr, stdout or sys.stdout
    from ..sim import DEMO_API_KEY, DEMO_USERID, DatasetSpec, SimConfig, Simulator, serve

    spec = DatasetSpec()
    config = SimConfig(
        latency=0.005, jitter=0.015, fault_rate=0.05, fault_kinds=_DEMO_FAULTS, fault_seed=1
    )
    simulator = Simulator(spec, config)
    window = Window(spec.window_start, spec.window_start + timedelta(days=spec.window_days))
    request = HarvestRequest(kinds=ALL_KINDS, window=window, format=options.format)
    quiet = options.display.quiet
    try:
        remove_harvest(options.out, request)  # each demo starts from nothing
    except (DifferentHarvestError, NotAHarvestDirectoryError) as exc:
        print(f"cc-collect: error: {exc}", file=stderr)
        return ExitCode.USAGE
    except OutputError as exc:
        print(f"cc-collect: error: {exc}", file=stderr)
        return ExitCode.OUTPUT

    with serve(simulator) as url:
        if not quiet:
            print(
                f"cc-collect: demo: simulator on {url} ({spec.lives} lives in {spec.rooms} "
                f"rooms; 5-20 ms latency; {config.fault_rate:.0%} of requests meet a fault)",
                file=stderr,
                flush=True,
            )
        code = run_harvest(
            HarvestOptions(
                credentials=Credentials(DEMO_USERID, DEMO_API_KEY, url),
                request=request,
                out=options.out,
                display=options.display,
                # The simulator has no rate limit: start fast rather than probe upwards.
                initial_rate=200.0,
            ),
            stderr=stderr,
            stdout=stdout,
        )
        faults = simulator.stats.total_faults
        credentials = Credentials(DEMO_USERID, DEMO_API_KEY, url)
        synced = sync_demo(url, credentials, window, options.out, options.display, stderr, stdout)
    if code not in (ExitCode.OK, ExitCode.UNITS_FAILED):
        return code
    if synced not in (None, ExitCode.OK):
        assert synced is not None
        return synced
    if synced is not None and not quiet:
        show_query(options.out, stderr)
    checks = verify(options.out, simulator.truth(window.since, window.until), request.kinds)
    good = all(c.ok for c in checks)
    if not quiet or not good:
        print(
            f"cc-collect: demo: the simulator injected {faults} fault(s); "
            "files checked against its ground truth:",
            file=stderr,
        )
        print(_check_table(checks), file=stderr)
    if not good:
        print("cc-collect: demo: MISMATCH: records missing or repeated", file=stderr)
        return ExitCode.UNITS_FAILED
    if not quiet:
        print(
            f"cc-collect: demo: verified: every record exactly once; the files are in "
            f"{options.out}/ (see manifest.json)",
            file=stderr,
        )
    return code
