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

__all__ = ["REDIS_SERVER", "RedisServer", "SentinelServer", "free_port"]

REDIS_SERVER = shutil.which("redis-server")


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
