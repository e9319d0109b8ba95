"""Typed items: Item/Field, dataclasses, attrs classes, msgspec Structs and
pydantic models all come out as the JSON objects they hold, whether a
callback yields or returns them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import attrs
import msgspec
import pydantic
import pytest

from crawling import Pages, run_spider
from crawlmesh import Field, Item, Response, SiteRequest, SiteResponse, open_site_server


class Book(Item):
    title = Field()
    price = Field(serializer=float)


class Hardback(Book):
    pages = Field()


def test_an_item_takes_only_its_fields() -> None:
    book = Book(title="Dune")
    book["price"] = 9.5
    book.setdefault("title", "ignored")
    assert book == {"title": "Dune", "price": 9.5}
    assert Book.fields == {"title": {}, "price": {"serializer": float}}
    with pytest.raises(KeyError, match="Book does not support field: isbn"):
        book["isbn"] = "x"
    with pytest.raises(KeyError):
        Book(isbn="x")
    assert Hardback(title="A", pages=3).copy() == {"title": "A", "pages": 3}
    assert set(Hardback.fields) == {"title", "price", "pages"}
    assert repr(book) == "Book({'title': 'Dune', 'price': 9.5})"


@dataclasses.dataclass
class DataRow:
    url: str
    kind: str = "dataclass"


@attrs.define
class AttrsRow:
    url: str
    kind: str = "attrs"


class StructRow(msgspec.Struct):
    url: str
    kind: str = "struct"


class ModelRow(pydantic.BaseModel):
    """A pydantic model iterates over its fields: it must still be one item."""

    url: str
    kind: str = "model"


MAKERS: dict[str, Any] = {
    "item": lambda url: Book(title=url),
    "dataclass": DataRow,
    "attrs": AttrsRow,
    "struct": StructRow,
    "model": lambda url: ModelRow(url=url),
}


class Typed(Pages):
    def __init__(self, urls: list[str], kind: str, returned: bool) -> None:
        super().__init__(urls)
        self.make, self.returned = MAKERS[kind], returned

    def parse(self, response: Response) -> Any:
        if self.returned:
            return self.make(response.url)  # one item, returned
        return iter([self.make(response.url)])


@pytest.mark.parametrize("returned", [False, True], ids=["yielded", "returned"])
@pytest.mark.parametrize("kind", list(MAKERS))
async def test_typed_items_are_written_as_what_they_hold(
    kind: str, returned: bool, tmp_path: Path
) -> None:
    async def site(request: SiteRequest, stream: Any) -> SiteResponse:
        return SiteResponse(200, b"<p>x</p>", [("Content-Type", "text/html")])

    async with open_site_server(site) as base:
        crawl = await run_spider(
            Typed([base + "/a"], kind, returned), tmp_path, **{"robots.obey": False}
        )
    if kind == "item":
        assert crawl.items == [{"title": base + "/a"}]
    else:
        assert crawl.items == [{"url": base + "/a", "kind": kind}]
    assert crawl.errors == []
