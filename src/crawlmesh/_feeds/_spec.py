"""What a feed is asked to be: the ``feeds`` setting's record, and one feed
as the command line and the settings name it."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Annotated

import msgspec

from .._exceptions import UsageError
from ._base import FeedOptions
from ._formats import FeedFormat, describe_formats, format_for, format_named

__all__ = ["FeedSettings", "FeedSpec"]


class FeedSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One feed of the ``feeds`` setting (its key is the path)."""

    format: str = ""
    """jsonl, json, csv or xml ("": from the path's extension)."""
    fields: list[str] | None = None
    """The fields exported, in this order (default: every field; for CSV
    the first item's keys)."""
    encoding: str = "utf-8"
    """The file's encoding (ASCII-compatible: utf-8, latin-1, ascii...)."""
    overwrite: bool = False
    """Empty the file at start (as -O); false appends (as -o)."""
    indent: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """Spaces per nesting level, JSON and XML (default: compact)."""

    def __post_init__(self) -> None:
        if self.format:
            try:
                format_named(self.format)
            except UsageError:
                raise ValueError(
                    f"format {self.format!r} is no feed format (formats: {describe_formats()})"
                ) from None
        check_encoding(self.encoding)
        if self.fields is not None and (
            not self.fields or len(set(self.fields)) < len(self.fields)
        ):
            raise ValueError("fields must be a non-empty list of distinct names")

    def options(self) -> FeedOptions:
        fields = None if self.fields is None else tuple(self.fields)
        return FeedOptions(fields=fields, encoding=self.encoding, indent=self.indent)


def check_encoding(name: str) -> None:
    """Raises ValueError unless ``name`` is an ASCII-compatible encoding
    (the formats' punctuation is written as ASCII bytes)."""
    try:
        codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown encoding {name!r}") from None
    if "[,]<>\n".encode(name) != b"[,]<>\n":
        raise ValueError(f"encoding {name!r} is not ASCII-compatible (use utf-8)")


@dataclass(frozen=True)
class FeedSpec:
    """One feed to open.

    Attributes:
        target: a path, or ``-`` for stdout.
        format: what it is written as.
        overwrite: empty it first (else append).
        options: fields, encoding, indent.
    """

    target: str
    format: FeedFormat
    overwrite: bool = False
    options: FeedOptions = field(default_factory=FeedOptions)

    @classmethod
    def from_settings(cls, target: str, settings: FeedSettings) -> FeedSpec:
        """The feed ``[feeds."TARGET"]`` describes.

        Raises:
            UsageError: no format, and the extension names none.
        """
        return cls(
            target, format_for(target, settings.format), settings.overwrite, settings.options()
        )
