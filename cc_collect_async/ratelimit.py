"""anyio-native rate limiting: a token bucket, and one that finds the server's limit itself.

Both are cooperative: every request awaits :meth:`RateLimiter.acquire` before it is sent and
reports back how the server answered, so a "too fast" reply slows every other request too.
They use anyio's clock and sleep, so they work under asyncio and trio alike.
"""

from __future__ import annotations

import math
from collections import deque

import anyio
from anyio import CancelScope, get_current_task

__all__ = ["AdaptiveRateLimiter", "RateLimiter"]

# A change of rate smaller than this leaves the reserved slots where they are.
_REPLAN_CHANGE = 0.1
# How late a woken caller may be before the callers behind it are moved back: two slots, and
# never less than timer and scheduling slack (at thousands of requests a second a slot is
# shorter than the lateness of any wake-up).
_CATCH_UP = 2
_MIN_CATCH_UP = 0.02
# Lateness this small is rounding: moving the line for it would wake every sleeper.
_EARLY = 1e-6
# Seconds of successes the adaptive limiter counts to tell the rate that got through.
_THROUGHPUT_WINDOW = 0.25


class _Slot:
    """A caller waiting for the token it reserved; ``scope`` wakes it to re-time the slot."""

    __slots__ = ("due", "moves", "scope")

    def __init__(self, due: float) -> None:
        self.due = due
        self.moves = 0  # times re-timed: a float compare can miss a move smaller than an ulp
        self.scope: CancelScope | None = None

    def move(self, due: float) -> None:
        self.due = due
        self.moves += 1
        if self.scope is not None:
            self.scope.cancel()


class RateLimiter:
    """A token bucket of ``rate`` requests per second that holds at most ``burst`` tokens.

    Implemented as GCRA (a virtual schedule rather than a counter): each caller reserves the
    earliest slot the bucket allows and sleeps until then, so waiters are served in order and
    no lock or background task is needed. When the rate changes or a pause begins, the slots
    still ahead are re-timed: without that, callers that reserved at a low starting rate kept
    the traffic at that rate for seconds after it had been raised (``benchmarks/``).
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
        self._line: deque[_Slot] = deque()  # callers sleeping until their slot, in order
        # Task id -> when that task may send again (the adaptive limiter's per-request pause).
        self._task_pauses: dict[int, float] = {}
        self._planned_rate = self._rate  # the rate the slots in _line were timed with
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

    @property
    def last_wait(self) -> float:
        """When (anyio's clock) a caller last had to wait for the rate: it was binding."""
        return self._last_wait

    def set_rate(self, rate: float) -> None:
        """Change the rate; the slots already reserved are re-timed if it moved much."""
        self._rate = rate
        if abs(rate / self._planned_rate - 1.0) > _REPLAN_CHANGE:
            self._replan()

    def _replan(self) -> None:
        """Re-time the reserved slots for the current rate and pause, in the same order."""
        self._planned_rate = self._rate
        if not self._line:
            return
        interval = 1.0 / self._rate
        now = anyio.current_time()
        start = max(self._paused_until, min(self._line[0].due, now + interval))
        for index, slot in enumerate(self._line):
            due = start + index * interval
            if due != slot.due:
                slot.move(due)
        self._tat = start + len(self._line) * interval

    async def acquire(self) -> None:
        """Wait until one more request may be sent."""
        now = anyio.current_time()
        interval = 1.0 / self._rate
        bucket = self._tat - (self._burst - 1) * interval
        earliest = max(now, self._paused_until, bucket)
        if self._task_pauses:
            task = _task_id()
            if task is not None:
                earliest = max(earliest, self._task_pauses.pop(task, earliest))
        self._tat = max(self._tat, earliest) + interval
        if earliest <= now:
            return
        if bucket > now:  # the rate holds this caller back (not a pause)
            self._last_wait = now
        slot = _Slot(earliest)
        self._line.append(slot)
        try:
            while True:
                moves = slot.moves
                with CancelScope() as slot.scope:
                    await anyio.sleep(slot.due - now)
                now = anyio.current_time()
                # Re-timed or moved back while asleep (or while waking up along with others
                # after a stall): sleep on to the new slot, unless it has come.
                if slot.moves == moves or slot.due <= now:
                    break
        except BaseException:
            # Cancelled before its slot came (a caller that timed out or went away): the
            # slot is handed back, or every abandoned reservation would delay the callers
            # behind it, and timeouts in a web backend would snowball into an outage.
            self._give_back(slot)
            raise
        self._line.remove(slot)
        # Woken much later than planned (the event loop or the machine stalled): the callers
        # still waiting move back too, rather than all going at once on waking. A burst of
        # the whole stall would overrun the server's bucket, and one "too fast" costs everyone
        # its Retry-After. A little lateness is caught up, or timer slack alone would wear the
        # rate down. Lateness counts from the earliest slot: wake-ups come in any order.
        earliest = min(slot.due, self._line[0].due) if self._line else slot.due
        behind = now - earliest - max(_CATCH_UP * self._burst / self._rate, _MIN_CATCH_UP)
        if behind > _EARLY:  # not for rounding: a shift wakes every sleeper
            self._shift(behind)

    def _give_back(self, slot: _Slot) -> None:
        """Drop ``slot`` from the line; every slot behind it moves up one place."""
        index = self._line.index(slot)
        dues = [waiting.due for waiting in self._line]
        del self._line[index]
        for position in range(index, len(self._line)):
            self._line[position].move(dues[position])
        self._tat -= 1.0 / self._rate

    def _shift(self, seconds: float) -> None:
        for slot in self._line:
            slot.move(slot.due + seconds)
        self._tat += seconds

    def on_success(self) -> None:
        """The server accepted a request that went through this limiter."""

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        """The server said "too fast": nobody sends again before ``retry_after`` has passed."""
        self.rate_limited += 1
        if retry_after:
            self.pause(retry_after)

    def pause(self, seconds: float) -> None:
        """Nobody passes for ``seconds``; the reserved slots move behind the pause."""
        until = anyio.current_time() + seconds
        if until > self._paused_until:
            self._paused_until = until
            self._replan()


def _task_id() -> int | None:
    try:
        return get_current_task().id
    except RuntimeError:  # no event loop: nobody to pause
        return None


class AdaptiveRateLimiter(RateLimiter):
    """A token bucket whose rate follows the server: AIMD, like TCP congestion control.

    Each "too fast" reply cuts the rate by ``decrease`` (once per burst of rejections: the
    requests already in flight when the limit was hit say the same thing again). While the
    rate is what holds the traffic back, it grows: quickly (``fast_increase`` of itself per
    second) below 90% of the rate at which the server last objected, cautiously
    (``increase`` per second) above it, never past ``ceiling``; before the first objection
    it grows by ``slow_start`` of itself per second. A harvest started with no idea of the
    limit so converges on it, and hovers just under it, instead of hammering the server.
    The rate the server objected to is the rate that got through just before, when enough
    requests did: a rate the traffic never reached says nothing about the limit.

    A ``Retry-After`` is honoured by the request the server turned away. The other callers
    are slowed by the cut; they all pause for the ``Retry-After`` too only when the server
    keeps saying "too fast" after a cut (a new rejection within ``Retry-After``, or a second,
    of the previous cut): a window limit then stops everyone as long as it says, while a
    token bucket, whose ``Retry-After`` of at least a second (the header counts in whole
    seconds) overstates a wait of milliseconds, does not cost a second of silence per probe.
    Pausing everyone on every rejection kept a 100 requests/s harvest at 40% of that rate.
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
        slow_start: float = 2.0,
    ) -> None:
        if not 0 < floor <= ceiling:
            raise ValueError(f"need 0 < floor <= ceiling, not floor={floor} ceiling={ceiling}")
        super().__init__(min(max(initial, floor), ceiling), burst)
        self.ceiling = ceiling
        self.floor = floor
        self.decrease = decrease
        self.increase = increase
        self.fast_increase = fast_increase
        self.slow_start = slow_start
        self._last_change: float | None = None
        self._last_cut = -math.inf
        self._limit_seen: float | None = None
        self._successes: deque[float] = deque()  # when the latest requests succeeded

    def _throughput(self, now: float) -> float | None:
        """Successes per second over the last quarter second, when enough to tell: about
        a round trip, so it is what the server let through while it said "too fast"."""
        times = self._successes
        while times and now - times[0] > _THROUGHPUT_WINDOW:
            times.popleft()
        if len(times) < 10:
            return None
        return len(times) / _THROUGHPUT_WINDOW

    def on_success(self) -> None:
        now = anyio.current_time()
        self._successes.append(now)
        if len(self._successes) > 4096:  # bounded even at thousands of requests a second
            self._successes.popleft()
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
        if self._limit_seen is None:
            growth = self.slow_start
        elif self._rate < 0.9 * self._limit_seen:
            growth = self.fast_increase
        else:
            growth = self.increase
        self.set_rate(min(self.ceiling, self._rate * (1.0 + growth * elapsed)))

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        self.rate_limited += 1
        now = anyio.current_time()
        if retry_after:
            task = _task_id()
            if task is not None:
                pauses = self._task_pauses
                for stale in [t for t, until in pauses.items() if until <= now]:
                    del pauses[stale]
                pauses[task] = max(pauses.get(task, now), now + retry_after)
        since_cut = now - self._last_cut
        # One cut per round trip: the rejections of requests sent at the old rate are echoes.
        if since_cut < max(1.0 / self._rate, 0.25):
            return
        self._last_cut = now
        self._last_change = now
        through = self._throughput(now)
        self._limit_seen = min(self._rate, through) if through else self._rate
        self.set_rate(max(self.floor, self._limit_seen * self.decrease))
        if retry_after and since_cut < max(retry_after, 1.0):
            self.pause(retry_after)  # the cut was not enough: everyone waits
            # No climb for the time nobody could send.
            self._last_change = max(now, self._paused_until)
