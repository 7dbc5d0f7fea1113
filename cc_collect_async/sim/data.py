"""The simulator's deterministic data set, and the ground truth tests check a harvest against.

Everything is a pure function of :class:`DatasetSpec`: the same spec gives byte-identical
replies in every process, so a benchmark's server subprocess and the test that checks it
agree without sharing state. Lives (their ids, rooms, times and record *counts*) are built
up front because ``/collect/live/record`` must sort and filter all of them; the records
themselves are generated per live and per kind only when asked for, and only a few
generated lives are kept, so 10,000 lives and a million records cost little memory.

Record content is deliberately awkward (Chinese, emoji, ``& = + %``, quotes, newlines,
HTML, trailing spaces in timestamps, empty lives, lives with thousands of chat lines):
that is what breaks naive clients and naive sinks.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Final

import attrs

__all__ = [
    "DATA_KINDS",
    "TIME_FORMAT",
    "Dataset",
    "DatasetSpec",
    "LiveInfo",
    "Record",
    "RecordKey",
    "Truth",
    "record_key",
]

Record = dict[str, Any]
"""One record exactly as it travels inside a reply's ``data`` (treat it as read-only)."""

RecordKey = tuple[Any, ...]
"""``(liveid, *natural_key)``: how a record is told apart from every other one."""

DATA_KINDS: Final = ("chat", "access", "vote", "answercard", "brainstorm", "reward", "rollcall")
"""The record kinds a nightly harvest pulls per live, in the vocabulary of :class:`Truth`."""

TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
"""The vendor's Beijing-time format, without a zone."""

_BEIJING = timezone(timedelta(hours=8))
_EPOCH_BEIJING = datetime(1970, 1, 1, 8, 0, 0)
# Every room id the vendor showed ends with the same 16 hex digits (an account-wide suffix).
_ROOM_SUFFIX = "9C33DC5901307461"
_CACHE_SIZE = 96
_GOLDEN = 0x9E3779B97F4A7C15


def _to_beijing(value: datetime) -> datetime:
    """Accept an aware datetime too, but keep everything naive Beijing time internally."""
    if value.tzinfo is None:
        return value
    return value.astimezone(_BEIJING).replace(tzinfo=None)


def _non_negative(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value}")


@attrs.frozen(kw_only=True)
class DatasetSpec:
    """What to generate. Volumes are per live and vary by up to ±50% from live to live.

    ``empty_every=N`` makes every Nth live (1-based, in generation order) have no records at
    all; ``huge_every=M`` gives every Mth live 40x the chat and 10x the access records. Both
    exist because empty and very large lives are where pagination and sinks go wrong.
    """

    seed: int = 7
    rooms: int = attrs.field(default=3, validator=_positive)
    lives: int = attrs.field(default=12, validator=_non_negative)
    window_start: datetime = attrs.field(default=datetime(2026, 11, 1), converter=_to_beijing)
    window_days: int = attrs.field(default=2, validator=_positive)
    chat_per_live: int = attrs.field(default=60, validator=_non_negative)
    access_per_live: int = attrs.field(default=40, validator=_non_negative)
    votes_per_live: int = attrs.field(default=3, validator=_non_negative)
    answercards_per_live: int = attrs.field(default=3, validator=_non_negative)
    brainstorms_per_live: int = attrs.field(default=2, validator=_non_negative)
    rewards_per_live: int = attrs.field(default=5, validator=_non_negative)
    rollcall_per_live: int = attrs.field(default=30, validator=_non_negative)
    empty_every: int = attrs.field(default=7, validator=_non_negative)
    huge_every: int = attrs.field(default=11, validator=_non_negative)
    viewers_per_room: int = attrs.field(default=300, validator=_positive)
    client_reports_per_room: int = attrs.field(default=25, validator=_non_negative)

    def base_volume(self, kind: str) -> int:
        """The nominal per-live volume of ``kind`` before variation and the huge multiplier."""
        return {
            "chat": self.chat_per_live,
            "access": self.access_per_live,
            "vote": self.votes_per_live,
            "answercard": self.answercards_per_live,
            "brainstorm": self.brainstorms_per_live,
            "reward": self.rewards_per_live,
            "rollcall": self.rollcall_per_live,
        }[kind]


@attrs.frozen(kw_only=True)
class LiveInfo:
    """One live session as ``/collect/live/record`` describes it (times naive Beijing)."""

    roomid: str
    liveid: str
    start_time: datetime
    end_time: datetime
    class_name: str
    room_type: int

    def to_wire(self, userid: str) -> Record:
        """The ``/collect/live/record`` item; ``userid`` is the account that asked."""
        return {
            "end_time": self.end_time.strftime(TIME_FORMAT),
            "room_type": self.room_type,
            "userid": userid,
            "roomid": self.roomid,
            "class_name": self.class_name,
            "liveid": self.liveid,
            "start_time": self.start_time.strftime(TIME_FORMAT),
        }


@attrs.frozen(kw_only=True)
class Truth:
    """Every live in a window and the identity of every record of every kind in those lives.

    ``keys[kind]`` holds :func:`record_key` tuples; a harvest that lost or duplicated nothing
    produces exactly these sets.
    """

    lives: list[LiveInfo]
    keys: dict[str, set[RecordKey]]

    def count(self, kind: str) -> int:
        """How many records of ``kind`` the window holds."""
        return len(self.keys[kind])

    def total(self) -> int:
        """How many records of every kind the window holds."""
        return sum(len(keys) for keys in self.keys.values())

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (sorted, so two dumps of the same truth compare equal)."""
        return {
            "lives": [
                {
                    "roomid": live.roomid,
                    "liveid": live.liveid,
                    "start_time": _fmt(live.start_time),
                    "end_time": _fmt(live.end_time),
                    "class_name": live.class_name,
                    "room_type": live.room_type,
                }
                for live in self.lives
            ],
            "keys": {kind: [list(key) for key in sorted(keys)] for kind, keys in self.keys.items()},
        }


def record_key(kind: str, liveid: str, record: Mapping[str, Any]) -> RecordKey:
    """The natural key of one wire record, prefixed by its live: what :class:`Truth` holds.

    Exposed so a test or the demo can compute the same keys from what it harvested.
    """
    if kind == "chat":
        return (liveid, record["id"])
    if kind == "access":
        return (liveid, record["viewerid"], record["enter_time"])
    if kind == "vote":
        return (liveid, record["publish_data"]["vote_id"])
    if kind == "answercard":
        return (liveid, record["publish_data"]["qvote_id"])
    if kind == "brainstorm":
        return (liveid, record["publish_data"]["brainsstom_id"])
    if kind == "reward":
        return (liveid, record["uid"], record["reward_time"], record["type"])
    if kind == "rollcall":
        return (liveid, record["roll_call_id"], record["user_id"])
    raise ValueError(f"unknown record kind {kind!r}; expected one of {DATA_KINDS}")


# --- awkward content ------------------------------------------------------------------------

_FRAGMENTS: Final = (
    "大家好，今天讲第三章",
    "老师好 👋",
    "😂😂😂",
    "1 + 1 = 2 & 2 + 2 = 4",
    "折扣 50% off!! 100%",
    'He said "hello" to 老师',
    "it's O'Reilly's book",
    "第一行\n第二行\r\n第三行",
    "<b>粗体</b> <script>alert('x')</script>",
    "&amp; &lt;tag&gt; %20 %E4%B8%AD a+b",
    "a=b&c=d?e#f",
    "   前后有空格   ",
    "tab\tseparated\tvalues",
    "back\\slash \\n is not a newline",
    "🇨🇳 国旗 and 👨‍👩‍👧 family",
    "",
    "null",
    "谢谢老师🎉",
    "中文，标点。！？【】「」",
    "SELECT * FROM users; -- 'quote",
    '{"json": [1, 2]}',
    "ok",
)
_NAMES: Final = (
    "张三",
    "李四 ",
    "王小明",
    "Ann & Bob",
    "<i>学员</i>",
    "😀学员",
    'O\'Brien "Ace"',
    "100%好学生",
    "a=b+c",
    "  空格  ",
    "陈\n换行",
    "guojia",
    "Zoë",
    "学生",
)
_TOPICS: Final = (
    "C++ & Go = 100% 乐趣",
    "数学 <高数> 第二学期",
    '"Quoted" Class',
    "🎓 毕业典礼",
    "Physics 101  ",
    "英语口语 + 听力",
    "wang-double-test5",
    "周末答疑\n(加课)",
)
_CITIES: Final = ("上海", "北京", "广东", "浙江", "四川", "其他", "海外 & 港澳台")
_PLATFORMS: Final = ("web", "android", "ios", "pc client", "mobile web")
# gather's platforms are the vendor's numeric codes: 5 web, 2 android, 3 ios.
_PLATFORM_CODES: Final = {
    "web": "5",
    "android": "2",
    "ios": "3",
    "pc client": "5",
    "mobile web": "5",
}
_ROLES: Final = ("student", "student", "student", "student", "talker", "assistant", "teacher")
_REWARD_TYPES: Final = ("cup", "flower", "rocket")
_BROWSERS: Final = ("Chrome_71.0", "Firefox_65.0", "Safari_12.1", "Edge_18.0", "WeChat 7.0")
_KERNELS: Final = ("webkit", "gecko", "blink", "trident")
_SYSTEMS: Final = ("Window7", "Windows 10", "Mac OS X 10_14", "Android 9", "iOS 12.1")
_RESOLUTIONS: Final = ("1680*1050", "1920*1080", "1366*768", "375*812", "2560*1440")


def _text(rng: random.Random) -> str:
    parts = rng.randint(1, 3)
    text = " ".join(rng.choice(_FRAGMENTS) for _ in range(parts))
    if rng.random() < 0.01:
        # Now and then a long paste, as real chat has.
        text += " " + "很长的消息" * rng.randint(50, 200)
    return text


def _digest(*parts: object) -> str:
    return hashlib.md5("/".join(str(part) for part in parts).encode()).hexdigest()


def _fmt(value: datetime) -> str:
    return value.strftime(TIME_FORMAT)


def _fmt_loose(value: datetime, rng: random.Random) -> str:
    # The vendor's access times often carry a trailing space; clients must cope.
    return _fmt(value) + (" " if rng.random() < 0.6 else "")


def _vary(rng: random.Random, base: int) -> int:
    if base <= 0:
        return 0
    return max(1, round(base * rng.uniform(0.5, 1.5)))


def _ip(rng: random.Random) -> str:
    return ".".join(str(octet) for octet in (rng.randint(1, 223), *rng.choices(range(256), k=3)))


@attrs.frozen
class _Viewer:
    viewerid: str
    name: str


@attrs.frozen
class _LiveMeta:
    """What must be known about a live without generating its records."""

    index: int
    info: LiveInfo
    counts: dict[str, int]
    viewers: int
    peak: int
    peak_time: datetime | None


class Dataset:
    """A deterministic account's worth of rooms, lives and records built from a spec.

    Every configured account of the simulator sees this same data set. Safe to read from
    several threads (the server thread and a test) at once.
    """

    def __init__(self, spec: DatasetSpec | None = None) -> None:
        self.spec = spec if spec is not None else DatasetSpec()
        self._rooms = self._make_rooms()
        self._live_mask = int(_digest(self.spec.seed, "liveid")[:16], 16)
        self._volumes = [self.spec.base_volume(kind) for kind in DATA_KINDS]
        metas = [self._make_meta(index) for index in range(self.spec.lives)]
        metas.sort(key=lambda meta: (meta.info.start_time, meta.info.liveid))
        self._metas = metas
        self._starts = [meta.info.start_time for meta in metas]
        self._by_liveid = {meta.info.liveid: meta for meta in metas}
        self._by_room: dict[str, list[_LiveMeta]] = {roomid: [] for roomid in self._rooms}
        for meta in metas:
            self._by_room[meta.info.roomid].append(meta)
        self._viewers: dict[str, list[_Viewer]] = {}
        self._cache: OrderedDict[tuple[str, str], list[Record]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Dataset({self.spec!r})"

    # --- structure ------------------------------------------------------------------------

    def _make_rooms(self) -> list[str]:
        rooms: list[str] = []
        seen: set[str] = set()
        for index in range(self.spec.rooms):
            salt = 0
            while True:
                roomid = _digest(self.spec.seed, "room", index, salt)[:16].upper() + _ROOM_SUFFIX
                if roomid not in seen:
                    break
                salt += 1
            seen.add(roomid)
            rooms.append(roomid)
        return rooms

    def _make_meta(self, index: int) -> _LiveMeta:
        spec = self.spec
        rng = random.Random(f"{spec.seed}/live/{index}")
        # Multiplying by an odd constant modulo 2**64 is a bijection, so the ids look random
        # like the vendor's and are still unique by construction.
        liveid = f"{((index + 1) * _GOLDEN % 2**64) ^ self._live_mask:016X}"
        start = spec.window_start + timedelta(seconds=rng.randrange(spec.window_days * 86400))
        duration = rng.randint(20 * 60, 3 * 3600)
        info = LiveInfo(
            roomid=self._rooms[index % spec.rooms],
            liveid=liveid,
            start_time=start,
            end_time=start + timedelta(seconds=duration),
            class_name=f"{rng.choice(_TOPICS)} 第{index + 1}讲",
            room_type=rng.choice((1, 2, 3)),
        )
        empty = spec.empty_every > 0 and (index + 1) % spec.empty_every == 0
        huge = not empty and spec.huge_every > 0 and (index + 1) % spec.huge_every == 0
        counts: dict[str, int] = {}
        for kind, base in zip(DATA_KINDS, self._volumes, strict=True):
            if huge and kind == "chat":
                base *= 40
            elif huge and kind == "access":
                base *= 10
            counts[kind] = 0 if empty else _vary(rng, base)
        access = counts["access"]
        viewers = min(access, spec.viewers_per_room, max(1, rng.randint(access // 3, access)))
        peak = rng.randint(1, viewers) if viewers else 0
        peak_time = start + timedelta(seconds=rng.randrange(duration)) if peak else None
        return _LiveMeta(
            index=index,
            info=info,
            counts=counts,
            viewers=viewers,
            peak=peak,
            peak_time=peak_time,
        )

    # --- lives ----------------------------------------------------------------------------

    @property
    def rooms(self) -> list[str]:
        """Every room id of the account."""
        return list(self._rooms)

    def has_room(self, roomid: str) -> bool:
        """Whether the account has this room (it may have no lives)."""
        return roomid in self._by_room

    def lives(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        roomids: Collection[str] | None = None,
    ) -> list[LiveInfo]:
        """Lives with ``start <= start_time < end``, in the order live/record returns them."""
        low = 0 if start is None else bisect.bisect_left(self._starts, _to_beijing(start))
        high = (
            len(self._metas) if end is None else bisect.bisect_left(self._starts, _to_beijing(end))
        )
        wanted = None if roomids is None else set(roomids)
        return [
            meta.info
            for meta in self._metas[low:high]
            if wanted is None or meta.info.roomid in wanted
        ]

    def live(self, liveid: str) -> LiveInfo | None:
        """The live with this id, or None when the account has no such live."""
        meta = self._by_liveid.get(liveid)
        return None if meta is None else meta.info

    def room_lives(self, roomid: str) -> list[LiveInfo]:
        """Every live of one room, in live/record order."""
        return [meta.info for meta in self._by_room.get(roomid, [])]

    def count(self, liveid: str, kind: str) -> int:
        """How many records of ``kind`` a live has, without generating them."""
        return self._meta(liveid).counts[kind]

    def viewer_count(self, liveid: str) -> int:
        """Distinct viewers of a live (usercount's ``livecount``, gather's ``usercount``)."""
        return self._meta(liveid).viewers

    def peak(self, liveid: str) -> tuple[int, datetime | None]:
        """The live's highest concurrent viewer count and when it happened."""
        meta = self._meta(liveid)
        return meta.peak, meta.peak_time

    def _meta(self, liveid: str) -> _LiveMeta:
        try:
            return self._by_liveid[liveid]
        except KeyError:
            raise KeyError(f"no live {liveid!r} in this data set") from None

    # --- records --------------------------------------------------------------------------

    def records(self, liveid: str, kind: str) -> list[Record]:
        """Every record of ``kind`` in a live, as wire dicts, in the order the API sends them."""
        if kind not in DATA_KINDS:
            raise ValueError(f"unknown record kind {kind!r}; expected one of {DATA_KINDS}")
        meta = self._meta(liveid)
        key = (liveid, kind)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return list(cached)
        made = self._generate(meta, kind)
        if len(made) != meta.counts[kind]:  # pragma: no cover - a generator bug
            raise AssertionError(f"{kind} of {liveid}: {len(made)} != {meta.counts[kind]}")
        with self._lock:
            self._cache[key] = made
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return list(made)

    def slice(self, liveids: Sequence[str], kind: str, offset: int, limit: int) -> list[Record]:
        """Records ``offset:offset+limit`` of the concatenation of several lives' records.

        Only the lives that overlap the slice are generated, which keeps a whole-room page of
        votes cheap even when the room has thousands of lives.
        """
        out: list[Record] = []
        position = 0
        for liveid in liveids:
            if len(out) >= limit:
                break
            count = self.count(liveid, kind)
            if position + count > offset and count:
                records = self.records(liveid, kind)
                begin = max(0, offset - position)
                out.extend(records[begin : begin + limit - len(out)])
            position += count
        return out

    def gather(self, liveid: str) -> Record:
        """The live's summary (``/collect/live/gather`` data), derived from its access records."""
        meta = self._meta(liveid)
        rng = random.Random(f"{self.spec.seed}/gather/{liveid}")
        first_platform: dict[str, str] = {}
        for record in self.records(liveid, "access"):
            first_platform.setdefault(record["viewerid"], record["platform"])
        locations: dict[str, int] = {}
        platforms = {"5": 0, "2": 0, "3": 0}
        for platform in first_platform.values():
            city = rng.choice(_CITIES)
            locations[city] = locations.get(city, 0) + 1
            platforms[_PLATFORM_CODES[platform]] += 1
        return {
            "locations": locations,
            "roomid": meta.info.roomid,
            "platforms": platforms,
            "liveid": liveid,
            "usercount": meta.viewers,
        }

    def client_info(self, roomid: str, viewerid: str | None = None) -> list[Record]:
        """The web clients' self-reports of a room (``/collect/room/client/info`` data)."""
        spec = self.spec
        rng = random.Random(f"{spec.seed}/client/{roomid}")
        pool = self._pool(roomid)
        chosen = rng.sample(range(len(pool)), min(len(pool), spec.client_reports_per_room))
        window = spec.window_days * 86400
        reports: list[Record] = []
        for position in chosen:
            viewer = pool[position]
            report = {
                "camera_enable": rng.choice((0, 1)),
                "submit_time": _fmt(spec.window_start + timedelta(seconds=rng.randrange(window))),
                "roomid": roomid,
                "browser": rng.choice(_BROWSERS),
                "browser_kernel": rng.choice(_KERNELS),
                "ip": _ip(rng),
                "username": viewer.name,
                "micro_enable": rng.choice((0, 1)),
                "system": rng.choice(_SYSTEMS),
                "userid": viewer.viewerid,
                "screen_resolution": rng.choice(_RESOLUTIONS),
            }
            if viewerid is None or viewer.viewerid == viewerid:
                reports.append(report)
        return reports

    # --- ground truth ---------------------------------------------------------------------

    def truth(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        roomids: Collection[str] | None = None,
    ) -> Truth:
        """The lives in the window and the key of every record of every kind they hold."""
        lives = self.lives(start, end, roomids)
        keys: dict[str, set[RecordKey]] = {kind: set() for kind in DATA_KINDS}
        for live in lives:
            for kind in DATA_KINDS:
                if self.count(live.liveid, kind):
                    keys[kind].update(
                        record_key(kind, live.liveid, record)
                        for record in self.records(live.liveid, kind)
                    )
        return Truth(lives=lives, keys=keys)

    def total_records(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        roomids: Collection[str] | None = None,
        kinds: Collection[str] = DATA_KINDS,
    ) -> int:
        """How many records the window holds (cheap: counts only, nothing is generated)."""
        return sum(
            self.count(live.liveid, kind)
            for live in self.lives(start, end, roomids)
            for kind in kinds
        )

    # --- generation -----------------------------------------------------------------------

    def _pool(self, roomid: str) -> list[_Viewer]:
        pool = self._viewers.get(roomid)
        if pool is None:
            pool = []
            for number in range(self.spec.viewers_per_room):
                rng = random.Random(f"{self.spec.seed}/viewer/{roomid}/{number}")
                pool.append(
                    _Viewer(
                        viewerid=_digest(self.spec.seed, "viewer", roomid, number),
                        name=rng.choice(_NAMES) + ("" if rng.random() < 0.5 else str(number)),
                    )
                )
            self._viewers[roomid] = pool
        return pool

    def _audience(self, meta: _LiveMeta) -> list[_Viewer]:
        pool = self._pool(meta.info.roomid)
        rng = random.Random(f"{self.spec.seed}/audience/{meta.info.liveid}")
        size = meta.viewers or min(10, len(pool))
        return [pool[position] for position in rng.sample(range(len(pool)), size)]

    def _teacher(self, roomid: str) -> _Viewer:
        rng = random.Random(f"{self.spec.seed}/teacher/{roomid}")
        name = rng.choice(("王老师", "Ms. Li & 助教", "<b>张</b>老师", "老师 😀"))
        return _Viewer(viewerid=_digest(self.spec.seed, "teacher", roomid), name=name)

    def _generate(self, meta: _LiveMeta, kind: str) -> list[Record]:
        count = meta.counts[kind]
        if count == 0:
            return []
        rng = random.Random(f"{self.spec.seed}/{kind}/{meta.info.liveid}")
        generator = getattr(self, f"_make_{kind}")
        records: list[Record] = generator(meta, count, rng)
        return records

    @staticmethod
    def _offsets(rng: random.Random, meta: _LiveMeta, count: int, distinct: bool) -> list[int]:
        span = int((meta.info.end_time - meta.info.start_time).total_seconds())
        if distinct:
            return sorted(rng.sample(range(max(span, count)), count))
        return sorted(rng.randrange(span) for _ in range(count))

    def _id_digits(self, kind: str) -> int:
        # Ids unique across the data set: each live owns a block of ids sized for the biggest
        # volume of that kind the spec can produce (huge lives included).
        most = math.ceil(self.spec.base_volume(kind) * 1.5 * 40) + 1
        return max(4, len(str(most)))

    def _chat_base(self, meta: _LiveMeta) -> int:
        block: int = 10 ** self._id_digits("chat")
        return meta.index * block + 1

    def _make_chat(self, meta: _LiveMeta, count: int, rng: random.Random) -> list[Record]:
        audience = self._audience(meta)
        base = self._chat_base(meta)
        start = meta.info.start_time
        records: list[Record] = []
        for number, offset in enumerate(self._offsets(rng, meta, count, distinct=False)):
            viewer = rng.choice(audience)
            records.append(
                {
                    "id": base + number,
                    "timestamp": _fmt(start + timedelta(seconds=offset)),
                    "username": viewer.name,
                    "content": _text(rng),
                    "chat_userid": viewer.viewerid,
                }
            )
        return records

    def _make_access(self, meta: _LiveMeta, count: int, rng: random.Random) -> list[Record]:
        audience = self._audience(meta)
        # Every viewer enters at least once; the rest are re-entries.
        order = audience + [rng.choice(audience) for _ in range(count - len(audience))]
        rng.shuffle(order)
        start = meta.info.start_time
        records: list[Record] = []
        # Distinct enter seconds make (viewerid, enter_time) unique even after stripping.
        for viewer, offset in zip(
            order, self._offsets(rng, meta, count, distinct=True), strict=True
        ):
            enter = start + timedelta(seconds=offset)
            leave = enter + timedelta(seconds=rng.randint(5, 2 * 3600))
            records.append(
                {
                    "username": viewer.name,
                    "viewerid": viewer.viewerid,
                    "role": rng.choice(_ROLES),
                    "ip": _ip(rng),
                    "platform": rng.choice(_PLATFORMS),
                    "enter_time": _fmt_loose(enter, rng),
                    "exit_time": _fmt_loose(leave, rng),
                }
            )
        return records

    def _replies(self, meta: _LiveMeta, rng: random.Random) -> list[_Viewer]:
        audience = self._audience(meta)
        return rng.sample(audience, rng.randint(0, min(len(audience), 30)))

    def _make_vote(self, meta: _LiveMeta, count: int, rng: random.Random) -> list[Record]:
        teacher = self._teacher(meta.info.roomid)
        start = meta.info.start_time
        records: list[Record] = []
        for number, offset in enumerate(self._offsets(rng, meta, count, distinct=True)):
            style = rng.choice((0, 1))
            options = [rng.choice(_FRAGMENTS)[:12] or "—" for _ in range(rng.randint(2, 5))]
            replies = [
                {
                    "uid": viewer.viewerid,
                    "choices": self._choice(rng, style, len(options)),
                    "uname": viewer.name,
                }
                for viewer in self._replies(meta, rng)
            ]
            records.append(
                {
                    "reply_data": replies,
                    "publish_data": {
                        "style": style,
                        "choices": options,
                        "publish_time": _fmt(start + timedelta(seconds=offset)),
                        "roomid": meta.info.roomid,
                        "vote_id": _digest(self.spec.seed, "vote", meta.info.liveid, number),
                        "title": _text(rng),
                        "uid": teacher.viewerid,
                        "liveid": meta.info.liveid,
                        "uname": teacher.name,
                    },
                }
            )
        return records

    @staticmethod
    def _choice(rng: random.Random, style: int, options: int) -> list[int]:
        if style == 0:
            return [rng.randrange(options)]
        return sorted(rng.sample(range(options), rng.randint(1, options)))

    def _make_answercard(self, meta: _LiveMeta, count: int, rng: random.Random) -> list[Record]:
        teacher = self._teacher(meta.info.roomid)
        start = meta.info.start_time
        width = self._id_digits("answercard")
        records: list[Record] = []
        for number, offset in enumerate(self._offsets(rng, meta, count, distinct=True)):
            style = rng.choice((0, 1))
            options = rng.randint(2, 5)
            published = start + timedelta(seconds=offset)
            # -1: the teacher never published the answer.
            correct = [-1] if rng.random() < 0.3 else self._choice(rng, style, options)
            replies = [
                {
                    "uid": viewer.viewerid,
                    "choice": self._choice(rng, style, options),
                    "reply_time": _fmt(published + timedelta(seconds=rng.randint(1, 120))),
                }
                for viewer in self._replies(meta, rng)
            ]
            records.append(
                {
                    "publish_data": {
                        # Digits like the vendor's, unique across the data set by layout.
                        "qvote_id": f"{meta.index + 1}{number:0{width}d}",
                        "uid": teacher.viewerid,
                        "style": style,
                        "count": options,
                        "publish_time": _fmt(published),
                        "liveid": meta.info.liveid,
                        "correct": correct,
                    },
                    "reply_data": replies,
                }
            )
        return records

    def _make_brainstorm(self, meta: _LiveMeta, count: int, rng: random.Random) -> list[Record]:
        teacher = self._teacher(meta.info.roomid)
        start = meta.info.start_time
        records: list[Record] = []
        for number, offset in enumerate(self._offsets(rng, meta, count, distinct=True)):
            replies = [
                {"content": _text(rng), "uid": viewer.viewerid, "uname": viewer.name}
                for viewer in self._replies(meta, rng)
            ]
            records.append(
                {
                    "reply_data": replies,
                    "publish_data": {
                        "content": _text(rng),
                        "brainsstom_id": _digest(
                            self.spec.seed, "brainstorm", meta.info.liveid, number
                        ),
                        "publish_time": _fmt(start + timedelta(seconds=offset)),
                        "roomid": meta.info.roomid,
                        "title": _text(rng),
                        "uid": teacher.viewerid,
                        "liveid": meta.info.liveid,
                        "uname": teacher.name,
                    },
                }
            )
        return records

    def _make_reward(self, meta: _LiveMeta, count: int, rng: random.Random) -> list[Record]:
        audience = self._audience(meta)
        start = meta.info.start_time
        records: list[Record] = []
        # Distinct seconds keep (uid, reward_time, type) unique within the live.
        for offset in self._offsets(rng, meta, count, distinct=True):
            viewer = rng.choice(audience)
            records.append(
                {
                    "reward_time": _fmt(start + timedelta(seconds=offset)),
                    "uname": viewer.name,
                    "liveid": meta.info.liveid,
                    "type": rng.choice(_REWARD_TYPES),
                    "uid": viewer.viewerid,
                    "roomid": meta.info.roomid,
                }
            )
        return records

    def _make_rollcall(self, meta: _LiveMeta, count: int, rng: random.Random) -> list[Record]:
        pool = self._pool(meta.info.roomid)
        calls = min(count, rng.randint(1, 3))
        sizes = [count // calls + (1 if number < count % calls else 0) for number in range(calls)]
        start = meta.info.start_time
        records: list[Record] = []
        for number, (size, offset) in enumerate(
            zip(sizes, self._offsets(rng, meta, calls, distinct=True), strict=True)
        ):
            called = start + timedelta(seconds=offset)
            millis = int((called - _EPOCH_BEIJING).total_seconds()) * 1000
            people = [pool[p] for p in rng.sample(range(len(pool)), min(size, len(pool)))]
            # Rooms smaller than a roll call get extra, synthetic participants.
            people += [
                _Viewer(
                    viewerid=_digest(self.spec.seed, "rollcall", meta.info.liveid, number, extra),
                    name=f"学生{extra}",
                )
                for extra in range(size - len(people))
            ]
            for person in people:
                confirmed = rng.random() < 0.85
                confirm = called + timedelta(seconds=rng.randint(1, 90))
                records.append(
                    {
                        "live_id": meta.info.liveid,
                        "roll_call_id": str(millis),
                        "user_id": person.viewerid,
                        "user_name": person.name,
                        "roll_call_status": 1 if confirmed else 0,
                        # Nobody confirmed, so there is no time: null, as a Java backend sends.
                        "confirm_time": _fmt(confirm) if confirmed else None,
                    }
                )
        return records
