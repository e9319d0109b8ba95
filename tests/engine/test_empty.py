"""Crawls that fetch nothing say why in one warning, and `crawlmesh crawl`
exits 6 for them unless --allow-empty; allowed_domains given as URLs or
with ports are taken as their hosts, with a warning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli.test_cli import run_cli
from crawling import Pages, run_spider
from crawlmesh import Spider
from sites import GeneratedSite

NO_ROBOTS = {"robots.obey": False, "progress_interval": 0}


def _warnings(logs: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in logs if e["log_level"] == "warning"]


async def test_allowed_domains_given_as_a_url_or_with_a_port_mean_their_host(
    generated_url: str, tmp_path: Path, warnings_logged: list[dict[str, Any]]
) -> None:
    spider = Pages([generated_url + "/p/0", generated_url + "/p/1"])
    port = generated_url.rpartition(":")[2]
    spider.allowed_domains = [generated_url + "/", f"127.0.0.1:{port}"]
    crawl = await run_spider(spider, tmp_path, **NO_ROBOTS)
    assert len(crawl.items) == 2
    assert crawl.stats.filtered == {}
    assert _warnings(warnings_logged) == [
        f"allowed_domains: '{generated_url}/' is not a domain; using '127.0.0.1' "
        "(a domain matches itself and its subdomains, on any port)",
        f"allowed_domains: '127.0.0.1:{port}' is not a domain; using '127.0.0.1' "
        "(a domain matches itself and its subdomains, on any port)",
    ]


@pytest.mark.parametrize(
    ("allowed", "obey", "expected"),
    [
        (
            ["shop.example"],
            False,
            "nothing was fetched: 1 filtered as offsite "
            "(allowed_domains = ['shop.example'] refuses them)",
        ),
        (
            [],
            True,
            "nothing was fetched: 1 filtered as robots "
            "(robots.txt disallows them (robots.obey = false to ignore it))",
        ),
    ],
    ids=["offsite", "robots"],
)
async def test_a_crawl_that_fetches_nothing_says_why(
    tmp_path: Path,
    warnings_logged: list[dict[str, Any]],
    allowed: list[str],
    obey: bool,
    expected: str,
) -> None:
    from crawlmesh import SiteResponse, open_site_server

    async def handle(request: Any, stream: Any) -> SiteResponse:
        if request.target == "/robots.txt":
            return SiteResponse(200, b"User-agent: *\nDisallow: /\n")
        return SiteResponse(200, b"<p>never asked for</p>")

    async with open_site_server(handle) as base:
        spider = Pages([base + "/a"])
        spider.allowed_domains = allowed
        crawl = await run_spider(spider, tmp_path, **{"robots.obey": obey})
    assert crawl.stats.pages == 0
    assert expected in _warnings(warnings_logged)


async def test_a_spider_with_no_start_request_is_told_so(
    tmp_path: Path, warnings_logged: list[dict[str, Any]]
) -> None:
    await run_spider(Spider(), tmp_path, **NO_ROBOTS)
    assert _warnings(warnings_logged) == [
        "nothing was fetched: the spider made no start request "
        "(start_urls empty, or start() yields nothing)"
    ]


async def test_a_crawl_whose_every_request_failed_counts_the_kinds(
    tmp_path: Path, warnings_logged: list[dict[str, Any]]
) -> None:
    site = GeneratedSite(1)
    from crawlmesh import open_site_server

    async with open_site_server(site.handle) as base:
        crawl = await run_spider(Pages([base + "/missing"]), tmp_path, **NO_ROBOTS)
    # A 404 is a page fetched: only a crawl that got no answer at all is empty.
    assert crawl.stats.pages == 1
    assert not [w for w in _warnings(warnings_logged) if w.startswith("nothing was fetched")]


def test_the_cli_exits_6_for_an_empty_crawl_unless_allowed(
    crawlmesh_cli: Path, cli_project: Path, cli_env: dict[str, str], site_process_url: str
) -> None:
    args = ["crawl", "spiders.follow", "-a", f"start_url={site_process_url}/p/0", "-q"]
    offsite = ["-s", "robots.obey=false", "-a", "allowed_domains=shop.example"]
    empty = run_cli(crawlmesh_cli, *args, *offsite, cwd=cli_project, env=cli_env)
    assert empty.returncode == 6, empty.stderr
    assert "nothing was fetched: 1 filtered as offsite" in empty.stderr
    allowed = run_cli(crawlmesh_cli, *args, *offsite, "--allow-empty", cwd=cli_project, env=cli_env)
    assert allowed.returncode == 0, allowed.stderr
    fine = run_cli(crawlmesh_cli, *args, "--max-pages", "3", cwd=cli_project, env=cli_env)
    assert fine.returncode == 0, fine.stderr
