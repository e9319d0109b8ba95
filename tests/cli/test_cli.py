"""The ``crawlmesh`` command line, run as the real console script in a subprocess.

Every run has its current directory set to a temporary project whose
``./spiders/`` holds the spider modules, so the spider module is resolved
from the current directory (``spiders.follow`` finds ``./spiders/follow.py``).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

import crawlmesh

ROOT = Path(__file__).resolve().parents[2]
ITEM_PAGES = 667  # pages 0..1999 divisible by 3 carry a span.sku
BROKEN_LINKS = 200  # /missing/<n> for every n divisible by 10
STATS_LINE = re.compile(
    r"^crawl (?P<reason>\w+) in [\d.]+ s: (?P<pages>\d+) pages \([\d.]+ pages/s\), "
    r"(?P<items>\d+) items, (?P<errors>\d+) errors$",
    re.M,
)


def run_cli(
    cli: Path, *args: str | os.PathLike[str], cwd: Path, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``crawlmesh ARGS`` to the end (killed if it outlives ``timeout``)."""
    return subprocess.run(
        [str(cli), *map(str, args)],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stats_of(stderr: str) -> dict[str, Any]:
    """The figures of the final stats block on stderr."""
    matches = list(STATS_LINE.finditer(stderr))
    assert len(matches) == 1, f"expected one stats line on stderr:\n{stderr[-3000:]}"
    m = matches[0]
    return {
        "reason": m["reason"],
        **{k: int(m[k]) for k in ("pages", "items", "errors")},
    }


def json_lines(text: str) -> list[Any]:
    """Decode every line; the text must be whole lines only."""
    if not text:
        return []
    assert text.endswith("\n"), f"torn last line: {text[-200:]!r}"
    return [json.loads(line) for line in text.splitlines()]


def assert_usage_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """One clear line on stderr, exit status 2, nothing on stdout, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    line = lines[0]
    assert line.startswith("crawlmesh: error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


# -- spider modules and settings files the tests write ------------------------

NO_SPIDER = """\
from crawlmesh import Spider  # the base class itself is not a spider
from spiders.follow import Follow  # imported from elsewhere: not defined here

HELPER = 1
"""

TWO_SPIDERS = """\
from crawlmesh import Request, Spider


class Alpha(Spider):
    start_url = ""

    async def start(self):
        yield Request(self.start_url)

    def parse(self, response):
        yield {"spider": type(self).__name__}


class Beta(Alpha):
    pass
"""

RAISES_ON_IMPORT = """\
raise RuntimeError("kaboom while importing")
"""

MISSING_DEPENDENCY = """\
import no_such_dependency_xyz  # noqa: F401
"""

SYNTAX_ERROR = """\
def broken(:
    pass
"""

SETTINGS_ECHO = """\
from crawlmesh import Request, Spider


class Echo(Spider):
    custom_settings = {"max_pages": 9, "parse_workers": 4, "timeouts.connect": 4}
    start_url = ""

    async def start(self):
        yield Request(self.start_url)

    def parse(self, response):
        s = self.settings
        yield {
            "concurrency": s.concurrency,
            "concurrency_per_domain": s.concurrency_per_domain,
            "max_pages": s.max_pages,
            "parse_workers": s.parse_workers,
            "timeouts.read": s.timeouts.read,
            "timeouts.connect": s.timeouts.connect,
            "robots.obey": s.robots.obey,
        }
"""


@pytest.fixture
def project(cli_project: Path) -> Path:
    spiders = cli_project / "spiders"
    for name, source in {
        "nospider": NO_SPIDER,
        "two": TWO_SPIDERS,
        "boom": RAISES_ON_IMPORT,
        "needsdep": MISSING_DEPENDENCY,
        "syntax": SYNTAX_ERROR,
        "echo": SETTINGS_ECHO,
    }.items():
        (spiders / f"{name}.py").write_text(source)
    (cli_project / "bad.toml").write_text("concurrency = \n")
    (cli_project / "unknown.toml").write_text("concurency = 3\n")
    (cli_project / "unknown_nested.toml").write_text("[timeouts]\nreed = 3\n")
    return cli_project


# -- user mistakes: one line, exit status 2 ----------------------------------

USAGE_ERRORS = [
    pytest.param(
        ["crawl", "spiders.nope"], ["no module named 'spiders.nope'"], id="unknown-module"
    ),
    pytest.param(
        ["crawl", "nosuchpackage_xyz.books"],
        ["no module named 'nosuchpackage_xyz.books'"],
        id="unknown-package",
    ),
    pytest.param(
        ["crawl", "spiders/missing.py"], ["no such spider file", "missing.py"], id="unknown-file"
    ),
    pytest.param(
        ["crawl", "spiders.nospider"],
        ["'spiders.nospider'", "defines no Spider subclass"],
        id="no-spider",
    ),
    pytest.param(
        ["crawl", "spiders.two"],
        ["'spiders.two'", "several spiders", "Alpha", "Beta", "spiders.two:<Class>"],
        id="two-spiders-without-class",
    ),
    pytest.param(
        ["crawl", "spiders.two:Gamma"],
        ["'spiders.two'", "no Spider class 'Gamma'", "found: Alpha, Beta"],
        id="unknown-class",
    ),
    pytest.param(
        ["crawl", "spiders.boom"],
        ["'spiders.boom'", "RuntimeError", "kaboom while importing"],
        id="raises-on-import",
    ),
    pytest.param(
        ["crawl", "spiders.needsdep"],
        ["importing 'spiders.needsdep' failed", "no_such_dependency_xyz"],
        id="missing-dependency",
    ),
    pytest.param(
        ["crawl", "spiders.syntax"],
        ["importing 'spiders.syntax' failed", "SyntaxError"],
        id="syntax-error",
    ),
    pytest.param(
        ["crawl", "spiders.follow", "-s", "concurency=3"],
        ["unknown setting 'concurency'", "did you mean 'concurrency'?"],
        id="unknown-setting",
    ),
    pytest.param(
        ["crawl", "spiders.follow", "-s", "timeouts.reed=3"],
        ["unknown setting 'timeouts.reed'", "did you mean 'timeouts.read'?"],
        id="unknown-nested-setting",
    ),
    pytest.param(
        ["crawl", "spiders.follow", "-s", "concurrency=abc"],
        ["'concurrency'", "'abc'", "Expected int"],
        id="bad-value",
    ),
    pytest.param(
        ["crawl", "spiders.follow", "-s", "concurrency=0"],
        ["'concurrency'", ">= 1"],
        id="out-of-range-value",
    ),
    pytest.param(
        ["crawl", "spiders.follow", "-s", "robots.obey=perhaps"],
        ["'robots.obey'", "Expected bool"],
        id="bad-bool",
    ),
    pytest.param(
        ["crawl", "spiders.follow", "-s", "concurrency"],
        ["-s 'concurrency'", "expected KEY=VALUE"],
        id="bad-s-without-equals",
    ),
    pytest.param(
        ["crawl", "spiders.follow", "--settings", "/nonexistent.toml"],
        ["cannot read settings file '/nonexistent.toml'", "No such file or directory"],
        id="unreadable-settings-file",
    ),
    pytest.param(
        ["crawl", "spiders.follow", "--settings", "bad.toml"],
        ["'bad.toml'", "not valid TOML", "line 1"],
        id="invalid-toml",
    ),
    pytest.param(
        ["crawl", "spiders.follow", "--settings", "unknown.toml"],
        ["settings file unknown.toml", "unknown setting 'concurency'", "'concurrency'"],
        id="settings-file-unknown-key",
    ),
    pytest.param(
        ["crawl", "spiders.follow", "--settings", "unknown_nested.toml"],
        ["settings file unknown_nested.toml", "unknown setting 'timeouts.reed'"],
        id="settings-file-unknown-nested-key",
    ),
    pytest.param(
        ["crawl", "spiders.follow", "-a", "start_url"],
        ["-a 'start_url'", "expected NAME=VALUE"],
        id="bad-a-without-equals",
    ),
    pytest.param(
        ["crawl", "spiders.follow", "-a", "=http://x/"],
        ["expected NAME=VALUE"],
        id="bad-a-without-name",
    ),
    pytest.param(
        ["crawl", "spiders.follow", "--max-pages", "-1"],
        ["--max-pages must be >= 0"],
        id="negative-max-pages",
    ),
    pytest.param(
        ["crawl", "spiders.follow", "-o", "/nonexistent/dir/items.jsonl"],
        ["cannot open output file '/nonexistent/dir/items.jsonl'"],
        id="unwritable-output",
    ),
    pytest.param(
        ["crawl", "spiders.follow", "--errors", "/nonexistent/dir/errors.jsonl"],
        ["cannot open errors file '/nonexistent/dir/errors.jsonl'"],
        id="unwritable-errors-file",
    ),
]


@pytest.mark.parametrize(("args", "fragments"), USAGE_ERRORS)
def test_user_mistake_is_one_line_and_status_2(
    crawlmesh_cli: Path,
    project: Path,
    cli_env: dict[str, str],
    args: list[str],
    fragments: list[str],
) -> None:
    result = run_cli(crawlmesh_cli, *args, cwd=project, env=cli_env)
    assert_usage_error(result, *fragments)


def test_unknown_module_names_the_directory_searched(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str]
) -> None:
    result = run_cli(crawlmesh_cli, "crawl", "spiders.nope", cwd=project, env=cli_env)
    assert_usage_error(result, f"looked in {os.path.realpath(project)}")


def test_usage_errors_are_checked_before_anything_is_written(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str]
) -> None:
    out = project / "items.jsonl"
    result = run_cli(
        crawlmesh_cli,
        "crawl",
        "spiders.follow",
        "-o",
        out,
        "-s",
        "concurency=3",
        cwd=project,
        env=cli_env,
    )
    assert_usage_error(result, "'concurency'")
    assert not out.exists()


def test_debug_shows_the_traceback_of_a_usage_error(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str]
) -> None:
    result = run_cli(crawlmesh_cli, "crawl", "spiders.nope", "--debug", cwd=project, env=cli_env)
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "SpiderLoadError" in result.stderr


# -- spider resolution from the current directory -----------------------------


def crawl_one_page(
    cli: Path, spider: str, site_url: str, *, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``crawl SPIDER -a start_url=SITE/p/0 --max-pages 1`` in ``cwd``."""
    args = ["crawl", spider, "-a", f"start_url={site_url}/p/0", "--max-pages", "1"]
    return run_cli(cli, *args, cwd=cwd, env=env)


def assert_one_item_from(result: subprocess.CompletedProcess[str], cls: str) -> None:
    """The crawl succeeded, and its one item names the spider class ``cls``."""
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [{"spider": cls}]


def bare_project(root: Path) -> Path:
    """A project with ``spiders/two.py`` and no ``__init__.py``."""
    project = root / "bare"
    (project / "spiders").mkdir(parents=True)
    (project / "spiders" / "two.py").write_text(TWO_SPIDERS)
    return project


def test_class_suffix_picks_one_of_several_spiders(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_process_url: str
) -> None:
    for cls in ("Alpha", "Beta"):
        result = crawl_one_page(
            crawlmesh_cli, f"spiders.two:{cls}", site_process_url, cwd=project, env=cli_env
        )
        assert_one_item_from(result, cls)


def test_spider_module_is_resolved_from_the_current_directory(
    crawlmesh_cli: Path,
    project: Path,
    tmp_path: Path,
    cli_env: dict[str, str],
    site_process_url: str,
) -> None:
    here = crawl_one_page(
        crawlmesh_cli, "spiders.two:Beta", site_process_url, cwd=project, env=cli_env
    )
    assert_one_item_from(here, "Beta")
    # The same command from another directory does not find ./spiders/two.py.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    there = crawl_one_page(
        crawlmesh_cli, "spiders.two:Beta", site_process_url, cwd=elsewhere, env=cli_env
    )
    assert_usage_error(there, "no module named 'spiders.two'", f"looked in {elsewhere}")


def test_spiders_directory_without_init_is_found(
    crawlmesh_cli: Path, tmp_path: Path, cli_env: dict[str, str], site_process_url: str
) -> None:
    project = bare_project(tmp_path)
    result = crawl_one_page(
        crawlmesh_cli, "spiders.two:Alpha", site_process_url, cwd=project, env=cli_env
    )
    assert_one_item_from(result, "Alpha")


def test_current_directory_wins_over_a_spiders_package_on_the_python_path(
    crawlmesh_cli: Path, tmp_path: Path, cli_env: dict[str, str], site_process_url: str
) -> None:
    project = bare_project(tmp_path)
    other = tmp_path / "other"
    (other / "spiders").mkdir(parents=True)
    (other / "spiders" / "__init__.py").write_text("")
    (other / "spiders" / "two.py").write_text(
        "from crawlmesh import Spider\n\n\nclass Unrelated(Spider):\n    pass\n"
    )
    env = {**cli_env, "PYTHONPATH": os.pathsep.join([cli_env["PYTHONPATH"], str(other)])}
    result = crawl_one_page(
        crawlmesh_cli, "spiders.two:Alpha", site_process_url, cwd=project, env=env
    )
    assert_one_item_from(result, "Alpha")


def test_spider_given_as_a_file_path(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_process_url: str
) -> None:
    result = crawl_one_page(
        crawlmesh_cli, "spiders/two.py:Beta", site_process_url, cwd=project, env=cli_env
    )
    assert_one_item_from(result, "Beta")


# -- happy paths ---------------------------------------------------------------


def test_crawl_items_on_stdout_logs_and_stats_on_stderr(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_process_url: str
) -> None:
    result = run_cli(
        crawlmesh_cli,
        "crawl",
        "spiders.follow",
        "-a",
        f"start_url={site_process_url}/p/0",
        "-s",
        "concurrency_per_domain=32",
        cwd=project,
        env=cli_env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # stdout holds items and nothing else: every line is one JSON object.
    items = json_lines(result.stdout)
    assert all(isinstance(item, dict) and set(item) == {"sku", "url"} for item in items)
    skus = [item["sku"] for item in items]
    assert len(skus) == len(set(skus)) == ITEM_PAGES
    assert set(skus) == {f"SKU-{n:06d}" for n in range(0, 2000, 3)}
    # Logs and stats go to stderr.
    assert "pages/s" in result.stderr
    assert "pages/s" not in result.stdout
    stats = stats_of(result.stderr)
    assert stats == {
        "reason": "finished",
        "pages": 2000 + 1 + BROKEN_LINKS,  # the tree, /list and the 404s
        "items": ITEM_PAGES,
        "errors": BROKEN_LINKS,
    }
    assert "kind=http_error" in result.stderr  # the 404 warnings are logged


def test_output_and_errors_files(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_process_url: str
) -> None:
    out, errors = project / "out" / "items.jsonl", project / "out" / "errors.jsonl"
    out.parent.mkdir()
    result = run_cli(
        crawlmesh_cli,
        "crawl",
        "spiders.follow",
        "-a",
        f"start_url={site_process_url}/p/0",
        "-o",
        out,
        "--errors",
        errors,
        "-s",
        "concurrency_per_domain=32",
        cwd=project,
        env=cli_env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == ""
    items = json_lines(out.read_text())
    assert len({item["sku"] for item in items}) == len(items) == ITEM_PAGES
    records = json_lines(errors.read_text())
    assert len(records) == BROKEN_LINKS
    for record in records:
        assert record["kind"] == "http_error"
        assert record["status"] == 404
        assert record["reason"] == "HTTP 404"
        assert re.fullmatch(re.escape(site_process_url) + r"/missing/\d*0", record["url"])
        assert record["depth"] >= 1
        assert record["time"] > 0
    assert len({r["url"] for r in records}) == BROKEN_LINKS
    assert stats_of(result.stderr)["errors"] == BROKEN_LINKS


def test_overrides_are_applied(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_process_url: str
) -> None:
    result = run_cli(
        crawlmesh_cli,
        "crawl",
        "spiders.echo",
        "-a",
        f"start_url={site_process_url}/p/0",
        "-s",
        "concurrency_per_domain=64",
        "-s",
        "robots.obey=false",
        cwd=project,
        env=cli_env,
    )
    assert result.returncode == 0, result.stderr
    [item] = json_lines(result.stdout)
    assert item["concurrency_per_domain"] == 64
    assert item["robots.obey"] is False
    # An effect of robots.obey=false: robots.txt was never fetched.
    assert "robots.txt fetched 0" in result.stderr


def test_settings_layers_file_then_custom_settings_then_s(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_process_url: str
) -> None:
    (project / "crawl.toml").write_text(
        "concurrency = 5\nmax_pages = 7\nparse_workers = 3\n"
        "[timeouts]\nread = 12\nconnect = 2\n"
        "[robots]\nobey = false\n"
    )
    result = run_cli(
        crawlmesh_cli,
        "crawl",
        "spiders.echo",
        "-a",
        f"start_url={site_process_url}/p/0",
        "--settings",
        "crawl.toml",
        "-s",
        "parse_workers=6",
        "-s",
        "timeouts.read=13",
        cwd=project,
        env=cli_env,
    )
    assert result.returncode == 0, result.stderr
    [item] = json_lines(result.stdout)
    assert item == {
        "concurrency": 5,  # the file alone
        "concurrency_per_domain": 8,  # the default
        "max_pages": 9,  # custom_settings over the file
        "parse_workers": 6,  # -s over custom_settings and the file
        "timeouts.read": 13.0,  # -s over the file
        "timeouts.connect": 4.0,  # custom_settings (dotted) over the file's table
        "robots.obey": False,  # the file's table
    }


def test_max_pages_from_settings_file_and_from_s(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_process_url: str
) -> None:
    (project / "crawl.toml").write_text("max_pages = 7\n")
    base = ["crawl", "spiders.follow", "-a", f"start_url={site_process_url}/p/0"]
    from_file = run_cli(crawlmesh_cli, *base, "--settings", "crawl.toml", cwd=project, env=cli_env)
    assert from_file.returncode == 0, from_file.stderr
    assert stats_of(from_file.stderr)["pages"] == 7
    from_s = run_cli(
        crawlmesh_cli,
        *base,
        "--settings",
        "crawl.toml",
        "-s",
        "max_pages=4",
        cwd=project,
        env=cli_env,
    )
    assert from_s.returncode == 0, from_s.stderr
    assert stats_of(from_s.stderr)["pages"] == 4


@pytest.mark.parametrize("n", [1, 25])
def test_max_pages_option(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_process_url: str, n: int
) -> None:
    result = run_cli(
        crawlmesh_cli,
        "crawl",
        "spiders.follow",
        "-a",
        f"start_url={site_process_url}/p/0",
        "--max-pages",
        str(n),
        cwd=project,
        env=cli_env,
    )
    assert result.returncode == 0, result.stderr
    stats = stats_of(result.stderr)
    assert stats["reason"] == "max_pages"
    assert stats["pages"] == n
    items = json_lines(result.stdout)
    assert len(items) == stats["items"] <= n


def test_spider_arguments_become_attributes(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], site_process_url: str
) -> None:
    # The start URL comes only from -a; with another page the items differ.
    result = run_cli(
        crawlmesh_cli,
        "crawl",
        "spiders.follow",
        "-a",
        f"start_url={site_process_url}/p/3?x=a=b",
        "--max-pages",
        "1",
        cwd=project,
        env=cli_env,
    )
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [
        {"sku": "SKU-000003", "url": f"{site_process_url}/p/3?x=a=b"}
    ]


def test_demo_to_a_file(crawlmesh_cli: Path, tmp_path: Path, cli_env: dict[str, str]) -> None:
    out = tmp_path / "books.jsonl"
    result = run_cli(crawlmesh_cli, "demo", "-o", out, cwd=ROOT, env=cli_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    items = json_lines(out.read_text())
    assert len(items) == 200
    assert len({item["sku"] for item in items}) == 200
    assert all(set(item) == {"title", "price", "sku", "url"} for item in items)
    assert "serving a 200-book shop" in result.stderr
    assert stats_of(result.stderr)["items"] == 200


def test_demo_to_stdout(crawlmesh_cli: Path, cli_env: dict[str, str]) -> None:
    result = run_cli(crawlmesh_cli, "demo", cwd=ROOT, env=cli_env)
    assert result.returncode == 0, result.stderr
    items = json_lines(result.stdout)
    assert len(items) == 200
    assert len({item["sku"] for item in items}) == 200
    assert "pages/s" in result.stderr


def test_demo_from_any_directory(
    crawlmesh_cli: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    out = tmp_path / "books.jsonl"
    result = run_cli(crawlmesh_cli, "demo", "-o", out, cwd=tmp_path, env=cli_env)
    assert result.returncode == 0, result.stderr
    assert len(json_lines(out.read_text())) == 200


def test_reader_of_stdout_going_away_is_not_an_error(
    crawlmesh_cli: Path, project: Path, cli_env: dict[str, str], slow_site_url: str
) -> None:
    """`crawlmesh crawl ... | head -1`: exit 0, no traceback."""
    proc = subprocess.Popen(
        [
            str(crawlmesh_cli),
            "crawl",
            "spiders.follow",
            "-a",
            f"start_url={slow_site_url}/p/0",
        ],
        cwd=project,
        env=cli_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert json.loads(first)["sku"] == "SKU-000000"
        proc.stdout.close()  # the reader goes away while the crawl goes on
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = stderr.decode()
    assert "Traceback" not in text, text[-3000:]
    assert proc.returncode == 0, text[-3000:]


def test_version(crawlmesh_cli: Path, project: Path, cli_env: dict[str, str]) -> None:
    result = run_cli(crawlmesh_cli, "--version", cwd=project, env=cli_env)
    assert result.returncode == 0
    assert result.stdout == f"crawlmesh {crawlmesh.__version__}\n"
    assert crawlmesh.__version__ == importlib.metadata.version("crawlmesh")
