"""The public API is exactly what crawlmesh/__init__.py re-exports."""

from __future__ import annotations

import crawlmesh
import crawlmesh.pipelines  # (a public submodule: an attribute once imported)

EXPECTED = {
    "BlockedAddress", "CircuitOpen", "ConnectFailed", "ConnectionBroken", "CrawlStats",
    "CrawlmeshError", "DecodingFailed",
    "DirectTransport", "Engine", "ErrorRecord", "FetchError", "FetchOptions", "FetchTimeout",
    "Headers", "HttpError", "InvalidURL", "JsonLinesWriter", "NotTextResponse", "RedirectError",
    "Request",
    "RequestError", "Response", "ResponseTooLarge", "RobotsSettings", "Settings",
    "SettingsError", "SiteRequest", "SiteResponse", "Spider", "SpiderLoadError", "Timeouts",
    "Transport", "UsageError", "crawl", "open_site_server", "run_engine",
    "BalancerSettings", "HealthSettings", "MetricsSettings", "NodeSpec", "NodeStats",
    "ApiTransport", "NodeTransport", "ProxyTransport", "TimeoutRule",
    "BanRules", "BreakerSettings", "RateRule", "RetryPolicy", "ThrottleSettings",
    "NodeConfig", "NodeService", "serve_node",
    "Distribution", "DomainStats", "NodeShare", "stats_schema",
    "DropItem", "DropRequest", "HookError", "Event", "Events", "ItemDropped", "ItemScraped",
    "RequestDropped", "RequestFailed", "RequestScheduled", "ResponseReceived", "SpiderClosed",
    "SpiderOpened", "pipelines", "FormRequest", "Item", "Field",
    "CrawlSpider", "Link", "LinkExtractor", "Rule",
    "SitemapEntry", "SitemapSpider",
}  # fmt: skip


def test_public_names() -> None:
    public = {name for name in dir(crawlmesh) if not name.startswith("_")}
    assert public == EXPECTED


def test_every_error_derives_from_crawlmesh_error() -> None:
    for name in EXPECTED:
        obj = getattr(crawlmesh, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, crawlmesh.CrawlmeshError), name


def test_public_objects_say_they_are_public() -> None:
    for name in EXPECTED:
        obj = getattr(crawlmesh, name)
        if isinstance(obj, type):
            assert obj.__doc__, f"{name} has no docstring"


def test_every_exception_class_in_the_package_is_in_the_tree() -> None:
    import importlib
    import inspect
    import pkgutil

    found = []
    for info in pkgutil.walk_packages(crawlmesh.__path__, "crawlmesh."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
            ):
                found.append(name)
                assert issubclass(obj, crawlmesh.CrawlmeshError), f"{info.name}.{name}"
    assert {"NodeFault", "NodesBusy", "NotPersistable", "StaleConnection"} <= set(found)
