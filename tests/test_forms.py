"""FormRequest and FormRequest.from_response: what a browser would submit
(HTML's form submission algorithm: successful controls only), and a login
over loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from crawling import run_spider
from crawlmesh import (
    FormRequest,
    Headers,
    Request,
    Response,
    SiteRequest,
    SiteResponse,
    Spider,
    open_site_server,
)

PAGE = """<html><head><base href="http://shop.example/app/"></head><body>
<form id="search" action="find" method="get">
  <input name="q" value="dune"><input type="submit" name="go" value="Search">
</form>
<form name="login" action="/login" method="post">
  <input type="hidden" name="csrf" value="t0k3n">
  <input name="user">
  <input type="password" name="pass" value="">
  <input type="checkbox" name="remember">
  <input type="checkbox" name="terms" checked>
  <input type="checkbox" name="news" value="weekly" checked>
  <input type="radio" name="plan" value="free">
  <input type="radio" name="plan" value="pro" checked>
  <input name="old" value="x" disabled>
  <input type="file" name="avatar">
  <input type="reset" name="reset" value="Reset">
  <select name="country">
    <option value="fr">France</option><option value="de">Germany</option>
  </select>
  <select name="tags" multiple>
    <option selected>new</option><option>old</option><option selected value="s">sale</option>
  </select>
  <select name="none" multiple><option>a</option></select>
  <textarea name="bio">Hello
 world</textarea>
  <button name="action" value="login">Log in</button>
  <input type="submit" name="action" value="register">
  <button type="button" name="js" value="1">Not a submit</button>
</form>
</body></html>"""


def response(body: str = PAGE, url: str = "http://shop.example/app/index") -> Response:
    headers = Headers([("Content-Type", "text/html; charset=utf-8")])
    return Response(url, 200, headers, body.encode(), Request(url))


def fields(request: FormRequest) -> list[tuple[str, str]]:
    if request.method == "GET":
        return parse_qsl(urlsplit(request.url).query, keep_blank_values=True)
    return parse_qsl(request.body.decode(), keep_blank_values=True)


def test_a_form_request_posts_its_fields_url_encoded() -> None:
    r = FormRequest("http://shop.example/a", formdata={"a": "1 2", "b": ["x", "é"], "c": None})
    assert (r.method, r.body) == ("POST", b"a=1+2&b=x&b=%C3%A9")
    assert r.headers == {"Content-Type": "application/x-www-form-urlencoded"}
    get = FormRequest("http://shop.example/a?k=v#f", method="get", formdata=[("a", "1")])
    assert (get.method, get.url, get.body) == ("GET", "http://shop.example/a?k=v&a=1", b"")
    assert isinstance(r, Request)
    assert r.replace(priority=3).body == r.body, "formdata is applied once"


def test_from_response_sends_what_a_browser_sends() -> None:
    r = FormRequest.from_response(response(), formname="login")
    assert (r.method, r.url) == ("POST", "http://shop.example/login")
    assert fields(r) == [
        ("csrf", "t0k3n"),
        ("user", ""),
        ("pass", ""),
        ("terms", "on"),
        ("news", "weekly"),
        ("plan", "pro"),
        ("country", "fr"),
        ("tags", "new"),
        ("tags", "s"),
        ("bio", "Hello\n world"),
        ("action", "login"),
    ]


def test_formdata_overrides_and_removes_fields() -> None:
    r = FormRequest.from_response(
        response(),
        formname="login",
        formdata={"user": "ada", "pass": "s3cret", "bio": None, "extra": "1"},
        dont_click=True,
    )
    sent = dict(fields(r))
    assert (sent["user"], sent["pass"], sent["extra"]) == ("ada", "s3cret", "1")
    assert "bio" not in sent
    assert "action" not in sent


@pytest.mark.parametrize(
    ("clickdata", "expected"),
    [
        ({"value": "register"}, ("action", "register")),
        ({"name": "action", "nr": 1}, ("action", "register")),
    ],
)
def test_clickdata_chooses_the_button(clickdata: dict[str, Any], expected: tuple[str, str]) -> None:
    r = FormRequest.from_response(response(), formname="login", clickdata=clickdata)
    assert fields(r)[-1] == expected
    with pytest.raises(ValueError, match="no submit button matches"):
        FormRequest.from_response(response(), formname="login", clickdata={"value": "nope"})


@pytest.mark.parametrize(
    "select",
    [
        {"formid": "search"},
        {"formnumber": 0},
        {"formcss": "input[name=q]"},
        {"formxpath": "//form[1]"},
    ],
)
def test_forms_are_chosen_by_id_number_css_or_xpath(select: dict[str, Any]) -> None:
    r = FormRequest.from_response(response(), **select)
    # GET: the fields are the query; the action is relative to <base href>.
    assert r.url == "http://shop.example/app/find?q=dune&go=Search"
    assert r.method == "GET"


def test_a_missing_form_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no <form> matches id 'nope'"):
        FormRequest.from_response(response(), formid="nope")
    with pytest.raises(ValueError, match=r"formnumber 5: .* has 2 form"):
        FormRequest.from_response(response(), formnumber=5)
    with pytest.raises(ValueError, match="no <form> in"):
        FormRequest.from_response(response("<p>no form</p>"))


def test_the_response_charset_encodes_the_fields() -> None:
    page = "<form method=post action=/x><input name=n value='café'></form>"
    headers = Headers([("Content-Type", "text/html; charset=latin-1")])
    url = "http://shop.example/"
    r = FormRequest.from_response(Response(url, 200, headers, page.encode("latin-1"), Request(url)))
    assert r.body == b"n=caf%E9"


class Login(Spider):
    def __init__(self, base: str) -> None:
        super().__init__()
        self.start_urls = [base + "/form"]

    def parse(self, response: Response) -> Any:
        yield FormRequest.from_response(
            response, formdata={"user": "ada"}, callback=self.after_login
        )

    def after_login(self, response: Response) -> Any:
        yield {"greeting": response.css("h1::text").get()}


async def test_a_login_form_over_loopback(tmp_path: Path) -> None:
    posted: list[tuple[str, bytes]] = []

    async def site(request: SiteRequest, stream: Any) -> SiteResponse:
        html = [("Content-Type", "text/html")]
        if request.target == "/form":
            form = b"<form action=/login method=post><input type=hidden name=t value=9>"
            return SiteResponse(200, form + b"<input name=user><button>Go</button></form>", html)
        if request.target == "/login" and request.method == "POST":
            posted.append((dict(request.headers)["content-type"], request.body))
            return SiteResponse(200, b"<h1>Welcome, ada</h1>", html)
        return SiteResponse(404)

    async with open_site_server(site) as base:
        crawl = await run_spider(Login(base), tmp_path, **{"robots.obey": False})
    assert posted == [("application/x-www-form-urlencoded", b"t=9&user=ada")]
    assert crawl.items == [{"greeting": "Welcome, ada"}]


def test_the_fields_agree_with_lxml_html_form_values() -> None:
    """An outside oracle: lxml.html's own successful-controls rules. They
    differ from HTML's (and browsers', and Scrapy's) in one place: an input
    with no value attribute is left out, where a browser sends it empty."""
    import lxml.html

    doc = lxml.html.fromstring(PAGE)
    for number, form in enumerate(doc.forms):
        ours = fields(FormRequest.from_response(response(), formnumber=number, dont_click=True))
        valueless = {
            i.name
            for i in form.inputs
            if i.tag == "input" and "value" not in i.attrib and i.type not in ("checkbox", "radio")
        }
        assert [(n, v) for n, v in ours if n not in valueless] == form.form_values(), number
        assert [(n, v) for n, v in ours if n in valueless] == [("user", "")] * (number == 1)
