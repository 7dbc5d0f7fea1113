"""``cc-collect`` exactly as its console script runs it, plus its peak memory at exit.

``python -m benchmarks.cli_child ARGS...`` calls :func:`cc_collect_async.cli.main` (what the
installed ``cc-collect`` script calls) and, as the process exits, writes the process's
``VmHWM`` (peak resident set) to the file named by ``CC_BENCH_PEAK_FILE``.

Why not ``ru_maxrss`` from ``wait4``: Linux carries a process's ``maxrss`` across ``exec``, and
a child started with ``vfork`` (as ``subprocess`` does) starts from its parent's, so every
child of a 54 MB benchmark runner would report at least 54 MB. ``VmHWM`` belongs to the
child's own address space.
"""

from __future__ import annotations

import atexit
import os
import sys

from .peak import peak_rss_mb


def _report() -> None:
    target = os.environ.get("CC_BENCH_PEAK_FILE")
    if target:
        with open(target, "w", encoding="ascii") as file:
            file.write(f"{peak_rss_mb():.3f}")


if __name__ == "__main__":
    atexit.register(_report)
    from cc_collect_async.cli import main

    sys.exit(main(sys.argv[1:]))
