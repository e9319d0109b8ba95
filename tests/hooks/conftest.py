from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from crawlmesh import open_site_server
from sites import GeneratedSite

from .shop import PAGES


@pytest.fixture
def shop() -> GeneratedSite:
    return GeneratedSite(PAGES)


@pytest.fixture
async def shop_url(shop: GeneratedSite) -> AsyncIterator[str]:
    async with open_site_server(shop.handle) as base:
        yield base
