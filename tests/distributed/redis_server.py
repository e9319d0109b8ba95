"""A real ``redis-server`` on a free loopback port, for the tests.

Each server runs in its own directory; persistence is off unless a test asks
for it (the Redis-restart test wants an append-only file so a restart keeps
the crawl).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["REDIS_CLI", "REDIS_SERVER", "Cluster", "RedisServer", "SentinelServer", "free_port"]

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


def free_port(*, with_bus: bool = False) -> int:
    """A free loopback port; ``with_bus``: one whose port + 10000 (a
    cluster node's bus port) exists and is free too."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not with_bus:
            return port
        if port + 10000 <= 65535:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


class RedisServer:
    """``redis-server`` bound to 127.0.0.1 on a free port."""

    def __init__(
        self, directory: Path, *, persistent: bool = False, extra: tuple[str, ...] = ()
    ) -> None:
        assert REDIS_SERVER is not None
        self.directory = directory
        self.port = free_port(with_bus="--cluster-enabled" in extra)
        self.persistent = persistent
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            REDIS_SERVER or "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--protected-mode", "yes",
        ]  # fmt: skip
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        args += self.extra
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.directory
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.command("PING") == b"+PONG":
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            time.sleep(0.02)
        raise RuntimeError("redis-server did not answer PING within 10 s")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def command(self, *args: str, whole: bool = False) -> bytes:
        """Send one command; return the first line of the reply (``whole``:
        all that arrives with it)."""
        payload = f"*{len(args)}\r\n".encode()
        for arg in args:
            data = arg.encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            conn.sendall(payload)
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                reply += chunk
        return reply if whole else reply.split(b"\r\n", 1)[0]


class SentinelServer(RedisServer):
    """A Redis Sentinel watching ``primary`` as the service ``mymaster``."""

    def __init__(self, directory: Path, primary: RedisServer) -> None:
        super().__init__(directory)
        self.primary = primary

    def start(self) -> None:
        conf = self.directory / "sentinel.conf"  # Sentinel rewrites it: a file of its own
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor mymaster 127.0.0.1 {self.primary.port} 1\n"
        )
        assert REDIS_SERVER is not None
        self.proc = subprocess.Popen(
            [REDIS_SERVER, str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.directory,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.command("SENTINEL", "get-master-addr-by-name", "mymaster").startswith(
                    b"*2"
                ):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis sentinel did not come up within 10 s")


# What redis-cli prints (exit status 0) when the reply is an error.
_ERRORS = {"ERR", "BUSYKEY", "IOERR", "NOKEY", "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"}


class Cluster:
    """A Redis Cluster of ``masters`` nodes (no replicas, persistence off),
    made by ``redis-cli --cluster create``; :meth:`move_slot` reshards."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.nodes = []
        for n in range(masters):
            home = directory / f"node{n}"
            home.mkdir()
            conf = ("--cluster-enabled", "yes", "--cluster-config-file", str(home / "nodes.conf"))
            self.nodes.append(RedisServer(home, extra=(*conf, "--cluster-node-timeout", "5000")))

    def start(self) -> None:
        assert REDIS_CLI is not None
        for node in self.nodes:
            node.start()
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not all(
            b"cluster_state:ok" in n.command("CLUSTER", "INFO", whole=True) for n in self.nodes
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not come up within 20 s")
            time.sleep(0.05)

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()

    def cli(self, node: RedisServer, *args: str) -> list[str]:
        """One command through redis-cli; its reply's lines."""
        assert REDIS_CLI is not None
        done = subprocess.run(
            [REDIS_CLI, "-p", str(node.port), *args], check=True, capture_output=True,
            text=True, timeout=30,
        )  # fmt: skip
        lines = done.stdout.splitlines()
        if lines and lines[0].split(" ", 1)[0] in _ERRORS:
            raise RuntimeError(f"redis-cli {' '.join(args)}: {done.stdout.strip()}")
        return lines

    def node_id(self, node: RedisServer) -> str:
        return self.cli(node, "CLUSTER", "MYID")[0]

    def slot_of(self, key: str) -> int:
        return int(self.cli(self.nodes[0], "CLUSTER", "KEYSLOT", key)[0])

    def owner(self, slot: int) -> RedisServer:
        for line in self.cli(self.nodes[0], "CLUSTER", "NODES"):
            fields = line.split()
            port = int(fields[1].partition("@")[0].rpartition(":")[2])
            for part in fields[8:]:
                low, _, high = part.partition("-")
                if part[0] != "[" and int(low) <= slot <= int(high or low):
                    return next(n for n in self.nodes if n.port == port)
        raise LookupError(slot)

    def move_slot(
        self, slot: int, target: RedisServer, *, batch: int = 1, pause: float = 0.0
    ) -> int:
        """Reshard ``slot`` to ``target`` as ``redis-cli --cluster reshard``
        does (IMPORTING, MIGRATING, MIGRATE ... KEYS a batch at a time, then
        SETSLOT NODE), ``pause`` seconds between batches; returns the keys moved."""
        source = self.owner(slot)
        source_id, target_id = self.node_id(source), self.node_id(target)
        self.cli(target, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id)
        self.cli(source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id)
        moved = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            keys = self.cli(source, "CLUSTER", "GETKEYSINSLOT", str(slot), str(batch))
            keys = [key for key in keys if key]  # (an empty array is an empty line)
            if not keys:
                break
            try:
                self.cli(
                    source, "MIGRATE", "127.0.0.1", str(target.port), "", "0", "5000", "KEYS", *keys
                )
            except RuntimeError as exc:
                if "NOKEY" not in str(exc):  # (deleted meanwhile: nothing to move)
                    raise
            moved += len(keys)
            time.sleep(pause)
        else:
            raise RuntimeError(f"slot {slot} still had keys on its source after 60 s")
        for node in (target, source, *self.nodes):
            self.cli(node, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id)
        return moved
