"""What every scenario gets: the mode, a place to share runs, and a progress log."""

from __future__ import annotations

import sys
import time
from typing import Any

import attrs

__all__ = ["Context"]


@attrs.define
class Context:
    #: Small workloads for CI: the figures are printed, the targets are not judged.
    quick: bool = False
    #: Runs one scenario may reuse from another in the same invocation.
    cache: dict[str, Any] = attrs.field(factory=dict)
    started: float = attrs.field(factory=time.monotonic)

    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"  [{elapsed:6.1f} s] {message}", file=sys.stderr, flush=True)

    def judge(self, passed: bool) -> bool | None:
        """A target's verdict: only full runs are judged."""
        return None if self.quick else passed
