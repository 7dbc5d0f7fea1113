"""When and how long to wait before trying a failed call again."""

from __future__ import annotations

import random

import attrs

__all__ = ["RetryPolicy"]


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by both attempts and total time.

    Only errors whose ``retryable`` flag is set are retried; a server's ``Retry-After`` is
    honoured up to ``max_retry_after`` because a well-behaved client waits as long as it is
    told, but a broken header must not park a nightly job for an hour.

    ``max_elapsed`` also bounds each attempt: one is given at most what the attempts and
    backoffs before it left of it (and never more than the client's ``timeout``), so a
    stalled reply cannot hold a call past it. ``max_retry_after`` also bounds how long the
    rate limiter pauses on this call's refusal.

    ``wait_out_quotas``: True, a refusal while the server's quota is spent (the governor
    waits it out) costs neither an attempt nor time, and waiting for the rate limiter or a
    connection slot is not counted, so a harvest outlasts a per-minute quota. False (a call
    someone waits on, ``interactive()``): every wait counts, and a call the limiter would
    hold past ``max_elapsed`` raises ``RateLimitedError`` without sending.
    """

    max_attempts: int = attrs.field(default=6, validator=attrs.validators.ge(1))
    max_elapsed: float = 120.0
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    #: Fraction of each backoff that is randomised, so many clients do not retry in step.
    jitter: float = 0.25
    max_retry_after: float = 60.0
    wait_out_quotas: bool = True

    def delay(
        self, attempt: int, retry_after: float | None = None, *, rand: random.Random | None = None
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        draw: float = (rand or random).random()
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        base = min(self.initial_backoff * 2.0 ** (attempt - 1), self.max_backoff)
        return base * (1.0 - self.jitter * draw)

    @classmethod
    def interactive(cls) -> RetryPolicy:
        """Few attempts, a few seconds in all: for a web request someone is waiting on.

        The defaults suit a nightly harvest, where waiting two minutes (and a ``Retry-After``
        of up to a minute) beats losing a unit; a page view cannot wait that long, and a
        cache's stale value is a better answer than a spinner. Three attempts, 0.2 s
        doubling, at most 1 s of ``Retry-After``, 4 s in all.
        """
        return cls(
            max_attempts=3,
            max_elapsed=4.0,
            initial_backoff=0.2,
            max_backoff=1.0,
            max_retry_after=1.0,
            wait_out_quotas=False,
        )

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that makes exactly one attempt."""
        return cls(max_attempts=1)
