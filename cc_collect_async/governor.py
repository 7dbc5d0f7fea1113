"""The rate governor: how fast, and how many at once, requests go to a server that is not ours.

A real server pauses now and then (a cold cache, a garbage collection) and then admits its
backlog at once, so even a client that sends at exactly the server's rate meets a few "too
fast" replies no pacing can avoid. What a client controls is how deep that backlog is and
what a rejection costs. The models are TCP congestion control and the AWS SDKs' adaptive
retry mode:

- **A rejection costs the rejected request, not the harvest.** The rejected request waits
  its own ``Retry-After`` and is tried again (the request path does that); the others go on,
  with the rate cut multiplicatively for a moment and climbing back. One cut per round trip:
  rejections of requests sent before the cut are echoes of the old rate.
- **Exhaustion is told from a bunch.** A ``Retry-After`` of several seconds (a per-minute
  quota), or rejections that persist after a cut (as many refusals as successes among the
  requests sent since), mean the quota is spent: then the whole scope waits, and
  :meth:`Governor.waits` says until when, for a progress display. A request turned away by
  an exhausted scope is not counted as a failed attempt: it merely waited.
- **A refusal that costs a long wait is not risked again.** After a refusal that came with
  a long ``Retry-After``, the limit seen is 0.8 of the pace refused and the pace stays
  under 0.9 of that, probing no further: a server that answers every "too fast" with a
  minute made each probe, and each pause's burst at the old pace, cost the account a minute.
- **A told rate is a ceiling, not a promise.** Below it the governor backs off and recovers
  as it does when it finds the limit itself.
- **Requests in flight are capped** at about rate x the observed round trip (with
  headroom, never above ``max_in_flight``), recomputed as the round trip changes: requests
  beyond that only deepen the backlog a paused server admits at once.
- **Per-interface limits.** Each endpoint has its own pace beside the account's. Rejections
  from one endpoint while the others are served slow only that endpoint; once it has a
  limit of its own, each later refusal there is its own. A pace grows with time, but by
  at most a tenth of a second's growth per success: an endpoint allowed a request a second
  (the vendor's sibling API allows 100 calls a minute) climbs a step per reply, not x3.
- **Fast start.** Not told a rate, the first round trip measured opens a window of a
  quarter of ``max_in_flight`` (TCP's initial window), and the rate doubles every round
  trip (one more request per round trip for each success, as TCP's slow start) until the
  first "too fast" or until the concurrency cap, not the rate, holds the traffic back.

Everything runs on anyio's clock and primitives, so under asyncio and trio alike.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence

import anyio
import attrs

from .errors import CollectError, RateLimitedError
from .ratelimit import RateLimiter

__all__ = ["Governor", "Permit", "RequestGate", "ScopeWait"]

# A cut keeps this share of the rate the server let through when it objected (TCP halves,
# AWS's adaptive mode keeps 0.7: the server here is paced, not congested, so less is lost).
_DECREASE = 0.8
# Growth per second while far below the limit (recovery), near it (a share of the limit)
# and while probing above it.
_RECOVER = 2.0
_PLATEAU = 0.02
_PROBE = 0.05
# Below this share of the limit the climb is a recovery, above it a probe.
_KNEE = 0.9
# A limit seen at this share of the ceiling or more confirms the ceiling (a bunch, not a
# lower limit): recovery then goes all the way back to the ceiling.
_CONFIRMS_CEILING = 0.9
# Seconds of successes counted to tell the rate the server let through.
_THROUGHPUT_WINDOW = 0.5
_LIMIT_WINDOW = 1.0
# ... or, for a lane too slow to get _THROUGHPUT_SAMPLES successes a second, the time its
# pace takes for one more than that, up to this: at an endpoint's limit of a request a
# second, one second told nothing, and each refusal lowered the limit seen by a few percent.
_SLOW_WINDOW = 10.0
_LOWER_AT_MOST = 0.9
_THROUGHPUT_SAMPLES = 3
# Smoothing of the round trip estimate (TCP's SRTT gain).
_RTT_GAIN = 0.125
# Slow start's first window: this share of max_in_flight per round trip. Against an unknown
# limit, what slow start overshoots by is bounded by max_in_flight whatever the start; a
# quarter saves two round trips of the climb and adds a few refusals where a limit is near.
_INITIAL_WINDOW = 0.25
# After a pause without Retry-After, the next pause doubles, up to this.
_MAX_BACKOFF = 30.0
# Seconds of growth one success earns at most. The growth rates above are per second, for
# the tens or hundreds of replies a second an account gets; an endpoint limited to a request
# a second hears once a second, and a second's growth (up to x3) per success overshot its
# limit at every reply. Below 1 / _CREDIT replies a second, growth is per success instead.
_CREDIT = 0.1
# The rate is "binding" (worth raising) when a request waited for it this recently.
_BINDING = 1.0
# How long each endpoint's outcomes are kept, and how many refusals, and what share of its
# replies, make a rejection that endpoint's own (when no other endpoint is refused).
_OUTCOME_HORIZON = 2.0
# Refusals in a row, each of a request sent after the cut the one before caused, that mean
# the quota is spent rather than the pace a little high.
_PERSISTING = 3
_ENDPOINT_REFUSALS = 3
_ENDPOINT_SHARE = 0.2
# ... while the others, together, are refused at most this fraction as often.
_OTHERS_SHARE = 0.25


@attrs.frozen
class ScopeWait:
    """A scope waiting for the server's limit: the account (``endpoint`` None) or one
    endpoint, until ``until`` on anyio's clock."""

    endpoint: str | None
    until: float


class _Lane:
    """The pace of one scope: the account, or one endpoint."""

    def __init__(self, name: str | None, *, rate: float | None, ceiling: float, burst: int):
        self.name = name
        self.told = rate is not None
        self.ceiling = rate if rate is not None else ceiling
        self.limiter = RateLimiter(self.ceiling, burst)
        self.limit_seen: float | None = None
        self.last_change: float | None = None
        self.cut_at = -math.inf
        #: Refusals of requests sent after the last cut, with no success in between.
        self.refused_in_row = 0
        #: The round trip after slow start ended, while the server refused its echoes.
        self.saturated: tuple[float, float] | None = None
        self.paused_until = -math.inf
        self.backoff = 1.0
        #: When the current run of pauses began (None: not exhausted).
        self.exhausted_since: float | None = None
        #: A refusal here came with a long Retry-After: each costs everyone that wait, so
        #: the pace stays under the limit seen instead of probing above it.
        self.costly = False
        self.last_success = -math.inf
        self.successes: deque[float] = deque()
        #: (when, refused) of the latest replies: who is being turned away, and how often.
        self.outcomes: deque[tuple[float, bool]] = deque()

    def record(self, now: float, refused: bool) -> None:
        outcomes = self.outcomes
        outcomes.append((now, refused))
        while outcomes and now - outcomes[0][0] > _OUTCOME_HORIZON:
            outcomes.popleft()

    def asked(self, now: float, window: float) -> float | None:
        """Replies (served or refused) per second over the last ``window`` seconds."""
        count = 0
        first = now
        for when, _refused in reversed(self.outcomes):
            if now - when > window:
                break
            count += 1
            first = when
        if count < _THROUGHPUT_SAMPLES or now <= first:
            return None
        return (count - 1) / (now - first)

    def recent(self, now: float, window: float) -> tuple[int, int]:
        """Replies served and refused over the last ``window`` seconds."""
        served = refused = 0
        for when, was_refused in reversed(self.outcomes):
            if now - when > window:
                break
            if was_refused:
                refused += 1
            else:
                served += 1
        return served, refused

    @property
    def rate(self) -> float:
        return self.limiter.rate

    def set_rate(self, rate: float, floor: float) -> None:
        self.limiter.set_rate(min(self.ceiling, max(floor, rate)))

    def throughput(self, now: float, window: float) -> float | None:
        """Successes per second over the last ``window`` seconds, when enough to tell."""
        times = self.successes
        while times and now - times[0] > _SLOW_WINDOW:
            times.popleft()
        # Counted from the first success in the window to the last, not over the window: a
        # lane busy for less than the window (or after a gap) is not read as a slow one, nor
        # one asked a refusal after its last success (at a request a second, a second).
        recent = 0
        first = last = now
        for when in reversed(times):
            if now - when > window:
                break
            if not recent:
                last = when
            recent += 1
            first = when
        if recent < _THROUGHPUT_SAMPLES or last <= first:
            return None
        return (recent - 1) / (last - first)


class Permit:
    """One attempt's pass: holds an in-flight slot of the governor until released, and
    tells the governor and the plain limiters how the attempt ended when settled."""

    __slots__ = ("_governor", "_limiters", "_released", "_token", "endpoint", "sent", "waited")

    def __init__(
        self,
        endpoint: str,
        waited: float,
        sent: float,
        governor: Governor | None = None,
        token: object = None,
        limiters: Sequence[RateLimiter] = (),
    ) -> None:
        self._governor = governor
        self._token = token
        self._limiters = limiters
        self._released = False
        self.endpoint = endpoint
        #: When the request left the gate, on anyio's clock.
        self.sent = sent
        #: Seconds it waited for the pace, the in-flight cap or a pause.
        self.waited = waited

    def release(self) -> None:
        """The reply (or the failure) is in: the in-flight slot is free."""
        if not self._released:
            self._released = True
            if self._governor is not None:
                self._governor._in_flight.release_on_behalf_of(self._token)

    def settle(self, error: CollectError | None, *, max_retry_after: float = math.inf) -> bool:
        """Say how the attempt ended (None: a success). True when the server turned it away
        while its quota is spent: the attempt waited, it did not fail, and costs nothing.

        A ``Retry-After`` counts for at most ``max_retry_after`` (the caller's policy): a
        page view that honours a second of it must not be paused for the minute it says."""
        self.release()
        retry_after = None
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            retry_after = min(error.retry_after, max_retry_after)
        for limiter in self._limiters:
            if error is None:
                limiter.on_success()
            elif isinstance(error, RateLimitedError):
                limiter.on_rate_limited(retry_after)
        if self._governor is None:
            return False
        return self._governor._settle(self, error, retry_after)


class RequestGate:
    """What the request path waits at before each attempt: the client's ``rate_limiter``
    (a :class:`Governor`, or a plain :class:`~cc_collect_async.ratelimit.RateLimiter`) and
    its ``endpoint_limiters``."""

    def __init__(
        self,
        rate_limiter: RateLimiter | Governor | None,
        endpoint_limiters: Mapping[str, RateLimiter],
    ) -> None:
        self._governor = rate_limiter if isinstance(rate_limiter, Governor) else None
        self._account = rate_limiter if isinstance(rate_limiter, RateLimiter) else None
        self._endpoints = endpoint_limiters

    async def admit(self, endpoint: str) -> Permit:
        started = anyio.current_time()
        limiters = [self._account] if self._account is not None else []
        own = self._endpoints.get(endpoint)
        if own is not None:
            limiters.append(own)
        for limiter in limiters:
            await limiter.acquire()
        if self._governor is None:
            now = anyio.current_time()
            return Permit(endpoint, now - started, now, limiters=limiters)
        return await self._governor.admit(endpoint, limiters, started)


class Governor:
    """How fast and how many at once: the account's pace, each endpoint's pace, pauses
    while the server's quota is spent, and the in-flight cap (see the module's docstring).

    ``rate`` is the server's rate if known (a ceiling the governor stays at or below);
    without it the rate starts at ``initial_rate``, opens to a quarter of ``max_in_flight``
    per round trip once the first reply is in, and doubles every round trip until the
    first "too fast", then finds the limit, never above ``max_rate`` nor below ``floor``
    (a request a minute: an interface allowed 30 calls a minute, 0.5/s, was held at that
    pace by a floor of 0.5/s, and every other request was refused). ``endpoint_rates``
    are known per-endpoint limits. ``max_in_flight`` caps requests in flight (the
    concurrency setting). A ``Retry-After`` of ``long_retry_after`` seconds or more means
    the quota is spent. A scope that has been exhausted for ``patience`` seconds without a
    success stops excusing its rejections: the calls then fail like any other.

    Pass it to ``CollectClient(rate_limiter=...)``; a :class:`~cc_collect_async.harvest.
    Harvester` builds one from its ``rate``, ``burst``, ``endpoint_rates`` and
    ``concurrency``.
    """

    def __init__(
        self,
        rate: float | None = None,
        *,
        burst: int = 1,
        initial_rate: float = 10.0,
        max_rate: float = 10_000.0,
        floor: float = 1 / 60,
        endpoint_rates: Mapping[str, float] | None = None,
        max_in_flight: int | None = None,
        headroom: float = 1.5,
        long_retry_after: float = 5.0,
        patience: float = 900.0,
    ) -> None:
        if rate is not None and not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number of requests per second, not {rate}")
        if not 0 < floor <= max_rate:
            raise ValueError(f"need 0 < floor <= max_rate, not floor={floor} max_rate={max_rate}")
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight}")
        self.floor = floor
        self.burst = burst
        self.max_rate = max_rate
        self.headroom = headroom
        self.long_retry_after = long_retry_after
        self.patience = patience
        self.max_in_flight = max_in_flight
        self._account = _Lane(None, rate=rate, ceiling=max_rate, burst=burst)
        if rate is None:
            self._account.set_rate(initial_rate, floor)
        self._endpoint_rates = dict(endpoint_rates or {})
        self._lanes: dict[str, _Lane] = {}
        for name in self._endpoint_rates:
            self._lane(name)
        self._in_flight = anyio.CapacityLimiter(max_in_flight or 1_000_000)
        self._srtt: float | None = None
        #: How many times the server said "too fast".
        self.rate_limited = 0

    def __repr__(self) -> str:
        told = "told" if self._account.told else "adaptive"
        return f"Governor(rate={self.rate:.3g} {told}, in_flight_cap={self.in_flight_cap})"

    # -- what the outside reads -------------------------------------------------------------

    @property
    def rate(self) -> float:
        """The account's current requests per second."""
        return self._account.rate

    def endpoint_rate(self, endpoint: str) -> float | None:
        """An endpoint's own current pace, None when it has none yet."""
        lane = self._lanes.get(endpoint)
        return lane.rate if lane is not None else None

    @property
    def round_trip(self) -> float | None:
        """The smoothed round trip of replies, in seconds (None before the first)."""
        return self._srtt

    @property
    def in_flight_cap(self) -> int:
        return int(self._in_flight.total_tokens)

    def waits(self) -> list[ScopeWait]:
        """The scopes pausing for the server's limit now, longest wait first."""
        now = anyio.current_time()
        lanes = [self._account, *self._lanes.values()]
        found = [
            ScopeWait(lane.name, lane.paused_until) for lane in lanes if lane.paused_until > now
        ]
        return sorted(found, key=lambda wait: -wait.until)

    # -- the request path -------------------------------------------------------------------

    def _lane(self, endpoint: str) -> _Lane:
        lane = self._lanes.get(endpoint)
        if lane is None:
            lane = self._lanes[endpoint] = _Lane(
                endpoint,
                rate=self._endpoint_rates.get(endpoint),
                ceiling=self.max_rate,
                burst=self.burst,
            )
        return lane

    async def admit(
        self,
        endpoint: str,
        limiters: Sequence[RateLimiter] = (),
        started: float | None = None,
    ) -> Permit:
        """Wait until one more request to ``endpoint`` may go; the caller must settle (or
        release) the permit it gets. ``limiters`` (already passed) hear the outcome too.

        The endpoint's own pace comes first, holding nothing, so requests queued behind a
        slow endpoint never take in-flight slots from the others. Then an in-flight slot,
        then the account's pace: a bunch of replies arriving together frees slots together,
        and the account's pace spreads the requests that take them.
        """
        if started is None:
            started = anyio.current_time()
        lane = self._lane(endpoint)
        token = object()
        in_flight = self._in_flight
        while True:
            await lane.limiter.acquire()
            # Without waiting when a slot is free: anyio's acquire always passes through
            # the event loop, which cost a tenth of the request path's CPU.
            try:
                in_flight.acquire_on_behalf_of_nowait(token)
            except anyio.WouldBlock:
                await in_flight.acquire_on_behalf_of(token)
            try:
                await self._account.limiter.acquire()
            except BaseException:
                in_flight.release_on_behalf_of(token)
                raise
            now = anyio.current_time()
            # The endpoint may have been told to wait while this request queued behind
            # the others for a slot: it waits too, without holding the slot.
            if lane.paused_until <= now:
                break
            in_flight.release_on_behalf_of(token)
        return Permit(endpoint, now - started, now, governor=self, token=token, limiters=limiters)

    def _settle(
        self, permit: Permit, error: CollectError | None, retry_after: float | None
    ) -> bool:
        now = anyio.current_time()
        if error is None or error.status is not None:  # a reply: its round trip counts
            self._learn_round_trip(now - permit.sent)
        lane = self._lanes[permit.endpoint]
        if error is None:
            lane.record(now, refused=False)
            for scope in (self._account, lane):
                self._on_success(scope, permit.sent, now)
            return False
        if not isinstance(error, RateLimitedError):
            return False
        self.rate_limited += 1
        lane.record(now, refused=True)
        long_wait = retry_after is not None and retry_after >= self.long_retry_after
        scope = self._blame(lane, now, long_wait)
        return self._on_rejection(scope, permit.sent, now, retry_after, long_wait)

    def _learn_round_trip(self, sample: float) -> None:
        if sample <= 0:
            return
        if self._srtt is None:
            self._srtt = sample
            account = self._account
            if not account.told and account.limit_seen is None:
                # Slow start from an initial window (TCP's, RFC 6928): a share of the
                # concurrency the caller allows, sent over the first round trip measured.
                window = max(1.0, _INITIAL_WINDOW * (self.max_in_flight or 0))
                account.set_rate(max(account.rate, window / sample), self.floor)
        else:
            self._srtt += _RTT_GAIN * (sample - self._srtt)
        self._resize()

    def _resize(self) -> None:
        """In flight: about rate x round trip, with headroom, never above max_in_flight."""
        if self._srtt is None:
            return
        # (less a hair: 15.000000000000002 is 15 requests, not 16)
        wanted = math.ceil(self._account.rate * self._srtt * self.headroom - 1e-9) + 1
        if self.max_in_flight is not None:
            wanted = min(wanted, self.max_in_flight)
        if wanted != self._in_flight.total_tokens:
            self._in_flight.total_tokens = max(wanted, 1)

    def _blame(self, lane: _Lane, now: float, long_wait: bool = False) -> _Lane:
        """The scope a rejection at ``lane``'s endpoint speaks of: that endpoint alone when
        its replies are refused often (several, and a fair share) while the other
        endpoints are served and refused far less often; else the account. A few refusals spread
        over endpoints are a bunch at the account's pace: blaming whichever endpoint they
        happened to hit would cap it near its share of the moment."""
        window = max(1.0, 4 * (self._srtt or 0.0))
        served, refused = lane.recent(now, window)
        share = refused / (served + refused)
        # An endpoint whose own limit is known already (learnt, or told) needs no new
        # evidence: at a limit of a request or two a second, three refusals within the
        # window never come, and each one blamed on the account cut everyone's pace.
        known = lane.limit_seen is not None or lane.told
        # Nor one whose refusal asks for a long wait while the others are served: blamed on
        # the account, it held every endpoint for a minute over one interface's quota.
        if not (known or long_wait) and (refused < _ENDPOINT_REFUSALS or share < _ENDPOINT_SHARE):
            return self._account
        others_served = others_refused = 0
        for other in self._lanes.values():
            if other is not lane:
                other_served, other_refused = other.recent(now, window)
                others_served += other_served
                others_refused += other_refused
        others = others_served + others_refused
        if others_refused > _OTHERS_SHARE * share * others:
            return self._account
        if others_served < _ENDPOINT_REFUSALS and not known:
            return self._account  # nobody else to compare with, and nothing learnt yet
        # (An endpoint with a limit of its own keeps the blame when it is left alone at
        # the end of a harvest: the account did not get slower.)
        return lane

    def _on_success(self, lane: _Lane, sent: float, now: float) -> None:
        lane.last_success = now
        lane.successes.append(now)
        if len(lane.successes) > 4096:  # bounded at thousands of requests a second
            lane.successes.popleft()
        if lane.saturated is not None and now > lane.saturated[1]:
            self._measure_saturated(lane, now)
        if sent >= lane.cut_at:
            lane.refused_in_row = 0
            lane.backoff = 1.0
            lane.exhausted_since = None
        if lane.limit_seen is None and not lane.told and lane is not self._account:
            return  # an endpoint with no limit of its own: nothing to pace yet
        if lane.last_change is None:
            lane.last_change = now
            return
        elapsed = min(now - lane.last_change, _CREDIT)
        # (A pace of less than a request a second is waited for less often than that.)
        if now - lane.limiter.last_wait > max(_BINDING, 2.0 / lane.rate):
            # Nobody waited for this pace lately: it is not what limits the traffic, and
            # raising it would let it drift far above anything the server has seen.
            lane.last_change = now
            return
        if lane.limit_seen is None:
            if lane.told:
                lane.last_change = now
                return
            # Slow start: the rate doubles every round trip (TCP's doubling of its window;
            # counted in time, as successes lag the rate by a round trip).
            # Never past four times what got through over the last round trip (which lags
            # the rate by a round trip: twice what was sent then; TCP's ACK
            # clock): when the concurrency cap, not the pace, holds the traffic back, the
            # pace must not run away from it.
            round_trip = self._srtt or 0.1
            lane.last_change = now
            rate = lane.rate * 2.0 ** (min(elapsed, round_trip) / round_trip)
            delivered = lane.throughput(now, round_trip)
            if delivered is not None:
                rate = min(rate, max(lane.rate, 4.0 * delivered))
            lane.set_rate(rate, self.floor)
            self._resize()
            return
        if elapsed < 0.02:
            return
        lane.last_change = now
        knee = lane.limit_seen
        if lane.told and knee >= lane.ceiling:
            knee = lane.ceiling / _KNEE  # after a bunch: straight back to the told rate
        if lane.rate < _KNEE * knee:  # far below the limit seen: back quickly
            rate = lane.rate * (1.0 + _RECOVER * elapsed)
        elif lane.rate < knee:  # near it: creep up to it
            rate = lane.rate + _PLATEAU * knee * elapsed
        else:
            # Above it: probe, quicker the longer the limit holds (as CUBIC does), so a
            # limit learnt from a bunch, or one the server has since raised, is not kept.
            rate = lane.rate * (1.0 + _PROBE * (1.0 + now - lane.cut_at) * elapsed)
        if lane.costly:  # no nearer the limit than the knee
            rate = min(rate, max(lane.rate, _KNEE * lane.limit_seen))
        lane.set_rate(rate, self.floor)
        if lane is self._account:
            self._resize()

    def _on_rejection(
        self,
        lane: _Lane,
        sent: float,
        now: float,
        retry_after: float | None,
        long_wait: bool,
    ) -> bool:
        if sent < lane.cut_at:
            # Sent before the last cut (or pause): an echo of the old pace, no news.
            return self._excused(lane, now)
        lane.refused_in_row += 1
        persisting = lane.refused_in_row >= _PERSISTING
        self._cut(lane, now, costly=long_wait)
        if long_wait or persisting:
            seconds = retry_after if retry_after else lane.backoff
            lane.backoff = min(2 * lane.backoff, _MAX_BACKOFF)
            if lane.exhausted_since is None:
                lane.exhausted_since = now
            self._pause(lane, now, seconds)
        return self._excused(lane, now)

    def _excused(self, lane: _Lane, now: float) -> bool:
        """A rejection while ``lane`` waits out a spent quota costs the request no attempt,
        for ``patience`` seconds; a server that never lets anything through again must
        not hold the caller forever."""
        since = lane.exhausted_since
        return since is not None and now - since < self.patience

    def _cut(self, lane: _Lane, now: float, *, costly: bool = False) -> None:
        refused_at = lane.rate
        if lane is self._account and lane.limit_seen is None and not lane.told:
            # Slow start overshoots: the rate doubled in the round trip the news took, and
            # the server's burst hid the first excess. For now, what got through lately;
            # one round trip on, what got through while the server refused the echoes of
            # the overshoot, which is its rate (see _on_success).
            through = lane.throughput(now, _THROUGHPUT_WINDOW)
            lane.limit_seen = min(lane.rate, through) if through else lane.rate
            lane.saturated = (now, now + (self._srtt or 0.1))
        elif lane.told:
            # Refused near the told rate: a bunch (the server paused and admitted its
            # backlog at once), and the told rate stands. Refused well below it: the
            # server's limit is lower than told, and the rate reached is the limit seen.
            near = lane.rate >= _CONFIRMS_CEILING * lane.ceiling
            lane.limit_seen = lane.ceiling if near else lane.rate
        else:
            # The rate reached overshoots by what it grew in the round trip the news took;
            # what got through over the last second does not, but after a server pause or
            # an earlier cut it underestimates: one refusal lowers the limit seen by a
            # tenth at most, or bunch after bunch would ratchet the rate down for good.
            # A lane that never bound has no rate worth the name: what was asked of its
            # endpoint stands in for it.
            window = min(_SLOW_WINDOW, max(_LIMIT_WINDOW, (_THROUGHPUT_SAMPLES + 1) / lane.rate))
            through = lane.throughput(now, window) or lane.asked(now, _LIMIT_WINDOW)
            seen = min(lane.rate, through) if through else lane.rate
            # (An endpoint is blamed only on strong evidence: its estimate may fall freely.)
            if lane is self._account and lane.limit_seen is not None:
                seen = max(seen, _LOWER_AT_MOST * lane.limit_seen)
            lane.limit_seen = seen
        if costly:
            # The pace that was refused is over the limit, whatever got through before (a
            # pause's burst, mostly), and at a minute per refusal one more costs more than
            # any probe gains: the limit seen goes well under that pace.
            lane.costly = True
            lane.limit_seen = _DECREASE * min(lane.limit_seen, refused_at)
        lane.set_rate(lane.limit_seen * _DECREASE, self.floor)
        lane.cut_at = now
        lane.last_change = now
        if lane is self._account:
            self._resize()

    def _measure_saturated(self, lane: _Lane, now: float) -> None:
        """The round trip after slow start's first refusal is over: the successes in it
        came while the server was refusing, at its full rate."""
        start, end = lane.saturated or (now, now)
        lane.saturated = None
        served = sum(1 for t in lane.successes if start < t <= end)
        if served < _THROUGHPUT_SAMPLES or lane.limit_seen is None or end <= start:
            return
        measured = served / (end - start)
        if measured > lane.limit_seen:
            lane.limit_seen = measured
            lane.set_rate(max(lane.rate, measured * _DECREASE), self.floor)
            if lane is self._account:
                self._resize()

    def _pause(self, lane: _Lane, now: float, seconds: float) -> None:
        until = now + seconds
        if until > lane.paused_until:
            lane.paused_until = until
            lane.limiter.pause(seconds)
        # Requests sent before the pause ends are echoes of the spent quota.
        lane.cut_at = until
        lane.last_change = until
