"""The ready-made pipelines of crawlmesh.pipelines, alone and in a crawl."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from crawling import run_engine
from crawlmesh import DropItem, SettingsError
from crawlmesh.pipelines import CleanFields, Dedupe, Validate

from .shop import ITEMS, Shop, number


class Book(msgspec.Struct):
    title: str
    price: float


SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "price": {"type": "number", "minimum": 0}},
    "required": ["title", "price"],
}


@pytest.mark.parametrize("schema", [Book, SCHEMA], ids=["struct", "json-schema"])
def test_validate_keeps_good_items_and_drops_bad_ones(schema: Any) -> None:
    v = Validate(schema)
    good = {"title": "Dune", "price": 9.5}
    assert v.process_item(good, None) is good
    for bad in ({"title": "Dune"}, {"title": 3, "price": 1.0}, {"title": "x", "price": "free"}):
        with pytest.raises(DropItem) as info:
            v.process_item(bad, None)
        assert info.value.reason == "invalid"


def test_validate_can_hand_on_the_typed_item() -> None:
    @dataclass
    class Row:
        title: str
        price: float

    assert Validate(Book, convert=True).process_item(Row("Dune", 9.5), None) == Book("Dune", 9.5)


def test_a_bad_json_schema_fails_at_start_up() -> None:
    import jsonschema

    with pytest.raises(jsonschema.SchemaError):
        Validate({"type": "no-such-type"})


def test_validate_without_jsonschema_installed_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "jsonschema", None)  # as if not installed
    with pytest.raises(SettingsError, match=r"pip install 'crawlmesh\[jsonschema\]'"):
        Validate(SCHEMA)


def test_dedupe_by_field_fields_or_function() -> None:
    by_sku = Dedupe("sku")
    assert by_sku.process_item({"sku": "a"}, None) == {"sku": "a"}
    with pytest.raises(DropItem, match="duplicate item"):
        by_sku.process_item({"sku": "a", "other": 1}, None)
    assert by_sku.process_item({"title": "no sku"}, None) == {"title": "no sku"}
    pairs = Dedupe(["a", "b"])
    pairs.process_item({"a": 1, "b": 2}, None)
    pairs.process_item({"a": 1, "b": 3}, None)
    with pytest.raises(DropItem):
        pairs.process_item({"a": 1, "b": 2}, None)
    lower = Dedupe(lambda item: item["name"].lower())
    lower.process_item({"name": "Dune"}, None)
    with pytest.raises(DropItem):
        lower.process_item({"name": "DUNE"}, None)


def test_clean_fields_strips_collapses_and_leaves_out_empty_ones() -> None:
    item = {"title": "  A \n  Tale\t", "tags": [" x ", "", "  "], "note": "   ", "n": 3}
    assert CleanFields().process_item(item, None) == {"title": "A Tale", "tags": ["x"], "n": 3}
    only_title = CleanFields(["title"], keep_empty=True).process_item(item, None)
    assert only_title == {**item, "title": "A Tale"}


async def test_shipped_pipelines_in_a_crawl(shop_url: str, tmp_path: Path) -> None:
    # Every item's sku made the same for odd pages: the dedupe keeps one of them.
    class SameSku:
        def process_item(self, item: dict[str, Any], spider: object) -> dict[str, Any]:
            return {**item, "sku": "ODD"} if number(item) % 2 else item

    pipelines = [CleanFields(), Validate(Book), SameSku(), Dedupe("sku")]
    crawl, _ = await run_engine(
        Shop(shop_url, pipelines=pipelines), tmp_path, {"robots.obey": False}
    )
    odd = len([n for n in range(0, 60, 3) if n % 2])
    assert crawl.stats.items == ITEMS - odd + 1
    assert crawl.stats.items_dropped == {"duplicate item": odd - 1}
