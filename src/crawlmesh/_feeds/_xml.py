"""An XML feed: ``<items><item><field>value</field>...</item>...</items>``.

A dict value is nested elements, a list's elements are ``<value>``s, None
is an empty element, other scalars their JSON text (``true``, ``3.5``). A
character the encoding lacks is a character reference, one XML 1.0 forbids
(most control characters) is U+FFFD. A key that cannot be an element name
refuses the item (an ``item_encode_error``) rather than write bad XML.
"""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import escape

from ._base import FeedFile, to_fields

__all__ = ["XmlWriter"]

_NAME = re.compile(r"[A-Za-z_][\w.\-]*\Z")
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(_FORBIDDEN.sub("\ufffd", str(value)))


class XmlWriter(FeedFile):
    """Writes items as ``<item>`` elements (see the module)."""

    footer = b"</items>\n"

    def start(self) -> None:
        self.header = self.text(
            f'<?xml version="1.0" encoding="{self.options.encoding}"?>\n<items>\n'
        )
        super().start()

    def text(self, text: str) -> bytes:
        return text.encode(self.encoding, "xmlcharrefreplace")

    def encode(self, item: Any) -> bytes:
        parts: list[str] = []
        self._element("item", to_fields(item, self.options.fields), parts, 0)
        return self.text("".join(parts) + "\n")

    def _element(self, name: str, value: Any, out: list[str], depth: int) -> None:
        if not _NAME.match(name) or name.lower().startswith("xml"):
            raise ValueError(f"field {name!r} cannot be an XML element name")
        indent = self.options.indent
        pad = "\n" + " " * (indent * (depth + 1)) if indent else ""
        end = "\n" + " " * (indent * depth) if indent else ""
        if isinstance(value, dict):
            out.append(f"<{name}>")
            for key, inner in value.items():
                out.append(pad)
                self._element(str(key), inner, out, depth + 1)
            out.append(f"{end}</{name}>" if value else f"</{name}>")
        elif isinstance(value, list):
            out.append(f"<{name}>")
            for inner in value:
                out.append(pad)
                self._element("value", inner, out, depth + 1)
            out.append(f"{end}</{name}>" if value else f"</{name}>")
        elif value is None:
            out.append(f"<{name}/>")
        else:
            out.append(f"<{name}>{_scalar(value)}</{name}>")
