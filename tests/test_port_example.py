"""The example project ported from Scrapy (examples/port-from-scrapy/): the
Scrapy original and the crawlmesh port crawl the same local shop and leave
the same CSV feed and the same SQLite table."""

from __future__ import annotations

import csv
import os
import re
import select
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "port-from-scrapy"


@pytest.fixture
def shop_url(crawlmesh_cli: Path) -> Iterator[str]:
    """``crawlmesh demo --serve 0``: the demo shop in its own process."""
    proc = subprocess.Popen(
        [str(crawlmesh_cli), "demo", "--serve", "0"], stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 30)
        assert ready, "the demo shop printed nothing within 30 s"
        line = proc.stderr.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        assert match, line
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return sorted(csv.DictReader(f), key=lambda row: row["sku"])


def _table(path: Path) -> list[tuple[str, str, float]]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute("SELECT sku, title, price FROM books"))


def test_the_port_leaves_what_the_scrapy_original_leaves(
    shop_url: str, crawlmesh_cli: Path, tmp_path: Path
) -> None:
    original = shutil.copytree(EXAMPLE / "scrapy", tmp_path / "scrapy")
    port = shutil.copytree(EXAMPLE / "crawlmesh", tmp_path / "crawlmesh")
    start = f"start_url={shop_url}/"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    scrapy = subprocess.run(
        [sys.executable, "-m", "scrapy", "crawl", "shop", "-a", start],
        cwd=original, env={**env, "PYTHONPATH": str(original)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert scrapy.returncode == 0, scrapy.stderr[-3000:]
    crawl = ["crawl", "shop", "--settings", "settings.toml", "-a", start, "-q"]
    ported = subprocess.run(
        [str(crawlmesh_cli), *crawl],
        cwd=port, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ported.returncode == 0, ported.stderr[-3000:]

    books = _rows(original / "books.csv")
    assert len(books) == 200  # every book of the demo shop
    assert {row["crawler"] for row in books} == {"books-port"}
    assert _rows(port / "books.csv") == books
    assert _table(port / "books.sqlite3") == _table(original / "books.sqlite3")
    assert len(_table(port / "books.sqlite3")) == 200
