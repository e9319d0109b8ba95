"""Ready-made item pipelines (public as :mod:`crawlmesh.pipelines`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import msgspec
import structlog

from .._exceptions import DropItem, SettingsError

__all__ = ["CleanFields", "Dedupe", "Validate"]

log = structlog.get_logger("crawlmesh.pipelines")

_SPACE = re.compile(r"\s+")


def _as_dict(item: Any) -> Mapping[str, Any]:
    if isinstance(item, Mapping):
        return item
    if isinstance(item, msgspec.Struct):
        return msgspec.structs.asdict(item)
    return msgspec.to_builtins(item)  # type: ignore[no-any-return]  # dataclasses, attrs


class Validate:
    """Drops items that do not match a schema (``items_dropped.invalid``),
    logging why at info level.

    Args:
        schema: a msgspec ``Struct`` type (or any type msgspec converts to;
            loosely: ``"9.99"`` passes as a float, as scraped text usually
            comes), or a JSON Schema as a dict (needs the ``jsonschema`` package:
            ``pip install 'crawlmesh[jsonschema]'``).
        convert: with a type, hand on the converted object (a typed item)
            instead of the item as it came.
    """

    def __init__(self, schema: type | Mapping[str, Any], *, convert: bool = False) -> None:
        self._check: Callable[[Any], Any]
        if isinstance(schema, Mapping):
            try:
                import jsonschema
            except ImportError:
                raise SettingsError(
                    "Validate with a JSON Schema needs the jsonschema package "
                    "(pip install 'crawlmesh[jsonschema]')"
                ) from None
            validator_type = jsonschema.validators.validator_for(schema)
            validator_type.check_schema(schema)  # a bad schema fails at start-up
            validator = validator_type(schema)

            def check(item: Any) -> Any:
                error = jsonschema.exceptions.best_match(validator.iter_errors(_as_dict(item)))
                if error is not None:
                    where = "/".join(str(p) for p in error.absolute_path) or "(item)"
                    raise ValueError(f"{where}: {error.message}")
                return item

            self._check = check
        else:
            target = schema

            def convert_to(item: Any) -> Any:
                try:
                    typed: Any = msgspec.convert(
                        _as_dict(item), target, strict=False, from_attributes=True
                    )
                except msgspec.ValidationError as exc:
                    raise ValueError(str(exc)) from None
                return typed if convert else item

            self._check = convert_to

    def process_item(self, item: Any, spider: object) -> Any:
        try:
            return self._check(item)
        except ValueError as exc:
            log.info("item invalid; dropped", reason=str(exc))
            raise DropItem("invalid") from None


class Dedupe:
    """Drops items whose key was seen before (``items_dropped.duplicate item``).

    Args:
        key: the field (or fields) that identify an item, or a function of
            the item returning a hashable key. Items without the field are
            let through.

    The keys seen are kept in memory, one per distinct item.
    """

    def __init__(self, key: str | Sequence[str] | Callable[[Any], Hashable]) -> None:
        if isinstance(key, str):
            fields: tuple[str, ...] = (key,)
        elif callable(key):
            self._key = key
            fields = ()
        else:
            fields = tuple(key)
        if fields:
            self._key = lambda item: tuple(_as_dict(item).get(f) for f in fields)
        self._seen: set[Hashable] = set()

    def process_item(self, item: Any, spider: object) -> Any:
        key = self._key(item)
        if key is None or (isinstance(key, tuple) and all(k is None for k in key)):
            return item
        if key in self._seen:
            raise DropItem("duplicate item")
        self._seen.add(key)
        return item


class CleanFields:
    """Tidies text fields: strips them and collapses runs of whitespace,
    and leaves out fields that end up empty (``""``, ``None``, ``[]``).

    Args:
        fields: the fields to clean (default: every field). Lists of
            strings are cleaned element by element.
        keep_empty: keep empty fields instead of leaving them out.

    Dict items come out as new dicts; other items (Structs, dataclasses) as dicts too.
    """

    def __init__(self, fields: Sequence[str] = (), *, keep_empty: bool = False) -> None:
        self._fields = frozenset(fields)
        self._keep_empty = keep_empty

    def process_item(self, item: Any, spider: object) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in _as_dict(item).items():
            if not self._fields or name in self._fields:
                value = _clean(value)
            if self._keep_empty or value not in ("", None, []):
                out[name] = value
        return out


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _SPACE.sub(" ", value).strip()
    if isinstance(value, list):
        cleaned = [_clean(v) for v in value]
        return [v for v in cleaned if v not in ("", None)]
    return value
