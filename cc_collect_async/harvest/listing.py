"""The live listing: every live of a window, each once, page by page through
``/collect/live/record``. The harvest plans its units from it and ``cc-collect lives``
prints it; both walk it here.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

from ..client import CollectClient
from ..errors import AuthError, CollectError
from .plan import Live, Window

__all__ = ["list_live_pages", "list_lives"]

#: What to do when one room's listing fails after its retries: told the room (None for
#: "every room") and the error. The other rooms are still listed.
ListingFailed = Callable[[str | None, CollectError], None]


async def list_live_pages(
    client: CollectClient,
    window: Window,
    failed: ListingFailed,
    *,
    page_length: int = 1000,
) -> AsyncGenerator[list[Live], None]:
    """Yield the lives that started in ``window`` a listing page at a time, each live once,
    in the server's order, room by room when the window names rooms.

    A live can be listed twice (a page boundary that moved while records were added, or the
    same live under two of the window's rooms); it is yielded the first time only, so a page
    can come out shorter than the server's, or empty. A room whose listing fails is handed
    to ``failed`` and the walk goes on with the next room; a rejected authentication ends the
    walk (``AuthError``): no other room would fare better.
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
                fresh: list[Live] = []
                for record in page.items:
                    live = Live.from_record(record)
                    if live.liveid not in listed:
                        listed.add(live.liveid)
                        fresh.append(live)
                yield fresh
        except AuthError:
            raise
        except CollectError as exc:
            failed(room, exc)


async def list_lives(
    client: CollectClient,
    window: Window,
    failed: ListingFailed,
    *,
    page_length: int = 1000,
) -> AsyncGenerator[Live, None]:
    """Yield each live that started in ``window`` once: :func:`list_live_pages` a live at a
    time."""
    async with aclosing(list_live_pages(client, window, failed, page_length=page_length)) as pages:
        async for page in pages:
            for live in page:
                yield live
