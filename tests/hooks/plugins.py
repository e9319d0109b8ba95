"""Pipelines and hooks loaded by import path (``hooks.plugins:Name``)."""

from __future__ import annotations

from typing import Any


class Upper:
    """Upper-cases every item's title."""

    def process_item(self, item: dict[str, Any], spider: object) -> dict[str, Any]:
        return {**item, "title": item["title"].upper()}


class Tagger:
    """Adds the spider's name to every item, asynchronously."""

    async def process_item(self, item: dict[str, Any], spider: Any) -> dict[str, Any]:
        return {**item, "spider": spider.name}


NOT_A_CLASS = Upper()
"""An object used as it is."""
