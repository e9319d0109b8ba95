"""Fetch errors carry their facts as typed fields; copies add what a layer learns."""

from __future__ import annotations

from crawlmesh import FetchError, FetchTimeout, HttpError, Request
from crawlmesh._exceptions import TIMEOUT_KINDS, Banned
from crawlmesh._transport import ClassifiedError, NodeFault, NodePushback, is_node_fault


def _raised(error: FetchError) -> FetchError:
    try:
        try:
            raise ValueError("underneath")
        except ValueError as cause:
            raise error from cause
    except FetchError as caught:
        return caught


def test_with_node_copies_everything_but_the_node() -> None:
    request = Request("https://example.com/")
    error = _raised(FetchTimeout("read timeout: slow", request=request, kind="read_timeout"))
    moved = error.with_node("n1")
    assert moved is not error
    assert type(moved) is FetchTimeout
    assert (moved.node, error.node) == ("n1", "")
    assert moved.request is request
    assert (str(moved), moved.kind, moved.args) == (
        "read timeout: slow",
        "read_timeout",
        error.args,
    )
    assert isinstance(moved.__cause__, ValueError)
    assert moved.__cause__ is error.__cause__
    assert moved.__traceback__ is error.__traceback__


def test_with_request_keeps_subclass_fields() -> None:
    request = Request("https://example.com/a")
    error = HttpError("HTTP 500", response="the response")
    tied = error.with_request(request)
    assert tied.request is request
    assert error.request is None
    assert tied.response == "the response"
    pushback = NodePushback("node error overloaded", kind="node_overloaded", retry_after=3.0)
    copy = pushback.with_node("n2")
    assert (copy.retry_after, copy.node, copy.kind) == (3.0, "n2", "node_overloaded")


def test_node_fault_is_a_typed_flag() -> None:
    assert not FetchError("x").node_fault
    assert FetchError("x", node_fault=True).node_fault
    assert NodeFault("x").node_fault
    assert NodeFault("x", kind="node_draining").node_fault
    assert is_node_fault(FetchError("x", node_fault=True))
    assert not is_node_fault(ValueError("x"))
    classified = ClassifiedError("proxy down", error_class=FetchError, kind="p", node_fault=True)
    error = classified.to_fetch_error(Request("https://example.com/"))
    assert error.node_fault
    assert error.kind == "p"
    target = ClassifiedError("reset", error_class=FetchError, kind="q", node_fault=False)
    assert not target.to_fetch_error(Request("https://example.com/")).node_fault


def test_is_timeout_reads_the_class_or_the_kind() -> None:
    assert FetchTimeout("x").is_timeout
    assert FetchError("x", kind="total_timeout").is_timeout
    assert all(FetchError("x", kind=kind).is_timeout for kind in TIMEOUT_KINDS)
    assert not FetchError("x", kind="connect_error").is_timeout
    assert not Banned("x").is_timeout
    assert Banned("x", node="n").kind == "banned"
