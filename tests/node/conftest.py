"""Node service fixtures (helpers in nodes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from crawlmesh import open_site_server
from node.nodes import NodeProc, TargetSite, node_process


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProc]:
    """A node that may fetch from loopback (--allow-private), default limits."""
    with node_process(tmp_path_factory.mktemp("node"), "--allow-private") as n:
        yield n


@pytest.fixture
def target() -> TargetSite:
    return TargetSite()


@pytest.fixture
async def target_url(target: TargetSite) -> AsyncIterator[str]:
    async with open_site_server(target.handle) as base:
        yield base


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as c:
        yield c
