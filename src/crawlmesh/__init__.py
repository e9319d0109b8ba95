"""crawlmesh: a Trio streaming crawl framework with a built-in load balancer.

The public API is what this module exports; everything in ``_``-prefixed
modules is private.
"""

import typing as _typing

from ._cli import SiteRequest as SiteRequest
from ._cli import SiteResponse as SiteResponse
from ._cli import crawl as crawl
from ._cli import open_site_server as open_site_server
from ._cli import run_engine as run_engine
from ._engine import Engine as Engine
from ._exceptions import BlockedAddress as BlockedAddress
from ._exceptions import CircuitOpen as CircuitOpen
from ._exceptions import ConnectFailed as ConnectFailed
from ._exceptions import ConnectionBroken as ConnectionBroken
from ._exceptions import CrawlmeshError as CrawlmeshError
from ._exceptions import DecodingFailed as DecodingFailed
from ._exceptions import DropItem as DropItem
from ._exceptions import DropRequest as DropRequest
from ._exceptions import FetchError as FetchError
from ._exceptions import FetchTimeout as FetchTimeout
from ._exceptions import HookError as HookError
from ._exceptions import HttpError as HttpError
from ._exceptions import InvalidURL as InvalidURL
from ._exceptions import NotTextResponse as NotTextResponse
from ._exceptions import RedirectError as RedirectError
from ._exceptions import RequestError as RequestError
from ._exceptions import ResponseTooLarge as ResponseTooLarge
from ._exceptions import SettingsError as SettingsError
from ._exceptions import SpiderLoadError as SpiderLoadError
from ._exceptions import UsageError as UsageError
from ._feeds import ErrorRecord as ErrorRecord
from ._feeds import JsonLinesWriter as JsonLinesWriter
from ._forms import FormRequest as FormRequest
from ._hooks import Event as Event
from ._hooks import Events as Events
from ._hooks import ItemDropped as ItemDropped
from ._hooks import ItemScraped as ItemScraped
from ._hooks import RequestDropped as RequestDropped
from ._hooks import RequestFailed as RequestFailed
from ._hooks import RequestScheduled as RequestScheduled
from ._hooks import ResponseReceived as ResponseReceived
from ._hooks import SpiderClosed as SpiderClosed
from ._hooks import SpiderOpened as SpiderOpened
from ._items import Field as Field
from ._items import Item as Item
from ._links import Link as Link
from ._links import LinkExtractor as LinkExtractor
from ._observe import CrawlStats as CrawlStats
from ._observe import Distribution as Distribution
from ._observe import DomainStats as DomainStats
from ._observe import NodeShare as NodeShare
from ._observe import NodeStats as NodeStats
from ._observe import stats_schema as stats_schema
from ._request import Request as Request
from ._resilience import BanRules as BanRules
from ._resilience import RetryPolicy as RetryPolicy
from ._response import Headers as Headers
from ._response import Response as Response
from ._settings import BalancerSettings as BalancerSettings
from ._settings import BreakerSettings as BreakerSettings
from ._settings import HealthSettings as HealthSettings
from ._settings import MetricsSettings as MetricsSettings
from ._settings import NodeSpec as NodeSpec
from ._settings import RobotsSettings as RobotsSettings
from ._settings import Settings as Settings
from ._settings import ThrottleSettings as ThrottleSettings
from ._settings import Timeouts as Timeouts
from ._shaping import RateRule as RateRule
from ._spider import Spider as Spider
from ._spiders import CrawlSpider as CrawlSpider
from ._spiders import Rule as Rule
from ._spiders import SitemapEntry as SitemapEntry
from ._spiders import SitemapSpider as SitemapSpider
from ._transport import ApiTransport as ApiTransport
from ._transport import DirectTransport as DirectTransport
from ._transport import FetchOptions as FetchOptions
from ._transport import NodeTransport as NodeTransport
from ._transport import ProxyTransport as ProxyTransport
from ._transport import TimeoutRule as TimeoutRule
from ._transport import Transport as Transport
from ._util._lazy import lazy_exports as _lazy_exports
from ._util._version import __version__ as __version__

if _typing.TYPE_CHECKING:
    from ._node import NodeConfig as NodeConfig
    from ._node import NodeService as NodeService
    from ._node import serve_node as serve_node

# The node service's stack (Starlette, hypercorn, prometheus-client) loads on
# first use: a crawl process does not pay ~0.1 s and its memory for it.
_LAZY = frozenset({"NodeConfig", "NodeService", "serve_node"})


__getattr__, __dir__ = _lazy_exports(__name__, "._node", _LAZY, globals())
