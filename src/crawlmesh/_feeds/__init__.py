"""Feed exports: items written as JSON lines, a JSON array, CSV or XML, to
one file or several at once (see ``_formats`` for the formats)."""

from ._base import Feed, FeedFile, FeedOptions, Mode, to_fields
from ._csv import CsvWriter
from ._feedset import LEGACY_KEY, FeedSet, open_feeds
from ._formats import FORMATS, FeedFormat, describe_formats, format_for, format_named
from ._json import ErrorRecord, JsonArrayWriter, JsonLinesWriter
from ._spec import FeedSettings, FeedSpec, check_encoding
from ._xml import XmlWriter

__all__ = [
    "FORMATS",
    "LEGACY_KEY",
    "CsvWriter",
    "ErrorRecord",
    "Feed",
    "FeedFile",
    "FeedFormat",
    "FeedOptions",
    "FeedSet",
    "FeedSettings",
    "FeedSpec",
    "JsonArrayWriter",
    "JsonLinesWriter",
    "Mode",
    "XmlWriter",
    "check_encoding",
    "describe_formats",
    "format_for",
    "format_named",
    "open_feeds",
    "to_fields",
]
