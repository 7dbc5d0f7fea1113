"""The 13 collect endpoints, each described once, as data.

Everything the request path and the pagination need to know about an endpoint lives in its
:class:`Endpoint` row: the vendor's exact path, the method, the parameters (required or not
and how they are written), the pagination style, the record model and the natural key that
identifies a record. The client's coroutines are thin wrappers over this table; adding an
endpoint is one more row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import date
from itertools import repeat
from typing import Any, Literal

import attrs

from . import models
from .beijing import format_date, format_minute, parse_text
from .errors import DecodeError, InvalidRequestError

__all__ = [
    "ENDPOINTS",
    "PAGE_COUNT",
    "TOTAL",
    "Endpoint",
    "PageStyle",
    "Param",
    "RawPage",
    "endpoint",
    "read_object",
    "read_records",
]

ParamFormat = Literal["text", "int", "date", "minute"]


@attrs.frozen
class Param:
    """One request parameter. ``format`` says how dates and numbers are written on the wire."""

    name: str
    required: bool = False
    format: ParamFormat = "text"

    def render(self, value: object) -> str | int:
        if self.format == "int":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise InvalidRequestError(f"{self.name} must be an integer, not {value!r}")
            try:
                return int(value)
            except ValueError:
                raise InvalidRequestError(
                    f"{self.name} must be an integer, not {value!r}"
                ) from None
        if self.format in ("date", "minute"):
            return _render_time(self.name, value, self.format)
        return str(value)


def _render_time(name: str, value: object, fmt: ParamFormat) -> str:
    """Write a date parameter the way the vendor wants it; accept dates, datetimes (aware
    ones are converted to Beijing time) and text in any of the vendor's formats."""
    if isinstance(value, str):
        try:
            value = parse_text(value)
        except ValueError:
            raise InvalidRequestError(
                f"{name} must be a date (YYYY-MM-DD) or a time (YYYY-MM-DD HH:MM), not {value!r}"
            ) from None
    if not isinstance(value, date):
        raise InvalidRequestError(f"{name} must be a date or datetime, not {value!r}")
    return format_date(value) if fmt == "date" else format_minute(value)


@attrs.frozen
class RawPage:
    """One page as the server reported it: wire items plus its position in the walk."""

    items: list[dict[str, Any]]
    number: int
    length: int
    page_count: int
    #: Item count across all pages, where the server reports it (rollcall); else None.
    total: int | None = None


def _records(items: object) -> list[dict[str, Any]]:
    """``items`` if it is a list of objects (None is no records); else a ``DecodeError``."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise DecodeError(f"reply data is not a list but {type(items).__name__}")
    # The set of the items' types, made in C: a Python loop over every record of every
    # page cost more than a tenth of orjson's decoding of the page.
    kinds = set(map(type, items))
    if kinds and kinds != _DICT:
        odd = next(k for k in kinds if k is not dict)
        raise DecodeError(f"reply data holds a {odd.__name__}, not a record object")
    return items


_DICT = {dict}


def read_records(envelope: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The records of a list endpoint's OK envelope: its ``data``, a list of objects."""
    return _records(envelope.get("data"))


def read_object(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """The ``data`` object of a single-object endpoint's OK envelope."""
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise DecodeError(f"reply data is not an object but {type(data).__name__}")
    return data


def _read_page_count(reply: Mapping[str, Any]) -> RawPage:
    """Style A: ``page_size`` is the page number, ``page_length`` its length, and the reply
    gives ``page_count``."""
    try:
        items = reply["data"]
        number = int(reply["page_size"])
        length = int(reply["page_length"])
        page_count = int(reply["page_count"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DecodeError(f"page reply lacks pagination fields: {exc!r}") from None
    return _page(items, number, length, page_count, None)


def _read_total(reply: Mapping[str, Any]) -> RawPage:
    """Style B (rollcall): the reply's ``data`` holds the records, ``current``, ``size`` and
    the ``total`` across pages, from which the page count follows."""
    try:
        body = reply["data"]
        items = body["data"]
        number = int(body["current"])
        length = int(body["size"])
        total = int(body["total"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DecodeError(f"page reply lacks pagination fields: {exc!r}") from None
    return _page(items, number, length, math.ceil(total / length) if length > 0 else 0, total)


def _page(items: object, number: int, length: int, page_count: int, total: int | None) -> RawPage:
    records = _records(items)
    if records and length < 1:
        raise DecodeError(f"page reply holds records but a page length of {length}")
    return RawPage(records, number, length, page_count, total)


@attrs.frozen
class PageStyle:
    """How an endpoint paginates: which parameters ask for a page, and ``read``, which turns
    an OK envelope into a :class:`RawPage` trusting the reply, never the request."""

    name: str
    page_param: str
    length_param: str
    max_length: int | None
    read: Callable[[Mapping[str, Any]], RawPage] = attrs.field(repr=False)


PAGE_COUNT = PageStyle("page_count", "page_size", "page_length", None, _read_page_count)
#: At most 500 records per page.
TOTAL = PageStyle("total", "page_index", "page_num", 500, _read_total)


@attrs.frozen
class Endpoint:
    """One collect endpoint, described as data."""

    name: str
    path: str
    params: tuple[Param, ...]
    model: type
    #: The reply's ``data`` is a list of records (else one object).
    many: bool = False
    paging: PageStyle | None = None
    method: Literal["GET", "POST"] = "GET"
    #: The parameter that carries the account id.
    account_param: str = "userid"
    #: On POST, also send the parameters as a JSON body.
    json_body: bool = False
    #: Alternative parameter sets: at least one group must be complete.
    one_of: tuple[tuple[str, ...], ...] = ()
    #: Dotted field paths whose values identify a record (for de-duplication).
    key_fields: tuple[str, ...] = ()
    summary: str = ""
    #: ``key_fields`` split at the dots once, not for every record.
    _key_paths: tuple[tuple[str, ...], ...] = attrs.field(init=False, repr=False, eq=False)

    @_key_paths.default
    def _split_key_fields(self) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(dotted.split(".")) for dotted in self.key_fields)

    def prepare(self, userid: str, params: Mapping[str, object]) -> dict[str, str | int]:
        """Validate ``params`` and render them for the wire; nothing is sent on failure."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(known) - {self.account_param})
        if unknown:
            raise InvalidRequestError(
                f"unknown parameter(s) {', '.join(unknown)} for {self.name}; "
                f"expected {', '.join(sorted(known))}",
                endpoint=self.name,
                params=params,
            )
        given = {k: v for k, v in params.items() if v is not None and v != ""}
        missing = [p.name for p in self.params if p.required and p.name not in given]
        if missing:
            raise InvalidRequestError(
                f"missing required parameter(s) {', '.join(missing)} for {self.name}",
                endpoint=self.name,
                params=params,
            )
        if self.one_of and not any(all(n in given for n in group) for group in self.one_of):
            choices = " or ".join("+".join(group) for group in self.one_of)
            raise InvalidRequestError(
                f"{self.name} needs {choices}", endpoint=self.name, params=params
            )
        rendered: dict[str, str | int] = {self.account_param: userid}
        try:
            for name, value in given.items():
                rendered[name] = known[name].render(value)
        except InvalidRequestError as exc:  # a bad date or number: said like any other
            exc.locate(self.name, params, 0)
            raise
        if self.paging is not None:
            self._check_paging(rendered, params)
        return rendered

    def _check_paging(
        self, rendered: Mapping[str, str | int], params: Mapping[str, object]
    ) -> None:
        assert self.paging is not None
        for name in (self.paging.page_param, self.paging.length_param):
            value = rendered.get(name)
            if isinstance(value, int) and value < 1:
                raise InvalidRequestError(
                    f"{name} must be at least 1, not {value}", endpoint=self.name, params=params
                )
        length = rendered.get(self.paging.length_param)
        cap = self.paging.max_length
        if cap is not None and isinstance(length, int) and length > cap:
            raise InvalidRequestError(
                f"{self.paging.length_param} must be at most {cap}, not {length}",
                endpoint=self.name,
                params=params,
            )

    def record_key(self, record: Mapping[str, Any]) -> tuple[Any, ...]:
        """The natural key of one wire record (see ``key_fields``)."""
        values: list[Any] = []
        for path in self._key_paths:
            value: Any = record
            for part in path:
                # JSON decoders give plain dicts; the ``Mapping`` ABC check is many times
                # slower and, for every field of every record, was a sixth of a harvest's
                # CPU (benchmarks/).
                if type(value) is dict or isinstance(value, Mapping):
                    value = value.get(part)
                else:
                    value = None
            values.append(value)
        return tuple(values)

    def page_keys(self, records: Sequence[Mapping[str, Any]]) -> list[Hashable]:
        """Keys that tell the records of a page apart exactly as :meth:`record_key` does:
        its tuples, or, where the key is one field, that field's values (cheaper to make,
        hash and compare: this runs for every record a harvest fetches)."""
        paths = self._key_paths
        if len(paths) != 1:
            return [self.record_key(r) for r in records]
        if len(paths[0]) == 1:
            try:
                return list(map(_dict_get, records, repeat(paths[0][0], len(records))))
            except TypeError:  # not all plain dicts
                pass
        return [self.record_key(r)[0] for r in records]


# dict.get unbound: raises TypeError on anything but a dict, where a Mapping needs its own get.
_dict_get: Callable[[Any, str], Any] = dict.get


def _p(name: str, required: bool = False, fmt: ParamFormat = "text") -> Param:
    return Param(name, required, fmt)


_ROOM = _p("roomid", True)
_LIVE = _p("liveid", True)
_STYLE_A = (_p("page_size", fmt="int"), _p("page_length", fmt="int"))

ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint(
            "max_parallel",
            "/collect/max_parallel/",
            (_p("liveid"), _p("start_time", fmt="date"), _p("end_time", fmt="date")),
            models.MaxParallel,
            one_of=(("liveid",), ("start_time", "end_time")),
            summary="peak concurrent viewers of a live, or of the account over days",
        ),
        Endpoint(
            "user_count",
            "/collect/live/usercount/",
            (_LIVE,),
            models.LiveUserCount,
            summary="cumulative viewers of a live",
        ),
        Endpoint(
            "duration",
            "/collect/live/duration/",
            (_LIVE,),
            models.LiveDuration,
            summary="actual duration of a live",
        ),
        Endpoint(
            "access",
            "/collect/live/user/record/",
            (_ROOM, _LIVE, _p("viewerid")),
            models.AccessRecord,
            many=True,
            # A stay: one viewer may enter at the same second from two devices (or two tabs of
            # one), and the reply holds all records at once, so no page overlap repeats one.
            key_fields=("viewerid", "enter_time", "exit_time", "ip", "platform"),
            summary="viewer enter/exit records of a live (one reply holds all)",
        ),
        Endpoint(
            "chat",
            "/collect/live/chat/record/",
            (_ROOM, _LIVE),
            models.ChatRecord,
            many=True,
            key_fields=("id",),
            summary="chat messages of a live (one reply holds all)",
        ),
        Endpoint(
            "lives",
            "/collect/live/record",
            (
                _p("roomid"),
                _p("start_time", True, "minute"),
                _p("end_time", True, "minute"),
                *_STYLE_A,
            ),
            models.LiveRecord,
            many=True,
            paging=PAGE_COUNT,
            key_fields=("liveid",),
            summary="the account's lives that started in a window",
        ),
        Endpoint(
            "brainstorm",
            "/collect/brainstom/record",  # sic: the vendor's spelling
            (_ROOM, _p("liveid"), *_STYLE_A),
            models.BrainstormRecord,
            many=True,
            paging=PAGE_COUNT,
            key_fields=("publish_data.brainsstom_id",),
            summary="brainstorm questions and answers of a room or live",
        ),
        Endpoint(
            "vote",
            "/collect/vote/record",
            (_ROOM, _p("liveid"), *_STYLE_A),
            models.VoteRecord,
            many=True,
            paging=PAGE_COUNT,
            key_fields=("publish_data.vote_id",),
            summary="votes and ballots of a room or live",
        ),
        Endpoint(
            "answercard",
            "/collect/answercard/record",
            (_ROOM, _p("liveid"), *_STYLE_A),
            models.AnswerCardRecord,
            many=True,
            paging=PAGE_COUNT,
            key_fields=("publish_data.qvote_id",),
            summary="answer cards (quizzes) and answers of a room or live",
        ),
        Endpoint(
            "reward",
            "/collect/reward/record",
            (_ROOM, _LIVE, *_STYLE_A),
            models.RewardRecord,
            many=True,
            paging=PAGE_COUNT,
            key_fields=("uid", "reward_time", "type"),
            summary="rewards handed out in a live",
        ),
        Endpoint(
            "summary",
            "/collect/live/gather",
            (_ROOM, _LIVE),
            models.LiveSummary,
            summary="summary of a live: viewers by location and platform",
        ),
        Endpoint(
            "client_info",
            "/collect/room/client/info",
            (_ROOM, _p("viewerid")),
            models.ClientInfo,
            many=True,
            key_fields=("userid", "submit_time"),
            summary="device reports of a room's web viewers",
        ),
        Endpoint(
            "rollcall",
            "/openapi/collect/rollcall/get",
            (
                _p("live_id", True),
                _p("page_index", True, "int"),
                _p("page_num", True, "int"),
            ),
            models.RollcallRecord,
            many=True,
            paging=TOTAL,
            method="POST",
            account_param="account_id",
            json_body=True,
            key_fields=("roll_call_id", "user_id"),
            summary="roll-call answers of a live",
        ),
    )
}


def endpoint(name: str) -> Endpoint:
    """Look an endpoint up by name, with an error that lists the known names."""
    try:
        return ENDPOINTS[name]
    except KeyError:
        raise InvalidRequestError(
            f"unknown endpoint {name!r}; known: {', '.join(ENDPOINTS)}"
        ) from None
