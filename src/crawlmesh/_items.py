"""Items with declared fields, for projects ported from Scrapy.

Any dict, msgspec Struct, dataclass or attrs class is an item already (and
a pydantic model, when pydantic is installed); :class:`Item` is for code
that declares its fields the Scrapy way::

    class Book(Item):
        title = Field()
        price = Field(serializer=float)

    book = Book(title="Dune")
    book["price"] = "9.99"
    book["isbn"] = "..."   # KeyError: Book does not support field: isbn
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

__all__ = ["Field", "Item"]


class Field(dict[str, Any]):
    """A declared field of an :class:`Item`; its keyword arguments are the
    field's metadata (kept in ``Item.fields[name]``, never exported)."""

    def __init__(self, **metadata: Any) -> None:
        super().__init__(metadata)


class _ItemMeta(type):
    def __new__(
        mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> _ItemMeta:
        fields: dict[str, Field] = {}
        for base in reversed(bases):
            fields.update(getattr(base, "fields", {}))
        for key, value in list(namespace.items()):
            if isinstance(value, Field):
                fields[key] = value
                del namespace[key]
        namespace["fields"] = fields
        return super().__new__(mcs, name, bases, namespace, **kwargs)


class Item(dict[str, Any], metaclass=_ItemMeta):
    """A dict that accepts only its declared :class:`Field`\\ s (exported as
    the dict it is: the fields set, in the order they were set).

    Raises:
        KeyError: a key that is not a declared field is set.
    """

    fields: ClassVar[dict[str, Field]]

    def __init__(self, *args: Mapping[str, Any] | Iterable[tuple[str, Any]], **kwargs: Any):
        super().__init__()
        self.update(*args, **kwargs)

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self.fields:
            raise KeyError(f"{type(self).__name__} does not support field: {key}")
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def copy(self) -> Item:
        return type(self)(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"
