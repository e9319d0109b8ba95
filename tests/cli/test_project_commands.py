"""The project commands (``genspider``, ``list``, ``runspider``, ``crawl
NAME``) and the answers to Scrapy's spellings, run as the console script."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.test_cli import assert_usage_error, json_lines, run_cli
from crawlmesh._cli._genspider import TEMPLATES, render, target_of
from crawlmesh._settings import SCRAPY_SETTINGS, _known_keys

TWINS = """\
from crawlmesh import Spider


class One(Spider):
    name = "twin"


class Two(Spider):
    name = "twin"


class Unnamed(Spider):  # runs as "unnamed"
    pass
"""


# -- genspider -----------------------------------------------------------------


def test_genspider_basic_writes_a_spider_that_crawls(
    crawlmesh_cli: Path, tmp_path: Path, cli_env: dict[str, str], site_process_url: str
) -> None:
    project = tmp_path / "fresh"
    project.mkdir()  # no spiders/ yet: genspider makes it
    start = f"{site_process_url}/p/0"
    made = run_cli(crawlmesh_cli, "genspider", "books", start, cwd=project, env=cli_env)
    assert made.returncode == 0, made.stderr
    assert made.stderr.splitlines() == [
        f"crawlmesh: note: {start} is a URL: the spider's domain is its host 127.0.0.1, "
        "the URL its start",
        "crawlmesh: wrote spiders/books.py (template basic); crawl it: crawlmesh crawl books",
    ]
    source = (project / "spiders" / "books.py").read_text()
    assert 'allowed_domains = ["127.0.0.1"]' in source
    assert f'start_urls = ["{start}"]' in source
    assert (project / "spiders" / "__init__.py").is_file()

    crawled = run_cli(
        crawlmesh_cli, "crawl", "books", "--max-pages", "3", "-q", cwd=project, env=cli_env
    )
    assert crawled.returncode == 0, crawled.stderr
    items = json_lines(crawled.stdout)
    assert len(items) == 3
    assert {"url": start, "title": "Page 0"} in items


def test_genspider_refuses_to_overwrite_without_force(
    crawlmesh_cli: Path, cli_project: Path, cli_env: dict[str, str]
) -> None:
    path = cli_project / "spiders" / "follow.py"
    before = path.read_text()
    result = run_cli(
        crawlmesh_cli, "genspider", "follow", "books.example", cwd=cli_project, env=cli_env
    )
    assert_usage_error(result, "spiders/follow.py exists (--force overwrites it)")
    assert path.read_text() == before

    result = run_cli(
        crawlmesh_cli, "genspider", "follow", "books.example", "--force", "-t", "crawl",
        cwd=cli_project, env=cli_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    source = path.read_text()
    assert "class FollowSpider(CrawlSpider):" in source
    assert 'start_urls = ["https://books.example/"]' in source


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["genspider", "my-books", "books.example"], "NAME 'my-books'"),
        (["genspider", "class", "books.example"], "NAME 'class'"),
        (["genspider", "_private", "books.example"], "NAME '_private'"),
        (["genspider", "books", "not a host"], "DOMAIN 'not a host' is not a host name"),
        (["genspider", "books", "books..example"], "is not a host name"),
        (["genspider", "books", "ftp://books.example/"], "not a host nor an http(s) URL"),
        (["genspider", "books", "books.example:http"], "is not a host name"),
    ],
)
def test_genspider_validates_name_and_domain(
    crawlmesh_cli: Path, cli_project: Path, cli_env: dict[str, str], args: list[str], fragment: str
) -> None:
    result = run_cli(crawlmesh_cli, *args, cwd=cli_project, env=cli_env)
    assert_usage_error(result, fragment)
    assert sorted(p.name for p in (cli_project / "spiders").iterdir()) == [
        "__init__.py",
        "follow.py",
    ]


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("domain", ["books.example", "127.0.0.1:8080", "https://a.example/x?y=1"])
def test_every_template_renders_valid_python(template: str, domain: str) -> None:
    source = render(template, "books_eu", target_of(domain))
    compile(source, f"{template}.py", "exec")
    assert "class BooksEuSpider(" in source
    assert 'name = "books_eu"' in source
    assert "$" not in source  # every placeholder filled


def test_domain_targets() -> None:
    assert target_of("Books.Example") == target_of("books.example")
    t = target_of("127.0.0.1:8080")
    assert (t.host, t.start_url, t.note) == ("127.0.0.1", "https://127.0.0.1:8080/", None)
    t = target_of("http://user:pw@shop.example:81/start?page=2")
    assert (t.host, t.origin, t.start_url) == (
        "shop.example",
        "http://shop.example:81",
        "http://shop.example:81/start?page=2",
    )
    assert t.note is not None
    assert "shop.example" in t.note


# -- list and crawl NAME -------------------------------------------------------


def test_list_prints_sorted_names_and_reports_broken_modules(
    crawlmesh_cli: Path, cli_project: Path, cli_env: dict[str, str]
) -> None:
    spiders = cli_project / "spiders"
    (spiders / "twins.py").write_text(TWINS)
    (spiders / "broken.py").write_text('raise RuntimeError("kaboom while importing")\n')
    (spiders / "_helpers.py").write_text('raise RuntimeError("a private module is not imported")\n')
    (spiders / "sub").mkdir()
    (spiders / "sub" / "__init__.py").write_text("")
    (spiders / "sub" / "deep.py").write_text(
        "from crawlmesh import Spider\n\nclass Deep(Spider):\n    name = 'deep'\n"
    )
    result = run_cli(crawlmesh_cli, "list", cwd=cli_project, env=cli_env)
    assert result.returncode == 1  # a module failed; the list is still whole
    assert result.stdout.splitlines() == ["deep", "follow", "twin", "unnamed"]
    err = result.stderr.splitlines()
    assert err[0] == (
        "crawlmesh: warning: importing 'spiders.broken' failed: "
        "RuntimeError: kaboom while importing"
    )
    assert err[1] == (
        "crawlmesh: warning: several spiders are named 'twin': spiders.twins:One, spiders.twins:Two"
    )
    assert len(err) == 2

    (spiders / "broken.py").unlink()
    result = run_cli(crawlmesh_cli, "list", cwd=cli_project, env=cli_env)
    assert result.returncode == 0


def test_list_without_a_spiders_directory(
    crawlmesh_cli: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    result = run_cli(crawlmesh_cli, "list", cwd=tmp_path, env=cli_env)
    assert_usage_error(result, "no spiders/ directory in", "crawlmesh genspider NAME DOMAIN")


def test_crawl_by_spider_name(
    crawlmesh_cli: Path, cli_project: Path, cli_env: dict[str, str], site_process_url: str
) -> None:
    (cli_project / "spiders" / "twins.py").write_text(TWINS)
    result = run_cli(
        crawlmesh_cli, "crawl", "follow", "-a", f"start_url={site_process_url}/p/0",
        "--max-pages", "4", "-q", cwd=cli_project, env=cli_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert {"sku": "SKU-000000", "url": f"{site_process_url}/p/0"} in json_lines(result.stdout)

    result = run_cli(crawlmesh_cli, "crawl", "twin", cwd=cli_project, env=cli_env)
    assert_usage_error(
        result, "several spiders are named 'twin': spiders.twins:One, spiders.twins:Two"
    )
    result = run_cli(crawlmesh_cli, "crawl", "nosuch", cwd=cli_project, env=cli_env)
    assert_usage_error(
        result, "no spider named 'nosuch' in spiders/ (known: follow, twin, unnamed)"
    )


def test_runspider_crawls_the_spider_of_a_file(
    crawlmesh_cli: Path, tmp_path: Path, cli_env: dict[str, str], site_process_url: str
) -> None:
    source = (Path(__file__).parents[1] / "cli_spiders" / "follow.py").read_text()
    (tmp_path / "lone.py").write_text(source)
    out = tmp_path / "items.jsonl"
    result = run_cli(
        crawlmesh_cli, "runspider", "lone.py", "-a", f"start_url={site_process_url}/p/0",
        "--max-pages", "4", "-o", out, "-q", cwd=tmp_path, env=cli_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert {"sku": "SKU-000000", "url": f"{site_process_url}/p/0"} in json_lines(out.read_text())

    result = run_cli(crawlmesh_cli, "runspider", "lone", cwd=tmp_path, env=cli_env)
    assert_usage_error(result, "runspider lone: expected a .py file")


# -- Scrapy's spellings --------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["startproject", "shop"],
            "crawlmesh has no startproject: a project is a directory with spiders/ "
            "(try `crawlmesh genspider NAME DOMAIN`)",
        ),
        (["version"], "try `crawlmesh --version`"),
        (["bench"], "bench/"),
        (["view", "http://x/"], "crawlmesh shell URL"),
        (["crawl", "follow", "-s", "CONCURRENT_REQUESTS=8"], "did you mean 'concurrency'?"),
        (["crawl", "follow", "-s", "ITEM_PIPELINES=[]"], "did you mean 'pipelines'?"),
        (["crawl", "follow", "-s", "HTTPCACHE_ENABLED=1"], "no HTTP cache yet"),
        (["crawl", "follow", "-s", "retry_times=2"], "did you mean 'retry.max_attempts'?"),
    ],
)
def test_scrapy_spellings_get_a_hint(
    crawlmesh_cli: Path, cli_project: Path, cli_env: dict[str, str], args: list[str], fragment: str
) -> None:
    result = run_cli(crawlmesh_cli, *args, cwd=cli_project, env=cli_env)
    assert_usage_error(result, fragment)


def test_scrapy_settings_table_points_at_real_settings() -> None:
    known = set(_known_keys())
    for scrapy_name, hint in SCRAPY_SETTINGS.items():
        assert scrapy_name.isupper(), scrapy_name
        if "did you mean" not in hint:
            continue
        target = hint.split("'")[1]
        assert target in known, (scrapy_name, target)
