"""The permit a breaker hands out for each request it admits.

It knows its breaker only as a :class:`PermitIssuer` (what it calls back),
so this module imports nothing from :mod:`._breaker`.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol

__all__ = ["Permit", "PermitIssuer"]


class PermitIssuer(Protocol):
    """What issues permits and takes them back: a :class:`~._breaker.Breaker`."""

    def record(self, permit: Permit | None, ok: bool, now: float | None = None) -> None:
        """Report the outcome of the request ``permit`` admitted."""
        ...

    def release(self, permit: Permit) -> None:
        """Free ``permit``'s slot without an outcome."""
        ...


class Permit:
    """Leave to send one request through a breaker.

    Record its outcome with :meth:`Breaker.record`, or :meth:`release` it if
    there is none to report (the request was cancelled, or failed in a way
    that says nothing about the target). Used as a context manager it is
    released on exit unless recorded, which covers cancellation::

        with permit:
            response = await fetch(request)
            breaker.record(permit, ok=response.status < 500)

    Attributes:
        probe: it holds one of a half-open breaker's probe slots.
        generation: the breaker's state count when it was issued; an outcome
            recorded after the breaker changed state is not counted.
        done: its outcome was recorded or it was released.
    """

    __slots__ = ("_breaker", "done", "generation", "probe")

    def __init__(self, breaker: PermitIssuer, generation: int, probe: bool) -> None:
        self._breaker = breaker
        self.generation = generation
        self.probe = probe
        self.done = False

    @property
    def breaker(self) -> PermitIssuer:
        """The breaker that issued it."""
        return self._breaker

    def release(self) -> None:
        """Give the slot back without an outcome; does nothing if done."""
        self._breaker.release(self)

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
