"""Node health: active checks and slow start.

The first policy of the balancer's pipeline. It answers one question, which
nodes may take a request now, and keeps the answer cached so selection stays
O(1): :meth:`HealthTracker.eligible` returns the same list until something
changes, and :attr:`HealthTracker.version` says when it did.

* **Active checks** (NGINX ``health_check fails= passes=``, HAProxy
  ``fall``/``rise``): :func:`open_health_checks` probes every node each
  ``interval``; ``fails`` failed checks in a row mark it down, ``passes``
  passed checks in a row mark it up again.
* **Slow start**: a node that becomes eligible again (its checks pass, or
  its circuit breaker closes: :meth:`HealthTracker.ramp`) ramps its
  ``effective_weight`` from 10% to 100% over ``slow_start`` seconds.

Passive detection, from the outcomes of real requests, is the node's circuit
breaker (:mod:`._circuits`), not this module's: a node that answers its
health check may still fail real requests (a proxy whose exits are banned),
and the breaker takes it out whatever its checks say.

Times come from ``trio.current_time()`` so tests run in virtual time.
Transitions that only need time to pass (a slow-start step) are applied
lazily by the next query.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import msgspec
import structlog
import trio

from .._observe import NodeHealth
from .._settings import HealthSettings
from ._types import NodeState

__all__ = [
    "HealthTracker",
    "Probe",
    "ProbeResult",
    "open_health_checks",
]

log = structlog.get_logger("crawlmesh.balancer")

# Slow start moves the weight in this many steps rather than continuously:
# every step changes weights the strategy may have folded into a cached
# structure, so it bumps ``version``; 20 rebuilds per recovery is cheap,
# one per request would not be.
_RAMP_STEPS = 20
# Float slack when turning elapsed time into ramp steps (in steps).
_STEP_SLACK = 1e-6
_RAMP_FLOOR = 0.1  # Envoy's slow start also begins at 10% of the weight.


class ProbeResult(msgspec.Struct, frozen=True):
    """What one active check of a node found.

    Attributes:
        ok: the node answered and the answer was well formed.
        latency: seconds the check took.
        detail: why it failed, for the log.
        status: the node's own verdict, if it gives one (crawlmesh nodes'
            ``/health``): "healthy" and "degraded" pass, anything else fails.
        cpu_usage: the node's CPU use in percent, if it reports one.
        queue_size: requests queued at the node, if it reports them.
    """

    ok: bool
    latency: float
    detail: str = ""
    status: str = ""
    cpu_usage: float | None = None
    queue_size: int | None = None


Probe = Callable[[NodeState], Awaitable[ProbeResult]]
"""Checks one node. Expected failures (refused, bad answer) are returned as
``ok=False``; the checker enforces the timeout itself."""


def _verdict(result: ProbeResult, config: HealthSettings) -> str:
    """Why ``result`` is a failed check, or "" if it passed."""
    if not result.ok:
        return result.detail or "probe failed"
    status = result.status.strip().lower()
    # "degraded" passes and leaves the weight alone: a weight that followed
    # each probe would flap at the check interval and rebuild the strategy's
    # tables each time, while least-conn and p2c-ewma already steer away
    # from a node that is slow. The cpu/queue limits catch real overload.
    if status not in ("", "healthy", "degraded"):
        return f"status {status}"
    if result.cpu_usage is not None and result.cpu_usage > config.cpu_max:
        return f"cpu {result.cpu_usage:g}% > {config.cpu_max:g}%"
    if result.queue_size is not None and result.queue_size > config.queue_max:
        return f"queue {result.queue_size} > {config.queue_max}"
    return ""


class _Health:
    """The tracker's record of one node, kept across mesh reloads."""

    __slots__ = ("check_fails", "check_passes", "recovered_at", "up")

    def __init__(self) -> None:
        self.up = True
        self.check_fails = 0
        self.check_passes = 0
        # When slow start began; None while the node is not ramping.
        self.recovered_at: float | None = None


class HealthTracker:
    """Which nodes of the mesh are up, down or ramping up.

    Lives on the event loop; every method is synchronous and O(1) on the
    request path (:meth:`eligible`, :meth:`record` below the threshold).

    Args:
        config: the thresholds (defaults if None).
        nodes: the first mesh (or set it with :meth:`set_nodes`). Its nodes
            start up, at full weight, with no slow start.
        on_change: called after each :attr:`version` bump; must not raise.
    """

    __slots__ = (
        "_by_name",
        "_due",
        "_eligible",
        "_health",
        "_mesh_changed",
        "_nodes",
        "_on_change",
        "_version",
        "config",
        "on_down",
    )

    def __init__(
        self,
        config: HealthSettings | None = None,
        nodes: Sequence[NodeState] = (),
        *,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.config = config if config is not None else HealthSettings()
        self._on_change: Callable[[], None] | None = None
        self._version = 0
        self._nodes: tuple[NodeState, ...] = ()
        self._by_name: dict[str, NodeState] = {}
        self._health: dict[str, _Health] = {}
        self._eligible: list[NodeState] = []
        # Earliest time a ramp takes its next step;
        # until then queries skip the scan.
        self._due = math.inf
        self._mesh_changed = trio.Event()
        self._install(nodes, None)
        # Set last: the owner has no tracker to look at during the first fill.
        self._on_change = on_change
        self.on_down: Callable[[str], None] | None = None
        """Called with a node's name after each failed check while it is
        down (a distributed crawl shares it); must not raise."""

    # -- queries -------------------------------------------------------

    @property
    def version(self) -> int:
        """Bumped whenever :meth:`eligible` or an eligible node's
        ``effective_weight`` changes; rebuild cached candidates only then.

        Reading it applies what time changed (as :meth:`refresh`), so a
        caller that checks the version before anything else still sees a
        ramp step.
        """
        self.refresh()
        return self._version

    @property
    def nodes(self) -> tuple[NodeState, ...]:
        """The whole mesh, eligible or not."""
        return self._nodes

    def node(self, name: str) -> NodeState | None:
        """The current node called ``name``, if the mesh has one."""
        return self._by_name.get(name)

    def eligible(self) -> list[NodeState]:
        """The nodes that may take a request (up), in mesh order.

        Returns the same list object until :attr:`version` changes, so it is
        O(1); do not mutate it. Empty only when every node is down (or the
        mesh is empty): what to do then (fail, or try every node) is the
        balancer's call.
        """
        self.refresh()
        return self._eligible

    def state(self, node: NodeState) -> NodeHealth:
        """One word for the node's health.

        Raises:
            KeyError: no node of that name is in the mesh.
        """
        self.refresh()
        h = self._health[node.name]
        if not h.up:
            return "down"
        if h.recovered_at is not None:
            return "slow-start"
        return "up"

    async def wait_mesh_change(self) -> None:
        """Return after the next :meth:`set_nodes`."""
        await self._mesh_changed.wait()

    # -- inputs --------------------------------------------------------

    def record_probe(self, node: NodeState, result: ProbeResult) -> None:
        """Count one active check of ``node`` towards ``fails``/``passes``."""
        h = self._health.get(node.name)
        if h is None:  # removed by a reload while the probe ran
            return
        now = trio.current_time()
        self.refresh(now)
        reason = _verdict(result, self.config)
        if not reason:
            h.check_fails = 0
            h.check_passes += 1
            if not h.up and h.check_passes >= self.config.passes:
                h.up = True
                log.info("node up", node=node.name, reason=f"{h.check_passes} checks passed")
                self._start_ramp(node, h, now)
                self._changed()
            return
        h.check_passes = 0
        h.check_fails += 1
        if h.up and h.check_fails >= self.config.fails:
            h.up = False
            h.recovered_at = None
            log.warning(
                "node down", node=node.name, reason=f"{h.check_fails} checks failed: {reason}"
            )
            self._changed()
        elif h.up:
            log.debug("check failed", node=node.name, reason=reason)
        if not h.up and self.on_down is not None:
            self.on_down(node.name)

    def ramp(self, node: NodeState) -> None:
        """Start ``node``'s slow start now (its circuit breaker closed)."""
        h = self._health.get(node.name)
        if h is None or not h.up:
            return
        now = trio.current_time()
        self.refresh(now)
        self._start_ramp(node, h, now)
        self._changed(weights=True)

    def set_nodes(self, nodes: Sequence[NodeState]) -> None:
        """Replace the mesh (a reload).

        Nodes whose name survives keep their health (up/down, check streaks,
        slow start) even if their spec changed; new names
        start up and in slow start, as a node joining a busy mesh should
        (filling an empty tracker is not a join: no slow start then).

        Raises:
            ValueError: two nodes share a name.
        """
        # Filling an empty tracker needs no clock, so a balancer may be
        # built before trio runs.
        self._install(nodes, trio.current_time() if self._health else None)
        self._mesh_changed.set()
        self._mesh_changed = trio.Event()

    def refresh(self, now: float | None = None) -> None:
        """Apply what time alone changes: ramp steps.

        Every query calls it; it costs one comparison until something is due.
        """
        if self._due == math.inf:
            return  # nothing pending: skip even the clock
        if now is None:
            now = trio.current_time()
        if now < self._due:
            return
        changed = False
        due = math.inf
        for node in self._nodes:
            h = self._health[node.name]
            if h.recovered_at is not None:
                changed |= self._ramp(node, h, now)
                if h.recovered_at is not None:
                    step = self.config.slow_start / _RAMP_STEPS
                    next_step = h.recovered_at + (self._step(h, now) + 1) * step
                    # Due a hair early, so clock rounding cannot leave the
                    # refresh just short of the step it was due for.
                    due = min(due, next_step - step * _STEP_SLACK / 2)
        self._due = due
        if changed:
            self._changed(weights=True)

    # -- internals -----------------------------------------------------

    def _install(self, nodes: Sequence[NodeState], now: float | None) -> None:
        names = [node.name for node in nodes]
        if len(set(names)) != len(names):
            dupes = sorted({name for name in names if names.count(name) > 1})
            raise ValueError(f"node names must be unique: {', '.join(dupes)}")
        old = self._health
        self._health = {}
        for node in nodes:
            h = old.get(node.name)
            if h is None:
                h = _Health()
                if now is not None and self.config.slow_start > 0:
                    h.recovered_at = now
            self._health[node.name] = h
        self._nodes = tuple(nodes)
        self._by_name = {node.name: node for node in nodes}
        if now is not None:
            # New NodeState objects start at full weight: a full scan puts
            # the ramping ones back on their ramp.
            self._due = -math.inf
            self.refresh(now)
        self._changed()

    def _changed(self, *, weights: bool = False) -> None:
        """Rebuild the eligible list; bump the version if it or (when
        ``weights``) an eligible node's weight changed."""
        health = self._health
        eligible = [n for n in self._nodes if health[n.name].up]
        if eligible == self._eligible and not weights:
            return
        self._eligible = eligible
        self._version += 1
        if self._on_change is not None:
            self._on_change()

    def _start_ramp(self, node: NodeState, h: _Health, now: float) -> None:
        if self.config.slow_start <= 0:
            return
        h.recovered_at = now
        self._ramp(node, h, now)
        step = self.config.slow_start / _RAMP_STEPS
        self._due = min(self._due, now + step - step * _STEP_SLACK / 2)

    def _step(self, h: _Health, now: float) -> int:
        assert h.recovered_at is not None
        elapsed = now - h.recovered_at
        # The epsilon keeps float error from landing a step boundary just
        # short of its step.
        return int(elapsed * _RAMP_STEPS / self.config.slow_start + _STEP_SLACK)

    def _ramp(self, node: NodeState, h: _Health, now: float) -> bool:
        """Set the node's weight for ``now`` on its ramp; True if it moved."""
        step = self._step(h, now)
        if step >= _RAMP_STEPS:
            h.recovered_at = None
            weight = node.spec.weight
            log.debug("slow start over", node=node.name)
        else:
            weight = node.spec.weight * (_RAMP_FLOOR + (1 - _RAMP_FLOOR) * step / _RAMP_STEPS)
        if weight == node.effective_weight:
            return False
        node.effective_weight = weight
        return True


async def _probe_once(probe: Probe, node: NodeState, limit: float) -> ProbeResult:
    started = trio.current_time()
    with trio.move_on_after(limit):
        try:
            return await probe(node)
        except Exception as exc:
            # A probe should return ok=False for the failures it expects; an
            # unexpected error is still a failed check, not a reason to take
            # the whole crawl down with it.
            log.warning("probe raised", node=node.name, exc_info=True)
            return ProbeResult(ok=False, latency=trio.current_time() - started, detail=repr(exc))
    return ProbeResult(ok=False, latency=limit, detail=f"no answer within {limit:g}s")


async def _check_node(
    tracker: HealthTracker,
    name: str,
    probe: Probe,
    config: HealthSettings,
    scope: trio.CancelScope,
) -> None:
    with scope:
        # Looked up each round: a reload may have replaced the NodeState.
        while (node := tracker.node(name)) is not None:
            started = trio.current_time()
            tracker.record_probe(node, await _probe_once(probe, node, config.timeout))
            # Start to start, so a slow probe does not stretch the interval.
            await trio.sleep_until(started + config.interval)


async def _supervise(
    tracker: HealthTracker, probe: Probe, config: HealthSettings, nursery: trio.Nursery
) -> None:
    """Keep one checker per node, following reloads."""
    running: dict[str, trio.CancelScope] = {}
    while True:
        names = {node.name for node in tracker.nodes}
        for name in running.keys() - names:
            running.pop(name).cancel()
        for name in names - running.keys():
            running[name] = scope = trio.CancelScope()
            nursery.start_soon(_check_node, tracker, name, probe, config, scope)
        await tracker.wait_mesh_change()


@asynccontextmanager
async def open_health_checks(
    tracker: HealthTracker, probe: Probe, config: HealthSettings | None = None
) -> AsyncIterator[None]:
    """Run active checks of the tracker's nodes while the block runs.

    One task per node calls ``probe(node)`` every ``interval`` seconds (start
    to start), the first time at once, cancels it after ``timeout`` and
    feeds the result to :meth:`HealthTracker.record_probe`. After
    :meth:`HealthTracker.set_nodes` the checkers follow the new mesh:
    removed nodes stop being probed, new ones start. The probe is handed
    the node's current :class:`NodeState` each time, so a node whose spec
    changed is probed as it is now.

    Args:
        tracker: where results go; also supplies the nodes.
        probe: checks one node (dispatching on ``node.spec.kind`` if need be).
        config: ``interval`` and ``timeout`` of the checks; the tracker's
            config if None. The pass/fail thresholds are always the
            tracker's.
    """
    config = config if config is not None else tracker.config
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_supervise, tracker, probe, config, nursery)
        try:
            yield
        finally:
            nursery.cancel_scope.cancel()
