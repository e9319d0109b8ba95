"""Fetch hooks: the ordered list of objects that see every attempt at a
request on its way to a node and every answer on its way back (what
Scrapy's downloader middlewares do).

A fetch hook is any object with some of (each sync or ``async``)::

    def on_request(self, request, node) -> None | Request | Response
    def on_response(self, request, response) -> None | Response | Request
    def on_error(self, request, error) -> None | Response | Request

``on_request`` runs for each attempt once the balancer has chosen its node
(``node`` is its name; a failover to another node runs it again there), in
list order; ``on_response`` and ``on_error`` run in reverse order, as the
answer comes back out through the layers. What they return:

* ``None``: go on unchanged.
* a :class:`~crawlmesh.Request`: from ``on_request``, the same URL and method
  (changed headers, body, session...) go on as this attempt; any other
  request *replaces* the one being fetched: the original ends as a counted
  filter (``replaced_by_hook``) and the new one is scheduled afresh, past
  the duplicate filter. The same URL replaced more than
  ``hook_max_replacements`` times fails as ``hook_loop``.
* a :class:`~crawlmesh.Response`: the answer, as if fetched (from
  ``on_request``: nothing is sent; from ``on_error``: the error is recovered).
* raising :class:`~crawlmesh.DropRequest`: the request ends as a counted
  filter (``dropped_by_hook``).

A hook that raises anything else, returns something else, or (an ``async``
one) takes longer than ``hook_timeout`` fails the request (kind ``hook_error`` or
``hook_timeout``, naming the hook): it goes to its errback and the errors
file like any failed request, and is not retried.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Sequence
from typing import Any

import trio

from .._exceptions import CrawlmeshError, DropRequest, FetchError
from .._request import Request
from .._response import Response
from ._call import Method, methods

__all__ = ["FetchHooks", "HookReplaced"]

_MEMO = 65536  # URLs whose replacements are counted, before the count restarts


class HookReplaced(CrawlmeshError):
    """Internal: a hook replaced the request being fetched with ``request``."""

    def __init__(self, request: Request, hook: str) -> None:
        super().__init__(f"replaced by {hook}")
        self.request = request
        self.hook = hook


class FetchHooks:
    """Runs the fetch hooks (see the module).

    Args:
        objects: the hooks, in order.
        timeout: seconds one hook call may take.
        max_replacements: replacements of one URL before it fails as a loop.
        errors: where hook failures are counted, by ``Class.method``.
    """

    def __init__(
        self,
        objects: Sequence[object] = (),
        *,
        timeout: float = 30.0,
        max_replacements: int = 10,
        errors: Counter[str] | None = None,
    ) -> None:
        self.objects = tuple(objects)
        self._on_request = methods(self.objects, "on_request")
        self._on_response = methods(self.objects, "on_response")[::-1]
        self._on_error = methods(self.objects, "on_error")[::-1]
        self.active = bool(self._on_request or self._on_response or self._on_error)
        """Whether any hook is defined (else the balancer stage skips them)."""
        self._timeout = timeout
        self._max = max_replacements
        self._replaced: Counter[str] = Counter()
        self.errors: Counter[str] = Counter() if errors is None else errors

    async def before(self, request: Request, node: str) -> Request | Response:
        """``on_request`` of each hook: the request to send, or the answer.

        Raises:
            HookReplaced: a hook gave another request.
            DropRequest: a hook dropped it.
            FetchError: a hook failed (``hook_error``, ``hook_timeout``).
        """
        for method in self._on_request:
            out = await self._call(method, request, request, node)
            if out is None:
                continue
            if isinstance(out, Response):
                return out
            if isinstance(out, Request):
                if out.url == request.url and out.method == request.method:
                    request = out
                    continue
                raise self._replace(request, out, method)
            raise self._wrong(method, out, request, "None, a Request or a Response")
        return request

    async def after(self, request: Request, response: Response) -> Response:
        """``on_response`` of each hook, last first: the response to hand on.

        Raises:
            HookReplaced, DropRequest, FetchError: as :meth:`before`.
        """
        for method in self._on_response:
            out = await self._call(method, request, request, response)
            if out is None:
                continue
            if isinstance(out, Response):
                response = out
            elif isinstance(out, Request):
                raise self._replace(request, out, method)
            else:
                raise self._wrong(method, out, request, "None, a Response or a Request")
        return response

    async def failed(self, request: Request, error: FetchError) -> Response | None:
        """``on_error`` of each hook, last first: a response that recovers
        the request, or None (the error stands).

        Raises:
            HookReplaced, DropRequest, FetchError: as :meth:`before`.
        """
        for method in self._on_error:
            out = await self._call(method, request, request, error)
            if out is None:
                continue
            if isinstance(out, Response):
                return out
            if isinstance(out, Request):
                raise self._replace(request, out, method)
            raise self._wrong(method, out, request, "None, a Response or a Request")
        return None

    async def _call(self, method: Method, request: Request, *args: Any) -> Any:
        try:
            if not method.is_async:
                # A plain function cannot be interrupted (it holds the event
                # loop until it returns): no deadline to set, and none to pay
                # for (a cancel scope costs several µs).
                out = method.fn(*args)
                if not inspect.isawaitable(out):
                    return out
                with trio.fail_after(self._timeout):
                    return await out
            with trio.fail_after(self._timeout):
                return await method.fn(*args)
        except (DropRequest, HookReplaced):
            raise
        except trio.TooSlowError:
            self.errors[method.name] += 1
            raise FetchError(
                f"{method.name} took longer than hook_timeout ({self._timeout:g} s)",
                request=request,
                kind="hook_timeout",
            ) from None
        except Exception as exc:
            self.errors[method.name] += 1
            raise FetchError(
                f"{method.name} raised {type(exc).__name__}: {exc}",
                request=request,
                kind="hook_error",
            ) from exc

    def _wrong(self, method: Method, out: object, request: Request, expected: str) -> FetchError:
        self.errors[method.name] += 1
        return FetchError(
            f"{method.name} returned {type(out).__name__}; expected {expected}",
            request=request,
            kind="hook_error",
        )

    def _replace(self, request: Request, new: Request, method: Method) -> CrawlmeshError:
        count = self._replaced
        if len(count) >= _MEMO:
            count.clear()
        count[new.url] += 1
        if count[new.url] > self._max:
            self.errors[method.name] += 1
            return FetchError(
                f"{method.name} replaced {new.url} more than {self._max} times "
                "(hook_max_replacements)",
                request=request,
                kind="hook_loop",
            )
        return HookReplaced(new, method.name)
