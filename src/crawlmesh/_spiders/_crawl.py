"""CrawlSpider: a spider that follows links by rules.

Each :class:`Rule` pairs a :class:`~crawlmesh.LinkExtractor` with what to do
with the pages its links lead to. For every page, the rules run in order;
the first rule that extracts a link owns it (a link is requested once per
page), and the request records that rule's index in ``Request.rule``, so the
rule is found again, typed, when the response comes back (and after a
``--jobdir`` resume: the callbacks are spider methods, stored by name).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import structlog

from .._exceptions import SpiderLoadError
from .._links import Link, LinkExtractor
from .._request import Request
from .._spider import Spider
from .._util._callbacks import iterate_result

if TYPE_CHECKING:
    from .._exceptions import FetchError
    from .._response import Response

__all__ = ["CrawlSpider", "Rule", "warn_unmatched_rules", "warn_unused_rules"]

log = structlog.get_logger("crawlmesh.spider")

ProcessLinks = Callable[[list[Link]], Iterable[Link]]
ProcessRequest = Callable[[Request, "Response"], "Request | None"]


@dataclass(frozen=True, slots=True)
class Rule:
    """What a :class:`CrawlSpider` does with the links one extractor finds.

    Args:
        link_extractor: which links of a page the rule takes (default: every
            link :class:`~crawlmesh.LinkExtractor` finds with its defaults).
        callback: called with each response the rule's links lead to,
            ``callback(response, **cb_kwargs)``, as a request's callback is
            (sync or async, yielding or returning items and requests). A
            method name (``"parse_item"``) or a callable; a function of the
            spider's class is bound to the spider.
        cb_kwargs: keyword arguments for ``callback``.
        follow: whether the rules run again on those responses; by default
            they do when there is no callback and do not when there is one
            (as in Scrapy).
        process_links: called with the list of links the rule took from a
            page; returns the links to request (to filter or rewrite them).
        process_request: called with each request and the page it came
            from; returns the request to send (perhaps changed), or None to
            drop it.
        errback: called with the :class:`~crawlmesh.FetchError` when a
            request of this rule finally fails, as a request's errback is.
    """

    link_extractor: LinkExtractor = field(default_factory=LinkExtractor)
    callback: str | Callable[..., Any] | None = None
    cb_kwargs: Mapping[str, Any] | None = None
    follow: bool | None = None
    process_links: str | ProcessLinks | None = None
    process_request: str | ProcessRequest | None = None
    errback: str | Callable[..., Any] | None = None

    @property
    def follows(self) -> bool:
        """Whether the rules run again on the pages this rule leads to."""
        return self.callback is None if self.follow is None else self.follow


class _Bound(NamedTuple):
    """A rule with its names resolved to the spider's methods."""

    extractor: LinkExtractor
    callback: Callable[..., Any] | None
    cb_kwargs: dict[str, Any]
    follows: bool
    process_links: ProcessLinks | None
    process_request: ProcessRequest | None
    errback: Callable[..., Any] | None


class CrawlSpider(Spider):
    """A spider that follows links by :attr:`rules`.

    Its :meth:`parse` (the start URLs' callback) hands each start page to
    :meth:`parse_start_url` and then applies the rules to it. Do not override
    :meth:`parse`: the rules would not run on the start pages (the crawl
    warns about it). Write the rules' callbacks instead, and
    :meth:`parse_start_url` for items on the start pages.

    For every page the rules run on, each rule in order extracts its links;
    a link another rule took already on this page is skipped. The request
    for a link carries the rule's index (``Request.rule``); the response
    goes to the rule's callback, then, if the rule follows, the rules run on
    it too.

    Attributes:
        rules: the rules, in order of precedence.

    Raises:
        SpiderLoadError: (on creation) a rule names a method the spider does
            not have.
    """

    rules: Sequence[Rule] = ()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rules = [self._bind(i, rule) for i, rule in enumerate(self.rules)]
        self.rule_pages = 0
        """Pages the rules ran on (in this process)."""
        self.rule_links = 0
        """Links the rules' extractors took from them."""

    def _bind(self, index: int, rule: Rule) -> _Bound:
        def resolve(value: Any, role: str) -> Any:
            if value is None:
                return None
            if isinstance(value, str):
                method = getattr(self, value, None)
                if not callable(method):
                    raise SpiderLoadError(
                        f"{type(self).__name__}.rules[{index}]: the {role} {value!r} "
                        f"is not a method of {type(self).__name__}"
                    )
                return method
            name = getattr(value, "__name__", None)
            if name is not None and getattr(type(self), name, None) is value:
                return getattr(self, name)  # (a function of the class body: bind it)
            return value

        return _Bound(
            rule.link_extractor,
            resolve(rule.callback, "callback"),
            dict(rule.cb_kwargs or {}),
            rule.follows,
            resolve(rule.process_links, "process_links"),
            resolve(rule.process_request, "process_request"),
            resolve(rule.errback, "errback"),
        )

    def parse(self, response: Response) -> AsyncIterator[Any]:
        """The start URLs' callback: :meth:`parse_start_url`, then the rules."""
        return self._parse_with(response, self.parse_start_url, {}, follows=True)

    def parse_start_url(self, response: Response) -> Any:
        """Items (or requests) from a start page; none by default. Override it."""
        return None

    async def _follow_rule(self, response: Response) -> AsyncIterator[Any]:
        """The callback of every request a rule made."""
        bound = self._rule_of(response.request)
        async for out in self._parse_with(
            response, bound.callback, bound.cb_kwargs, follows=bound.follows
        ):
            yield out

    def _rule_failed(self, error: FetchError) -> Any:
        """The errback of the requests of a rule that has one."""
        errback = self._rule_of(error.request).errback
        return None if errback is None else errback(error)

    def _rule_of(self, request: Request | None) -> _Bound:
        index = None if request is None else request.rule
        if index is None or not 0 <= index < len(self._rules):
            raise LookupError(f"{type(self).__name__} has no rule {index!r} for {request!r}")
        return self._rules[index]

    async def _parse_with(
        self,
        response: Response,
        callback: Callable[..., Any] | None,
        cb_kwargs: dict[str, Any],
        *,
        follows: bool,
    ) -> AsyncIterator[Any]:
        if callback is not None:
            async for out in iterate_result(callback(response, **cb_kwargs)):
                yield out
        if follows:
            for request in self._requests_to_follow(response):
                yield request

    def _requests_to_follow(self, response: Response) -> Iterator[Request]:
        """One request per link the rules take from ``response``."""
        self.rule_pages += 1
        taken: set[str] = set()
        for index, bound in enumerate(self._rules):
            links = [
                link for link in bound.extractor.extract_links(response) if link.url not in taken
            ]
            self.rule_links += len(links)
            if bound.process_links is not None:
                links = list(bound.process_links(links))
            errback = None if bound.errback is None else self._rule_failed
            for link in links:
                if link.url in taken:
                    continue  # (process_links may repeat one)
                taken.add(link.url)
                request = Request(link.url, callback=self._follow_rule, errback=errback, rule=index)
                if bound.process_request is None:
                    yield request
                    continue
                processed = bound.process_request(request, response)
                if processed is not None:
                    yield processed


def warn_unused_rules(spider: Spider) -> None:
    """At the start of a crawl: one warning line for ``rules`` that will
    not run (a plain Spider's), or a CrawlSpider's own ``parse``, which
    keeps the rules off the start pages."""
    name = spider.name
    if not isinstance(spider, CrawlSpider):
        if getattr(spider, "rules", None) is not None:
            log.warning(
                "rules are only applied by CrawlSpider: subclass crawlmesh.CrawlSpider",
                spider=name,
            )
    elif type(spider).parse is not CrawlSpider.parse:
        log.warning(
            "a CrawlSpider overrides parse(): the rules do not run on the start pages "
            "(use parse_start_url() and the rules' callbacks instead)",
            spider=name,
        )


def warn_unmatched_rules(spider: Spider) -> None:
    """At the end of a crawl: one warning line if a CrawlSpider's rules
    took no link from any page they ran on."""
    if isinstance(spider, CrawlSpider) and spider.rule_pages and not spider.rule_links:
        log.warning(
            "the rules matched no link on any page",
            spider=spider.name,
            pages=spider.rule_pages,
            rules=len(spider.rules),
        )
