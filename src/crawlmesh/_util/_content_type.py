"""What a response body is: its MIME type, and whether selectors apply.

The type is the Content-Type header's essence (``type/subtype``, lowercased,
parameters dropped). When the header is missing, unparsable, or one of the
placeholders that mean "unknown" (``application/unknown``, ``*/*``...), the
body is sniffed with the WHATWG MIME Sniffing Standard's rules for an unknown
type (section 7.1, "identifying a resource with an unknown MIME type"):
HTML and XML markup, PDF and PostScript, the byte-order marks of text, the
image and archive signatures; otherwise ``text/plain`` if the first 1445
bytes hold no binary data byte, else ``application/octet-stream``. A declared
type is trusted, as browsers do for documents.
"""

from __future__ import annotations

__all__ = ["is_markup", "mime_essence", "response_mime", "sniff_mime"]

# WHATWG "resource header": the bytes sniffing looks at.
_HEADER_SIZE = 1445
_WHITESPACE = b"\t\n\x0c\r "
_TAG_END = (b" ", b">")
# Patterns that mean HTML when followed by a tag-terminating byte (case-
# insensitive; leading whitespace skipped).
_HTML_PATTERNS = tuple(
    p.encode()
    for p in (
        "<!doctype html",
        "<html",
        "<head",
        "<script",
        "<iframe",
        "<h1",
        "<div",
        "<font",
        "<table",
        "<a",
        "<style",
        "<title",
        "<b",
        "<body",
        "<br",
        "<p",
        "<!--",
    )
)
# Exact signatures at the start of the body (no whitespace skipped).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"%!PS-Adobe-", "application/postscript"),
    (b"\xfe\xff", "text/plain"),  # UTF-16BE BOM
    (b"\xff\xfe", "text/plain"),  # UTF-16LE BOM
    (b"\xef\xbb\xbf", "text/plain"),  # UTF-8 BOM
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"BM", "image/bmp"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"\x00\x00\x02\x00", "image/x-icon"),
    (b"\x1f\x8b\x08", "application/x-gzip"),
    (b"PK\x03\x04", "application/zip"),
    (b"Rar!\x1a\x07\x00", "application/x-rar-compressed"),
    (b"OggS\x00", "application/ogg"),
    (b"ID3", "audio/mpeg"),
    (b"\x1aE\xdf\xa3", "video/webm"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
)
# WHATWG "binary data byte": control bytes that text does not hold.
_BINARY = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])
_DELETE_TEXT = bytes(b for b in range(256) if b not in _BINARY)
_UNKNOWN = frozenset({"unknown/unknown", "application/unknown", "*/*"})
# RFC 9110 token characters, for the type and subtype.
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")


def mime_essence(content_type: str | None) -> str | None:
    """``type/subtype`` of a Content-Type value, lowercased; None when the
    value is missing or not a MIME type."""
    if not content_type:
        return None
    essence = content_type.partition(";")[0].strip().lower()
    kind, slash, sub = essence.partition("/")
    if not slash or not kind or not sub:
        return None
    if not _TOKEN.issuperset(kind) or not _TOKEN.issuperset(sub):
        return None
    return essence


def sniff_mime(body: bytes) -> str:
    """The MIME type of a body served without one (WHATWG rules for an
    unknown type, scripts allowed: a browser's view of a navigated page)."""
    head = body[:_HEADER_SIZE]
    start = head.lstrip(_WHITESPACE)
    lowered = start[:16].lower()
    for pattern in _HTML_PATTERNS:
        # ... followed by a "tag-terminating byte".
        if lowered.startswith(pattern) and start[len(pattern) : len(pattern) + 1] in _TAG_END:
            return "text/html"
    if start.startswith(b"<?xml"):
        return "text/xml"
    for signature, mime in _SIGNATURES:
        if head.startswith(signature):
            return mime
    if head[:4] == b"RIFF" and head[8:14] == b"WEBPVP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head.translate(None, _DELETE_TEXT):
        return "application/octet-stream"
    return "text/plain"


def response_mime(content_type: str | None, body: bytes) -> str:
    """The type a response's body is taken to be: the declared essence, or
    the sniffed one when nothing usable is declared."""
    essence = mime_essence(content_type)
    if essence is None or essence in _UNKNOWN:
        return sniff_mime(body)
    return essence


def is_markup(mime: str) -> bool:
    """Whether selectors apply to a body of this type: any ``text/*``, and
    HTML or XML under any name (``application/xhtml+xml``, ``image/svg+xml``,
    ``application/rss+xml``...)."""
    return mime.startswith("text/") or mime.endswith(("/xml", "+xml"))
