"""Typed records of the collect API, with the vendor's own field names.

Every class is frozen and slotted. Fields default to ``None`` (or empty) because the vendor
omits fields freely; unknown extra fields are ignored when parsing. Timestamps become aware
datetimes in Beijing time (UTC+8). The top-level record of every endpoint keeps the wire
dict it was parsed from in ``raw`` (left out of equality and repr), so an export can be
lossless while code works with types.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from .beijing import BEIJING

__all__ = [
    "BEIJING",
    "AccessRecord",
    "AnswerCardPublish",
    "AnswerCardRecord",
    "AnswerCardReply",
    "BrainstormPublish",
    "BrainstormRecord",
    "BrainstormReply",
    "ChatRecord",
    "ClientInfo",
    "LiveDuration",
    "LiveRecord",
    "LiveSummary",
    "LiveUserCount",
    "MaxParallel",
    "Platform",
    "RewardRecord",
    "RollcallRecord",
    "VotePublish",
    "VoteRecord",
    "VoteReply",
]

_EMPTY: Mapping[str, Any] = {}


def _raw() -> Any:
    return attrs.field(factory=dict, eq=False, repr=False, kw_only=True)


class Platform(enum.IntEnum):
    """Codes of the ``platforms`` histogram in the live summary."""

    ANDROID = 2
    IOS = 3
    WEB = 5


@attrs.frozen
class MaxParallel:
    """Peak concurrent viewers, and when the peak happened."""

    max_parallel: int | None = None
    time: datetime | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen
class LiveUserCount:
    """Cumulative viewers of one live."""

    livecount: int | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen
class LiveDuration:
    """Actual duration of one live; ``duration`` is in hours."""

    duration: float | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen
class AccessRecord:
    """One viewer's stay in a live: enter and exit."""

    username: str | None = None
    viewerid: str | None = None
    role: str | None = None
    ip: str | None = None
    platform: str | None = None
    enter_time: datetime | None = None
    exit_time: datetime | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen
class ChatRecord:
    """One chat message."""

    id: int | None = None
    timestamp: datetime | None = None
    username: str | None = None
    content: str | None = None
    chat_userid: str | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen
class LiveRecord:
    """One live of the account (``/collect/live/record``)."""

    liveid: str | None = None
    roomid: str | None = None
    userid: str | None = None
    class_name: str | None = None
    room_type: int | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen
class BrainstormPublish:
    content: str | None = None
    brainsstom_id: str | None = None  # sic: the vendor's spelling
    publish_time: datetime | None = None
    roomid: str | None = None
    title: str | None = None
    uid: str | None = None
    liveid: str | None = None
    uname: str | None = None


@attrs.frozen
class BrainstormReply:
    content: str | None = None
    uid: str | None = None
    uname: str | None = None


@attrs.frozen
class BrainstormRecord:
    """A brainstorm question and its answers."""

    publish_data: BrainstormPublish = attrs.field(factory=BrainstormPublish)
    reply_data: tuple[BrainstormReply, ...] = ()
    raw: Mapping[str, Any] = _raw()


@attrs.frozen
class VotePublish:
    style: int | None = None
    choices: tuple[str, ...] = ()
    publish_time: datetime | None = None
    roomid: str | None = None
    vote_id: str | None = None
    title: str | None = None
    uid: str | None = None
    liveid: str | None = None
    uname: str | None = None


@attrs.frozen
class VoteReply:
    uid: str | None = None
    choices: tuple[int, ...] = ()
    uname: str | None = None


@attrs.frozen
class VoteRecord:
    """A vote and its ballots."""

    publish_data: VotePublish = attrs.field(factory=VotePublish)
    reply_data: tuple[VoteReply, ...] = ()
    raw: Mapping[str, Any] = _raw()


@attrs.frozen
class AnswerCardPublish:
    qvote_id: str | None = None
    uid: str | None = None
    #: 0 single choice, 1 multiple choice.
    style: int | None = None
    count: int | None = None
    publish_time: datetime | None = None
    liveid: str | None = None
    #: Correct options; ``(-1,)`` when the teacher published no answer.
    correct: tuple[int, ...] = ()


@attrs.frozen
class AnswerCardReply:
    uid: str | None = None
    choice: tuple[int, ...] = ()
    reply_time: datetime | None = None


@attrs.frozen
class AnswerCardRecord:
    """An answer card (quiz) and the students' answers."""

    publish_data: AnswerCardPublish = attrs.field(factory=AnswerCardPublish)
    reply_data: tuple[AnswerCardReply, ...] = ()
    raw: Mapping[str, Any] = _raw()


@attrs.frozen
class RewardRecord:
    """A reward handed out during a live."""

    reward_time: datetime | None = None
    uname: str | None = None
    liveid: str | None = None
    type: str | None = None
    uid: str | None = None
    roomid: str | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen
class LiveSummary:
    """Summary of one live (``/collect/live/gather``)."""

    locations: Mapping[str, int] = attrs.field(factory=dict)
    roomid: str | None = None
    #: Viewer count per platform code (see :class:`Platform`: 5 web, 2 android, 3 ios).
    platforms: Mapping[int, int] = attrs.field(factory=dict)
    liveid: str | None = None
    usercount: int | None = None
    raw: Mapping[str, Any] = _raw()

    def by_platform(self) -> dict[Platform | int, int]:
        """``platforms`` keyed by :class:`Platform` where the code is known."""
        known = {p.value for p in Platform}
        return {(Platform(c) if c in known else c): n for c, n in self.platforms.items()}


@attrs.frozen
class ClientInfo:
    """What a viewer's web client reported about its devices."""

    camera_enable: int | None = None
    submit_time: datetime | None = None
    roomid: str | None = None
    browser: str | None = None
    browser_kernel: str | None = None
    ip: str | None = None
    username: str | None = None
    micro_enable: int | None = None
    system: str | None = None
    userid: str | None = None
    screen_resolution: str | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen
class RollcallRecord:
    """One user's answer to a roll call."""

    live_id: str | None = None
    roll_call_id: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    #: 1 answered the roll call, 0 did not.
    roll_call_status: int | None = None
    confirm_time: datetime | None = None
    raw: Mapping[str, Any] = _raw()
