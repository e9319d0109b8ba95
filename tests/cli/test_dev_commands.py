"""``crawlmesh fetch`` and ``crawlmesh parse``, run as the console script
against a small site served by the test itself (so the test sees what the
command sent: robots.txt first, the spider's user agent and headers).
"""

from __future__ import annotations

import gzip
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from crawlmesh import SiteRequest, SiteResponse, open_site_server

HTML = [("Content-Type", "text/html; charset=utf-8")]
LATIN1 = "<h1>Caf\u00e9</h1>".encode("latin-1")
GZIPPED = b"<html><title>zipped</title>" + b"z" * 2000 + b"</html>"


class DevSite:
    """robots.txt keeps crawlers out of /private; /echo answers with the
    request's headers; /shop links to three item pages that link on."""

    def __init__(self) -> None:
        self.hits: list[str] = []

    async def handle(self, request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
        path = request.target
        self.hits.append(path)
        if path == "/robots.txt":
            return SiteResponse(200, b"User-agent: *\nDisallow: /private\n")
        if path == "/echo":
            return SiteResponse(200, json.dumps(request.headers).encode(), [])
        if path == "/gzip":
            headers = [*HTML, ("Content-Encoding", "gzip")]
            return SiteResponse(200, gzip.compress(GZIPPED), headers)
        if path == "/big":
            return SiteResponse(200, b"x" * (1 << 20), HTML)
        if path == "/latin1":
            return SiteResponse(200, LATIN1, [("Content-Type", "text/html; charset=iso-8859-1")])
        if path == "/shop":
            links = "".join(f"<a href='/item/{n}'>{n}</a>" for n in (1, 2, 3))
            return SiteResponse(200, f"<title>shop</title>{links}".encode(), HTML)
        if path.startswith("/item/"):
            n = int(path.rpartition("/")[2])
            body = f"<title>item {n}</title><b>{n * 10}</b><a href='/item/{n + 3}'>next</a>"
            return SiteResponse(200, body.encode(), HTML)
        return SiteResponse(404, b"gone here", HTML)


SPIDERS = """\
from crawlmesh import Response, Spider


class Shop(Spider):
    name = "shop"
    allowed_domains = ["127.0.0.1"]
    custom_settings = {
        "user_agent": "shop-dev/1.0",
        "default_headers": {"X-From": "custom-settings"},
    }
    label = "none"

    async def parse(self, response: Response):
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href, callback=self.parse_item)

    async def parse_item(self, response: Response):
        yield {"title": response.css("title::text").get(), "label": self.label}
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href, callback=self.parse_item)

    def parse_list(self, response: Response):
        return [{"n": 1}, {"n": 2}]  # a plain function returning a list

    def parse_one(self, response: Response):
        return {"only": response.url}  # one item, returned

    def parse_raises(self, response: Response):
        raise ValueError("bad page")
"""


@pytest.fixture
def dev_site() -> DevSite:
    return DevSite()


@pytest.fixture
async def site_url(dev_site: DevSite) -> AsyncIterator[str]:
    async with open_site_server(dev_site.handle) as base:
        yield base


@pytest.fixture
def project(cli_project: Path) -> Path:
    (cli_project / "spiders" / "shop.py").write_text(SPIDERS)
    return cli_project


async def run(
    cli: Path, *args: str, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(60):
        return await trio.run_process(
            [str(cli), *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


def lines(data: bytes) -> list[str]:
    return data.decode().splitlines()


# -- fetch ---------------------------------------------------------------------


async def test_fetch_prints_the_body_decoded_and_the_node_on_stderr(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_url: str, dev_site: DevSite
) -> None:
    result = await run(crawlmesh_cli, "fetch", f"{site_url}/gzip", cwd=project, env=cli_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == GZIPPED  # gunzipped, as a callback would see it
    assert lines(result.stderr) == [f"crawlmesh: {site_url}/gzip: HTTP 200 via node direct"]
    assert dev_site.hits == ["/robots.txt", "/gzip"]  # robots.txt first, as in a crawl

    # The bytes as fetched: a latin-1 page is not re-encoded.
    result = await run(crawlmesh_cli, "fetch", f"{site_url}/latin1", cwd=project, env=cli_env)
    assert result.stdout == LATIN1


async def test_fetch_into_a_pipe_closed_early_is_not_an_error(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_url: str
) -> None:
    # A 1 MiB body cannot fit a pipe's buffer: the write meets a closed pipe.
    with trio.fail_after(60):
        proc = await trio.lowlevel.open_process(
            [str(crawlmesh_cli), "fetch", f"{site_url}/big"],
            cwd=project,
            env=cli_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        assert proc.stderr is not None
        await proc.stdout.aclose()  # as `| head -c 0` would
        err = b""
        while chunk := await proc.stderr.receive_some():
            err += chunk
        await proc.stderr.aclose()
        assert await proc.wait() == 0, err
    assert lines(err) == [f"crawlmesh: {site_url}/big: HTTP 200 via node direct"]


async def test_fetch_headers_prints_the_status_line_and_headers(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_url: str
) -> None:
    result = await run(
        crawlmesh_cli, "fetch", "--headers", f"{site_url}/gzip", cwd=project, env=cli_env
    )
    assert result.returncode == 0, result.stderr
    out = lines(result.stdout)
    assert out[0] == "HTTP 200 OK"
    assert "content-type: text/html; charset=utf-8" in [line.lower() for line in out[1:]]
    assert GZIPPED not in result.stdout


async def test_fetch_an_http_error_prints_the_body_unless_fail(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_url: str
) -> None:
    result = await run(crawlmesh_cli, "fetch", f"{site_url}/nothing", cwd=project, env=cli_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"gone here"
    assert "HTTP 404" in result.stderr.decode()

    result = await run(
        crawlmesh_cli, "fetch", "--fail", f"{site_url}/nothing", cwd=project, env=cli_env
    )
    assert result.returncode == 1
    assert result.stdout == b""
    assert lines(result.stderr)[-1] == "crawlmesh: error: HTTP 404 Not Found"


async def test_fetch_obeys_robots_txt(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_url: str, dev_site: DevSite
) -> None:
    url = f"{site_url}/private/page"
    result = await run(crawlmesh_cli, "fetch", url, cwd=project, env=cli_env)
    assert result.returncode == 1
    assert result.stdout == b""
    assert lines(result.stderr) == [f"crawlmesh: error: {url} was not fetched: filtered (robots)"]
    assert "/private/page" not in dev_site.hits

    result = await run(
        crawlmesh_cli, "fetch", url, "-s", "robots.obey=false", cwd=project, env=cli_env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"gone here"


async def test_fetch_with_a_spider_uses_its_custom_settings(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_url: str
) -> None:
    plain = await run(crawlmesh_cli, "fetch", f"{site_url}/echo", cwd=project, env=cli_env)
    sent = json.loads(plain.stdout)
    assert sent["user-agent"].startswith("crawlmesh/")
    assert "x-from" not in sent

    for spider in ("shop", "spiders/shop.py:Shop"):
        result = await run(
            crawlmesh_cli, "fetch", "--spider", spider, f"{site_url}/echo", cwd=project, env=cli_env
        )
        assert result.returncode == 0, result.stderr
        sent = json.loads(result.stdout)
        assert sent["user-agent"] == "shop-dev/1.0"
        assert sent["x-from"] == "custom-settings"


async def test_fetch_through_the_node_mesh(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_url: str, proxy_url: str
) -> None:
    nodes = project / "nodes.toml"
    nodes.write_text(f'[[nodes]]\nname = "px"\nkind = "proxy"\nurl = "{proxy_url}"\n')
    result = await run(
        crawlmesh_cli, "fetch", "--nodes", str(nodes), "--headers", f"{site_url}/shop",
        cwd=project, env=cli_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert lines(result.stderr) == [f"crawlmesh: {site_url}/shop: HTTP 200 via node px"]
    assert any(line.lower().startswith("via:") for line in lines(result.stdout))


async def test_fetch_failure_is_one_line_and_status_1(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str]
) -> None:
    with trio.socket.socket() as sock:  # a port nothing listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await run(
        crawlmesh_cli, "fetch", f"http://127.0.0.1:{port}/", "-s", "robots.obey=false",
        "-s", "retry.max_attempts=1", cwd=project, env=cli_env,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == b""
    (line,) = lines(result.stderr)
    assert line.startswith(f"crawlmesh: error: fetching http://127.0.0.1:{port}/ failed: ")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["fetch", "example.com"],
            "'example.com' is not an http(s) URL (e.g. https://example.com)",
        ),
        (["fetch", "ftp://x/"], "'ftp://x/' is not an http(s) URL"),
        (["fetch", "http://x/", "--spider", "nosuch"], "no spider named 'nosuch'"),
        (["fetch", "http://x/", "-s", "USER_AGENT=x"], "did you mean 'user_agent'?"),
        (["parse", "http://127.0.0.1/", "--spider", "shop", "-c", "nope"], "no callback 'nope'"),
        (["parse", "http://127.0.0.1/", "--spider", "shop", "--depth", "0"], "--depth"),
        (["parse", "http://elsewhere.example/"], "no spider's allowed_domains take"),
    ],
)
async def test_developer_command_mistakes_are_one_line(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], args: list[str], fragment: str
) -> None:
    result = await run(crawlmesh_cli, *args, cwd=project, env=cli_env)
    assert result.returncode == 2, result.stderr
    assert result.stdout == b""
    (line,) = lines(result.stderr)
    assert line.startswith("crawlmesh: error: ")
    assert fragment in line


# -- parse ---------------------------------------------------------------------


async def test_parse_prints_items_and_requests(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_url: str
) -> None:
    result = await run(
        crawlmesh_cli, "parse", f"{site_url}/item/1", "--spider", "shop", "-c", "parse_item",
        "-a", "label=dev", cwd=project, env=cli_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in lines(result.stdout)] == [
        {"title": "item 1", "label": "dev"}
    ]
    err = lines(result.stderr)
    assert f"crawlmesh: request GET {site_url}/item/4 -> parse_item (depth 1)" in err
    assert err[-1] == "crawlmesh: parse: 1 items, 1 requests (1 pages, depth 1)"


async def test_parse_requests_as_json_and_depth(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_url: str, dev_site: DevSite
) -> None:
    # The shop (the default callback, parse) links to items 1-3; at depth 2
    # their pages are parsed by parse_item; their links (items 4-6) are shown
    # but not fetched.
    result = await run(
        crawlmesh_cli,
        "parse",
        f"{site_url}/shop",
        "--depth",
        "2",
        "--requests",
        cwd=project,
        env=cli_env,
    )  # fmt: skip  (no --spider: the one whose allowed_domains take 127.0.0.1)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in lines(result.stdout)]
    requests = [r["request"] for r in records if "request" in r]
    items = [r for r in records if "request" not in r]
    assert sorted(i["title"] for i in items) == ["item 1", "item 2", "item 3"]
    assert {(r["url"].removeprefix(site_url), r["callback"], r["depth"]) for r in requests} == {
        *((f"/item/{n}", "parse_item", 1) for n in (1, 2, 3)),
        *((f"/item/{n}", "parse_item", 2) for n in (4, 5, 6)),
    }
    assert not {"/item/4", "/item/5", "/item/6"} & set(dev_site.hits)


@pytest.mark.parametrize(
    ("callback", "expected"),
    [("parse_list", [{"n": 1}, {"n": 2}]), ("parse_one", [{"only": "URL"}])],
)
async def test_parse_runs_callbacks_of_every_shape(
    crawlmesh_cli: Path,
    project: Path,
    cli_env: dict[str, str],
    site_url: str,
    callback: str,
    expected: list[dict[str, object]],
) -> None:
    url = f"{site_url}/shop"
    result = await run(
        crawlmesh_cli, "parse", url, "--spider", "shop", "-c", callback, cwd=project, env=cli_env
    )
    assert result.returncode == 0, result.stderr
    got = [json.loads(line) for line in lines(result.stdout)]
    assert got == json.loads(json.dumps(expected).replace('"URL"', json.dumps(url)))


async def test_parse_reports_a_failing_page_or_callback_with_status_1(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_url: str
) -> None:
    result = await run(
        crawlmesh_cli, "parse", f"{site_url}/nothing", "--spider", "shop", cwd=project, env=cli_env
    )
    assert result.returncode == 1
    assert result.stdout == b""
    assert f"crawlmesh: {site_url}/nothing failed (http_error): HTTP 404" in lines(result.stderr)

    result = await run(
        crawlmesh_cli, "parse", f"{site_url}/shop", "--spider", "shop", "-c", "parse_raises",
        cwd=project, env=cli_env,
    )  # fmt: skip
    assert result.returncode == 1
    assert "ValueError: bad page" in result.stderr.decode()
