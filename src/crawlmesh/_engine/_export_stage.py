"""The export stage: items to the feeds (every item to each), and with a
backend each request's page of items as one batch, journaled as finished
with it (nothing between the two lets another page's items in).

An items file that cannot be written (a closed pipe, a full disk) stops the
crawl: nothing more could be delivered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import structlog
import trio

from .._hooks import Events, ItemScraped
from .._request import Request
from .._util._log import request_keys
from ._export import FeedSet
from ._ledger import Ledger
from ._records import Item, Page

__all__ = ["ExportStage"]

log = structlog.get_logger("crawlmesh.engine")


class ExportStage:
    """Writes items (see the module).

    Args:
        items: the feeds items go to.
        max_items: stop after this many items (0: no limit).
        ledger: the crawl's shared accounting.
        events: the crawl's events (``ItemScraped``).
    """

    def __init__(self, items: FeedSet, max_items: int, ledger: Ledger, events: Events) -> None:
        self._items = items
        self._events = events
        self._max_items = max_items
        self._ledger = ledger
        self._stats = ledger.stats
        self.output_error: OSError | None = None
        """Why the items file could not be written, if it could not."""
        self.debug = False  # log a line per dropped item (set by the engine's run())
        self.channel: trio.MemoryReceiveChannel[Item | Page] | None = None
        """What :meth:`flush_now` empties (the channel :meth:`run` reads)."""

    async def run(self, item_recv: trio.MemoryReceiveChannel[Item | Page]) -> None:
        """Export until ``item_recv`` closes."""
        async with item_recv:
            async for message in item_recv:
                if isinstance(message, Page):
                    self._export_page(message)
                else:
                    self._export_one(*message)

    def flush_now(self) -> int:
        """Write the items already queued for export, synchronously; returns
        how many were written."""
        written = 0
        recv = self.channel
        while recv is not None and self.output_error is None:
            try:
                message = recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            if isinstance(message, Page):
                written += self._export_page(message)
            elif self._export_one(*message):
                written += 1
        return written

    def cut_to(self, lengths: Mapping[str, int]) -> None:
        """Cut each feed to the length a backend committed for it, if longer."""
        cut = self._items.cut_to(lengths)
        if cut:
            log.info("items file cut to the last committed page", bytes=cut)

    def _export_page(self, page: Page) -> int:
        """Write a page's items, then journal it as finished, with nothing
        between that could let another page's items in; returns how many
        items were written."""
        if not page.finished:
            return 0  # cut off by the shutdown: fetched again, its items with it
        written = sum(self._export_one(item, page.request, page.domain) for item in page.items)
        if self.output_error is None:
            # (Items that could not be written leave the page to a resume.)
            self._ledger.finished(page.request)
        return written

    def _export_one(self, item: Any, request: Request, domain: str) -> bool:
        """Write one item; False if it was refused, over the limit or lost."""
        stats = self._stats
        max_items = self._max_items
        if max_items and stats.items >= max_items:
            stats.filtered["over_max_items"] += 1
            if self.debug:
                log.debug("item dropped: over max_items", **request_keys(request.url, domain))
            return False
        try:
            line = self._items.encode(item)
        except (TypeError, ValueError, msgspec.EncodeError) as exc:
            self._ledger.fail(
                request,
                "item_encode_error",
                f"item not encodable: {exc}",
                domain=domain,
                attempt=None,
            )
            return False
        if self.output_error is not None:
            stats.errors["output_error"] += 1
            return False
        try:
            self._items.write_line(line)
        except OSError as exc:
            # The reader went away (a closed pipe) or the disk is full:
            # nothing more can be delivered, so stop the crawl.
            self.output_error = exc
            stats.errors["output_error"] += 1
            log.error(
                "cannot write items; stopping", **request_keys(request.url, domain), error=str(exc)
            )
            self._ledger.request_stop("output_error")
            return False
        stats.item(domain)
        if self._events.wants(ItemScraped):
            self._events.emit(ItemScraped(item, request))
        if max_items and stats.items >= max_items:
            self._ledger.request_stop("max_items")
        return True
