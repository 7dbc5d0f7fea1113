"""The live listing: every live of a window, each once, page by page through
``/collect/live/record``. The harvest plans its units from it and ``cc-collect lives``
prints it; both walk it here.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable

from ..client import CollectClient
from ..errors import AuthError, CollectError
from .plan import Live, Window

__all__ = ["list_lives"]

#: What to do when one room's listing fails after its retries: told the room (None for
#: "every room") and the error. The other rooms are still listed.
ListingFailed = Callable[[str | None, CollectError], None]


async def list_lives(
    client: CollectClient,
    window: Window,
    failed: ListingFailed,
    *,
    page_length: int = 1000,
) -> AsyncGenerator[Live, None]:
    """Yield each live that started in ``window`` once, in the server's order, room by room
    when the window names rooms.

    A live can be listed twice (a page boundary that moved while records were added, or the
    same live under two of the window's rooms); it is yielded the first time only. A room
    whose listing fails is handed to ``failed`` and the walk goes on with the next room; a
    rejected authentication ends the walk (``AuthError``): no other room would fare better.
    """
    listed: set[str] = set()
    for room in window.rooms or (None,):
        pages = client.paginate(
            "lives",
            length=page_length,
            start_time=window.since,
            end_time=window.until,
            roomid=room,
        )
        try:
            async for page in pages.raw_pages():
                for record in page.items:
                    live = Live.from_record(record)
                    if live.liveid not in listed:
                        listed.add(live.liveid)
                        yield live
        except AuthError:
            raise
        except CollectError as exc:
            failed(room, exc)
