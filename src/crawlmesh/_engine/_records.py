"""What the stages hand each other down the channels.

::

    dispatch ──Dispatched──▶ fetch ──Outcome──▶ parse ──Item | Page──▶ export
"""

from __future__ import annotations

from typing import Any

from .._exceptions import FetchError
from .._request import Request
from .._response import Response
from .._util._log import request_keys

__all__ = ["Dispatched", "Item", "Outcome", "Page", "Shutdown"]

Dispatched = tuple[str, Request]  # (domain, request)
Item = tuple[Any, Request, str]  # (item, the request whose callback produced it, its domain)


class Page:
    """With a backend that journals: one request's items, exported as one batch
    and journaled as finished with it (``finished``: False when a shutdown
    interrupted it, so a resume fetches it again)."""

    __slots__ = ("domain", "finished", "items", "request")

    def __init__(self, request: Request, domain: str) -> None:
        self.request = request
        self.domain = domain
        self.items: list[Any] = []
        self.finished = True


class Outcome:
    """What the fetch stage hands the parse stage (``attempt``: from 1)."""

    __slots__ = ("attempt", "domain", "error", "request", "response")

    def __init__(
        self,
        request: Request,
        response: Response | None,
        error: FetchError | None,
        domain: str,
        attempt: int = 1,
    ) -> None:
        self.request = request
        self.response = response
        self.error = error
        self.domain = domain
        self.attempt = attempt

    def log_keys(self) -> dict[str, Any]:
        """The request's keys for a log line about this outcome."""
        node = (
            self.response.node
            if self.response is not None
            else self.error.node
            if self.error
            else ""
        )
        return request_keys(self.request.url, self.domain, node, self.attempt)


class Shutdown(FetchError):
    """A fetch the shutdown deadline cut off (its request is fetched again on a resume)."""

    kind = "shutdown"
