"""Serving a node: hypercorn's Trio worker, signals, and the drain on SIGTERM."""

from __future__ import annotations

import ipaddress
import resource
import signal
import sys

import structlog
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import repr_socket_addr, wrap_app

from .._exceptions import SettingsError, sole_leaf
from ._config import NodeConfig, read_tokens
from ._conns import raise_open_file_limit
from ._service import NodeService

__all__ = ["build_service", "run_node", "serve_node"]

# After the drain, seconds left to connections that are still open (a
# /health answer being written, idle keep-alive connections closing).
_GRACE = 2.0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def build_service(config: NodeConfig) -> NodeService:
    """A :class:`NodeService` for ``config``, its token file read.

    Raises:
        SettingsError: no token file (and no ``no_auth``), an unreadable or
            weak token file, or ``no_auth`` on an address beyond loopback.
    """
    log = structlog.get_logger("crawlmesh.node")
    if config.no_auth:
        if not _is_loopback(config.host):
            raise SettingsError(
                f"--no-auth is allowed only on a loopback address, not {config.host!r}: "
                "give --token-file"
            )
        if config.token_file:
            raise SettingsError("--no-auth and --token-file contradict each other")
        return NodeService(config)
    if not config.token_file:
        raise SettingsError(
            "a node needs --token-file (bearer tokens, one per line); "
            "--no-auth serves without one on loopback only"
        )
    tokens, warning = read_tokens(config.token_file)
    if warning:
        log.warning("token file permissions", detail=warning)
    return NodeService(config, tokens)


def _hypercorn_config(config: NodeConfig) -> HypercornConfig:
    hc = HypercornConfig()
    host = f"[{config.host}]" if ":" in config.host else config.host
    hc.bind = [f"{host}:{config.port}"]
    hc.accesslog = None
    hc.errorlog = None  # the node logs through structlog itself
    hc.include_server_header = False
    hc.backlog = config.backlog
    hc.keep_alive_timeout = config.keep_alive
    return hc


async def _serve_http(
    service: NodeService,
    shutdown: trio.Event,
    force: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """hypercorn's HTTP/1.1 protocol on connections the node accepts itself
    (see ``_conns``), until ``shutdown``; then open connections get a short
    grace (none once ``force`` is set) and are closed."""
    hc = _hypercorn_config(service.config)
    conns = service.connections
    # Room below the open-file limit for the fetches' own sockets and files.
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    reserve = 2 * service.config.concurrency + 64
    conns.max_connections = min(service.config.max_connections, max(16, soft - reserve))
    app = wrap_app(conns.wrap_app(service.app), hc.wsgi_max_body_size, "asgi")
    context = WorkerContext(None)
    sockets = hc.create_sockets()
    listeners, binds = [], []
    for sock in sockets.insecure_sockets:
        sock.listen(hc.backlog)
        listeners.append(trio.socket.from_stdlib_socket(sock))
        binds.append(f"http://{repr_socket_addr(sock.family, sock.getsockname())}")

    async def handle(stream: object) -> None:
        await TCPServer(app, hc, context, ConnectionState({}), stream)  # type: ignore[arg-type]  # a wrapped SocketStream

    try:
        async with trio.open_nursery() as handlers:
            async with trio.open_nursery() as acceptors:
                for listener in listeners:
                    acceptors.start_soon(conns.serve, listener, handle, handlers)
                task_status.started(binds)
                await shutdown.wait()
                acceptors.cancel_scope.cancel()
            for listener in listeners:
                listener.close()  # new connections are refused, not left in the backlog
            await context.terminated.set()  # idle keep-alive connections close
            with trio.move_on_after(0 if force.is_set() else _GRACE):
                async with trio.open_nursery() as waiters:
                    waiters.start_soon(_cancel_on, force, waiters.cancel_scope)
                    await conns.wait_closed()
                    waiters.cancel_scope.cancel()
            conns.abort_all()
            handlers.cancel_scope.cancel()
    finally:
        for listener in listeners:
            listener.close()


async def _cancel_on(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def serve_node(
    service: NodeService,
    *,
    stop: trio.Event | None = None,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``service`` until ``stop`` is set or a signal drains it.

    The first SIGTERM or SIGINT starts the drain: /health says "draining",
    new scrape requests get 503, and the node stops once the requests it
    took have finished or ``drain_timeout`` has passed. A second signal
    stops it at once.

    Args:
        service: the node.
        stop: set it to drain and stop (as a signal would).
        handle_signals: catch SIGTERM and SIGINT (main thread only).
        task_status: started with the bound URLs, e.g. ``["http://127.0.0.1:8700"]``.
    """
    stop = stop or trio.Event()
    shutdown, force = trio.Event(), trio.Event()
    try:
        async with trio.open_nursery() as nursery:

            async def run_server(task_status: trio.TaskStatus[list[str]]) -> None:
                await _serve_http(service, shutdown, force, task_status=task_status)
                nursery.cancel_scope.cancel()  # the signal and drain watchers

            binds: list[str] = await nursery.start(run_server)
            if handle_signals:
                nursery.start_soon(_watch_signals, service, stop, shutdown, force)
            nursery.start_soon(_drain_on, service, stop, shutdown)
            task_status.started(binds)
    finally:
        with trio.CancelScope(shield=True):
            await service.aclose()


async def _watch_signals(
    service: NodeService, stop: trio.Event, shutdown: trio.Event, force: trio.Event
) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            if stop.is_set():
                # A second signal: stop now, whatever is being written.
                service.log.warning("stopping at once", left=service.admission.admitted)
                force.set()
                service.connections.abort_all()
                shutdown.set()
                return
            stop.set()


async def _drain_on(service: NodeService, stop: trio.Event, shutdown: trio.Event) -> None:
    await stop.wait()
    service.draining = True
    timeout = service.config.drain_timeout
    log = service.log
    log.info("draining", in_flight=service.admission.admitted, timeout=timeout)
    with trio.move_on_after(timeout) as scope:
        await service.admission.wait_idle()
    if scope.cancelled_caught:
        log.warning("drain timed out", left=service.admission.admitted)
    else:
        log.info("drained")
    shutdown.set()


def run_node(config: NodeConfig) -> int:
    """Run a node until it is drained (the ``crawlmesh node`` command).

    Prints ``crawlmesh node NAME listening on URL`` on stdout once bound.

    Raises:
        SettingsError: see :func:`build_service`.
    """
    service = build_service(config)
    before, after = raise_open_file_limit()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve_node, service)
            for url in binds:
                print(f"crawlmesh node {service.name} listening on {url}", flush=True)
            service.log.info(
                "node started",
                binds=binds,
                auth="off" if config.no_auth else "bearer",
                allow_private=config.allow_private,
                concurrency=config.concurrency,
                max_queue=config.max_queue,
                open_files=after,
                open_files_raised_from=before if after != before else None,
            )

    failed: BaseException | None = None
    try:
        trio.run(main)
    except* OSError as group:  # binding failed (the port is taken, ...), inside nurseries
        failed = sole_leaf(group)
    if failed is not None:
        print(
            f"crawlmesh: error: cannot listen on {config.host}:{config.port}: {failed}",
            file=sys.stderr,
        )
        return 1
    return 0
