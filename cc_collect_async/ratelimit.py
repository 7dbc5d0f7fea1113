"""anyio-native rate limiting: a token bucket, and one that finds the server's limit itself.

Both are cooperative: every request awaits :meth:`RateLimiter.acquire` before it is sent and
reports back how the server answered, so a "too fast" reply slows every other request too.
They use anyio's clock and sleep, so they work under asyncio and trio alike.
"""

from __future__ import annotations

import math

import anyio

__all__ = ["AdaptiveRateLimiter", "RateLimiter"]


class RateLimiter:
    """A token bucket of ``rate`` requests per second that holds at most ``burst`` tokens.

    Implemented as GCRA (a virtual schedule rather than a counter): each caller reserves the
    earliest slot the bucket allows and sleeps until then, so waiters are served in order and
    no lock or background task is needed.
    """

    def __init__(self, rate: float, burst: int = 1) -> None:
        if rate <= 0 or not math.isfinite(rate):
            raise ValueError(f"rate must be a positive number of requests per second, not {rate}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        self._rate = float(rate)
        self._burst = burst
        self._tat = -math.inf  # theoretical arrival time of the next request
        self._paused_until = -math.inf
        self._last_wait = -math.inf  # when a caller last had to wait: the rate was binding
        #: How many times the server said "too fast" while this limiter was in charge.
        self.rate_limited = 0

    @property
    def rate(self) -> float:
        """Current requests per second."""
        return self._rate

    @property
    def burst(self) -> int:
        return self._burst

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rate={self._rate:.3g}, burst={self._burst})"

    def _set_rate(self, rate: float) -> None:
        self._rate = rate

    async def acquire(self) -> None:
        """Wait until one more request may be sent."""
        now = anyio.current_time()
        interval = 1.0 / self._rate
        earliest = max(now, self._paused_until, self._tat - (self._burst - 1) * interval)
        self._tat = max(self._tat, earliest) + interval
        if earliest > now:
            self._last_wait = now
            await anyio.sleep(earliest - now)

    def on_success(self) -> None:
        """The server accepted a request that went through this limiter."""

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        """The server said "too fast": nobody sends again before ``retry_after`` has passed."""
        self.rate_limited += 1
        if retry_after:
            self._paused_until = max(self._paused_until, anyio.current_time() + retry_after)


class AdaptiveRateLimiter(RateLimiter):
    """A token bucket whose rate follows the server: AIMD, like TCP congestion control.

    Each "too fast" reply cuts the rate by ``decrease`` (once per burst of rejections: the
    requests already in flight when the limit was hit say the same thing again). While the
    rate is what holds the traffic back, it grows: quickly (``fast_increase`` of itself per
    second) below 90% of the rate at which the server last objected, cautiously
    (``increase`` per second) above it, never past ``ceiling``. A harvest started with no idea
    of the limit so converges on it, and hovers just under it, instead of hammering the
    server.
    """

    def __init__(
        self,
        *,
        initial: float = 10.0,
        ceiling: float = 1000.0,
        floor: float = 0.5,
        burst: int = 1,
        decrease: float = 0.7,
        increase: float = 0.05,
        fast_increase: float = 0.5,
    ) -> None:
        if not 0 < floor <= ceiling:
            raise ValueError(f"need 0 < floor <= ceiling, not floor={floor} ceiling={ceiling}")
        super().__init__(min(max(initial, floor), ceiling), burst)
        self.ceiling = ceiling
        self.floor = floor
        self.decrease = decrease
        self.increase = increase
        self.fast_increase = fast_increase
        self._last_change: float | None = None
        self._last_cut = -math.inf
        self._limit_seen: float | None = None

    def on_success(self) -> None:
        now = anyio.current_time()
        if self._last_change is None:
            self._last_change = now
            return
        elapsed = min(now - self._last_change, 1.0)
        if elapsed < 0.05:
            return
        self._last_change = now
        if now - self._last_wait > 1.0:
            # Nobody waited for a token lately: the rate is not what limits the traffic, so
            # raising it would only let it drift far above anything the server has seen.
            return
        below_limit = self._limit_seen is None or self._rate < 0.9 * self._limit_seen
        growth = self.fast_increase if below_limit else self.increase
        self._set_rate(min(self.ceiling, self._rate * (1.0 + growth * elapsed)))

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        super().on_rate_limited(retry_after)
        now = anyio.current_time()
        # One cut per round trip: the rejections of requests sent at the old rate are echoes.
        if now - self._last_cut < max(1.0 / self._rate, 0.25):
            return
        self._last_cut = now
        self._last_change = now
        self._limit_seen = self._rate
        self._set_rate(max(self.floor, self._rate * self.decrease))
