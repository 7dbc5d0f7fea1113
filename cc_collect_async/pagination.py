"""Walking paginated endpoints: typed pages, and ``async for`` over every item.

The walk trusts what the server says, never what was asked: a server that caps the page
length answers page 1 with fewer items and a larger page count, and the walk follows the
reported length and count. If the reported length changes between pages the walk realigns
on the item offset, so no item is skipped or repeated; it never asks for a page past the
last one the latest reply announced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from typing import Any, Generic, Protocol, TypeVar

import attrs

from .converter import structure
from .endpoints import RawPage
from .errors import DecodeError

__all__ = ["Page", "Paginated", "typed_page", "walk_pages"]

T = TypeVar("T")


class _PageLike(Protocol):
    """What a walk reads from a page: a :class:`Page` or a :class:`RawPage`."""

    @property
    def items(self) -> Sequence[Any]: ...

    @property
    def length(self) -> int: ...

    @property
    def page_count(self) -> int: ...


P = TypeVar("P", bound=_PageLike)
#: Fetches page ``number`` of ``length`` items.
FetchPage = Callable[[int, int], Awaitable[P]]

#: How often the reported page length may change during one walk before we give up on it.
_MAX_REALIGNMENTS = 3


@attrs.frozen
class Page(Generic[T]):
    """One page of typed records, with the position the server reported for it."""

    items: tuple[T, ...]
    number: int
    length: int
    page_count: int
    #: Item count across all pages, where the server reports one (rollcall); else None.
    total: int | None = None

    @property
    def is_last(self) -> bool:
        return self.number >= self.page_count


def typed_page(raw: RawPage, model: type[T]) -> Page[T]:
    """``raw`` with its records structured into ``model`` (a ``DecodeError`` if one does not
    fit)."""
    return Page(
        tuple(structure(item, model) for item in raw.items),
        raw.number,
        raw.length,
        raw.page_count,
        raw.total,
    )


async def walk_pages(
    fetch: FetchPage[P], *, page: int = 1, length: int, endpoint: str | None = None
) -> AsyncIterator[P]:
    """Yield ``page`` and every later page once, in order, items de-overlapped (``endpoint``
    names the endpoint in the error of a walk that cannot align)."""
    skip = 0
    realignments = 0
    while True:
        reply = await fetch(page, length)
        # A length of 0 comes only with no items (an empty result): nothing to realign on.
        if reply.length != length and reply.length > 0:
            # Pages were numbered by a length the server no longer uses: find the page that
            # holds the next unseen item under the reported length. On page 1 that is the
            # page just fetched (a server cap, the common case); later it means asking again.
            offset = (page - 1) * length + skip
            length = reply.length
            aligned_page, skip = divmod(offset, length)
            if aligned_page + 1 != page:
                realignments += 1
                if realignments > _MAX_REALIGNMENTS:
                    raise DecodeError(
                        "the server keeps changing its page length", endpoint=endpoint
                    )
                page = aligned_page + 1
                continue
        if skip:
            # Both page classes are attrs classes; the protocol cannot say so.
            reply = attrs.evolve(reply, items=reply.items[skip:])  # type: ignore[misc]
            skip = 0
        yield reply
        if page >= reply.page_count:
            return
        page += 1


class Paginated(Generic[T]):
    """A paginated call. ``await`` it for one typed :class:`Page`; ``async for`` over it for
    every item from that page to the last; :meth:`pages` for every page.

    ``fetch`` returns typed pages and ``fetch_raw`` wire ones; each reads its page inside the
    request path, so a record that does not fit is retried there like a garbled body.
    """

    def __init__(
        self,
        fetch: FetchPage[Page[T]],
        fetch_raw: FetchPage[RawPage],
        *,
        page: int,
        length: int,
        endpoint: str | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._fetch = fetch
        self._fetch_raw = fetch_raw
        self._page = page
        self._length = length

    def __await__(self) -> Generator[Any, None, Page[T]]:
        return self._fetch(self._page, self._length).__await__()

    def raw_pages(self) -> AsyncIterator[RawPage]:
        """Every page as wire dicts, for lossless export."""
        return walk_pages(
            self._fetch_raw, page=self._page, length=self._length, endpoint=self._endpoint
        )

    def pages(self) -> AsyncIterator[Page[T]]:
        """Every page, typed."""
        return walk_pages(
            self._fetch, page=self._page, length=self._length, endpoint=self._endpoint
        )

    async def _items(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.items:
                yield item

    def __aiter__(self) -> AsyncIterator[T]:
        return self._items()
