"""The peak resident set of this process, in MB."""

from __future__ import annotations

import resource
from pathlib import Path

__all__ = ["peak_rss_mb"]


def peak_rss_mb() -> float:
    """``VmHWM`` from ``/proc/self/status``: the high-water mark of this process's own
    address space (``ru_maxrss`` would include the parent's, see ``cli_child``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
