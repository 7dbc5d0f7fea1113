"""What a harvest was asked for: the one description that a directory records, a rerun
compares, and messages quote.

Two runs resume each other only when their requests are the same harvest: the same window
(or list of lives), kinds and format. Rooms, lives and kinds are compared as sets, so the
order they were given in does not matter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

import attrs

from ..beijing import format_minute
from .plan import Window, parse_kinds

__all__ = ["FORMATS", "Format", "HarvestRequest"]

FORMATS: tuple[str, ...] = ("jsonl", "parquet")
Format = Literal["jsonl", "parquet"]


def _pairs(lives: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(roomid), str(liveid)) for roomid, liveid in lives)


def _iso(value: datetime) -> str:
    # ISO 8601 with the +08:00 offset: the manifest is read by other tools, not the vendor.
    return value.isoformat(timespec="minutes")


@attrs.frozen(kw_only=True)
class HarvestRequest:
    """What a harvest in a directory was asked for: a ``window`` or a list of ``lives``
    (``(roomid, liveid)`` pairs), the ``kinds`` and the file ``format``."""

    kinds: tuple[str, ...] = attrs.field(converter=parse_kinds)
    window: Window | None = None
    lives: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    format: Format = "jsonl"

    def __attrs_post_init__(self) -> None:
        if (self.window is None) == (not self.lives):
            raise ValueError("a harvest request has either a window or a list of lives")
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; choose from {', '.join(FORMATS)}")

    def to_json(self) -> dict[str, Any]:
        """The form recorded in ``manifest.json`` (times in ISO 8601, Beijing offset)."""
        window = self.window
        return {
            "window": None
            if window is None
            else {
                "since": _iso(window.since),
                "until": _iso(window.until),
                "rooms": list(window.rooms),
            },
            "lives": [{"roomid": r, "liveid": lv} for r, lv in self.lives] or None,
            "kinds": list(self.kinds),
            "format": self.format,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HarvestRequest:
        """The request a manifest recorded; ``ValueError`` when ``data`` is not one."""
        try:
            window = data.get("window")
            return cls(
                kinds=data["kinds"],
                window=None
                if window is None
                else Window(
                    datetime.fromisoformat(window["since"]),
                    datetime.fromisoformat(window["until"]),
                    window.get("rooms") or (),
                ),
                lives=[(lv["roomid"], lv["liveid"]) for lv in data.get("lives") or ()],
                format=data["format"],
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a harvest request: {exc!r}") from None

    def same_harvest(self, other: HarvestRequest) -> bool:
        """Whether a run of ``other`` may resume a directory of this request."""
        return self._identity() == other._identity()

    def _identity(self) -> tuple[Any, ...]:
        window = self.window
        return (
            None if window is None else (window.since, window.until, frozenset(window.rooms)),
            frozenset(self.lives),
            frozenset(self.kinds),
            self.format,
        )

    def describe(self) -> str:
        """A phrase for messages: the lives (window in Beijing time, or how many), the kinds
        and the format."""
        window = self.window
        if window is None:
            what = f"{len(self.lives)} live(s)"
        else:
            rooms = f", rooms {', '.join(window.rooms)}" if window.rooms else ""
            what = (
                f"lives started {format_minute(window.since)} to "
                f"{format_minute(window.until)} (Beijing time{rooms})"
            )
        return f"{what}; kinds {','.join(self.kinds)}; format {self.format}"
