"""HTML forms: :class:`FormRequest`, a request that submits form data, and
:meth:`FormRequest.from_response`, which fills it in from a form on a page
the way a browser would submit it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from ._request import Request

if TYPE_CHECKING:
    import parsel

    from ._response import Response

__all__ = ["FormRequest"]

FormData = Mapping[str, str | Iterable[str] | None] | Iterable[tuple[str, str]]
"""Fields as a mapping (a list of values for a repeated field; ``None``
leaves a field out) or as ``(name, value)`` pairs, in order."""

_FORM_TYPE = "application/x-www-form-urlencoded"
# Inputs whose value is never sent as such (a submit button only when clicked).
_NOT_SENT = frozenset({"submit", "image", "reset", "button", "file"})


def _pairs(data: FormData | None) -> list[tuple[str, str | None]]:
    if data is None:
        return []
    if isinstance(data, Mapping):
        out: list[tuple[str, str | None]] = []
        for name, value in data.items():
            if value is None or isinstance(value, str):
                out.append((name, value))
            else:
                out.extend((name, v) for v in value)
        return out
    return [(name, value) for name, value in data]


def _encoded(pairs: Iterable[tuple[str, str]], encoding: str) -> str:
    return urlencode([(n, v) for n, v in pairs], doseq=False, encoding=encoding)


class FormRequest(Request, repr_omit_defaults=True):
    """A :class:`~crawlmesh.Request` that submits a form.

    ``FormRequest(url, formdata={...})`` posts the fields url-encoded (with
    ``method="GET"`` they become the query string instead); every other
    argument is a :class:`~crawlmesh.Request`'s.

    Args:
        formdata: the fields (see :data:`FormData`), applied once: the
            request keeps the URL or body they make, not the fields.
        encoding: the charset the fields are encoded in.
    """

    method: str = "POST"
    formdata: Any = None
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        data, self.formdata = self.formdata, None
        pairs = [(n, v) for n, v in _pairs(data) if v is not None]
        self.method = self.method.upper()
        if pairs and self.method in ("GET", "HEAD"):
            parts = urlsplit(self.url)
            query = _encoded(pairs, self.encoding)
            query = f"{parts.query}&{query}" if parts.query else query
            self.url = urlunsplit(parts._replace(query=query, fragment=""))
        elif data is not None and self.method not in ("GET", "HEAD"):
            self.body = _encoded(pairs, self.encoding).encode("ascii")
            self.headers = {"Content-Type": _FORM_TYPE, **(self.headers or {})}

    @classmethod
    def from_response(
        cls,
        response: Response,
        *,
        formname: str | None = None,
        formid: str | None = None,
        formnumber: int = 0,
        formcss: str | None = None,
        formxpath: str | None = None,
        formdata: FormData | None = None,
        clickdata: Mapping[str, str | int] | None = None,
        dont_click: bool = False,
        **kwargs: Any,
    ) -> FormRequest:
        """The request a browser would send to submit a form of ``response``.

        The form is the one ``formcss``, ``formxpath``, ``formid`` or
        ``formname`` selects, else the ``formnumber``-th (from 0). Its
        fields are what a browser sends: enabled inputs (checkboxes and
        radios only when checked), the selected options of each select (a
        single select with none selected sends its first), textareas, and
        the first submit button (or the one ``clickdata`` matches by its
        attributes, ``nr`` counting from 0) unless ``dont_click``.
        ``formdata`` overrides fields by name (``None`` leaves one out);
        ``method`` and other :class:`~crawlmesh.Request` arguments may be given.

        Raises:
            ValueError: no form matches, or ``clickdata`` matches no button.
        """
        form = _find_form(response, formname, formid, formnumber, formcss, formxpath)
        overrides = _pairs(formdata)
        given = {name for name, _ in overrides}
        pairs = [(n, v) for n, v in _fields(form) if n not in given]
        if not dont_click:
            button = _clicked(form, clickdata)
            if button is not None and button[0] not in given:
                pairs.append(button)
        pairs += [(n, v) for n, v in overrides if v is not None]
        action = form.attrib.get("action", "").strip()
        url = response.urljoin(action) if action else response.url
        method = kwargs.pop("method", form.attrib.get("method", "GET")).upper()
        if method not in ("GET", "POST"):
            method = "GET"  # a browser submits any other method as GET
        return cls(url, method=method, formdata=pairs, encoding=response.encoding, **kwargs)


def _find_form(
    response: Response,
    name: str | None,
    form_id: str | None,
    number: int,
    css: str | None,
    xpath: str | None,
) -> parsel.Selector:
    forms = response.xpath("//form")
    if not forms:
        raise ValueError(f"no <form> in {response.url}")
    for query, found in (
        (f"css {css!r}", response.css(css) if css else None),
        (f"xpath {xpath!r}", response.xpath(xpath) if xpath else None),
        (f"id {form_id!r}", response.xpath("//form[@id=$v]", v=form_id) if form_id else None),
        (f"name {name!r}", response.xpath("//form[@name=$v]", v=name) if name else None),
    ):
        if found is None:
            continue
        for element in found:
            # The form itself, or the form an element inside it belongs to.
            form = element.xpath("ancestor-or-self::form[1]")
            if form:
                return form[0]
        raise ValueError(f"no <form> matches {query} in {response.url}")
    if not 0 <= number < len(forms):
        raise ValueError(f"formnumber {number}: {response.url} has {len(forms)} form(s)")
    return forms[number]


def _fields(form: parsel.Selector) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for element in form.xpath(".//*[self::input or self::select or self::textarea][@name]"):
        attrib = element.attrib
        if "disabled" in attrib:
            continue
        name = attrib["name"]
        tag = element.root.tag
        if tag == "input":
            kind = attrib.get("type", "text").lower()
            if kind in _NOT_SENT or (kind in ("checkbox", "radio") and "checked" not in attrib):
                continue
            default = "on" if kind in ("checkbox", "radio") else ""
            out.append((name, attrib.get("value", default)))
        elif tag == "select":
            out.extend((name, v) for v in _selected(element))
        else:
            out.append((name, element.xpath("string()").get() or ""))
    return out


def _selected(select: parsel.Selector) -> list[str]:
    options = select.xpath(".//option")
    chosen = [o for o in options if "selected" in o.attrib]
    if not chosen and "multiple" not in select.attrib and options:
        chosen = options[:1]
    return [o.attrib.get("value", o.xpath("normalize-space(string())").get() or "") for o in chosen]


def _clicked(
    form: parsel.Selector, clickdata: Mapping[str, str | int] | None
) -> tuple[str, str] | None:
    buttons: list[parsel.Selector] = form.xpath(
        ".//input[@type='submit' or @type='image' or @type='SUBMIT']"
        "|.//button[not(@type) or @type='submit']"
    )
    buttons = [b for b in buttons if "disabled" not in b.attrib]
    if clickdata:
        wanted = dict(clickdata)
        nr = wanted.pop("nr", None)
        matches = [b for b in buttons if all(b.attrib.get(k) == str(v) for k, v in wanted.items())]
        if nr is not None:
            matches = matches[int(nr) : int(nr) + 1]
        if not matches:
            raise ValueError(f"no submit button matches clickdata {dict(clickdata)!r}")
        buttons = matches
    for button in buttons:
        if "name" in button.attrib:
            return button.attrib["name"], button.attrib.get("value", "")
        if clickdata:
            return None  # the chosen button has no name: nothing of it is sent
    return None
