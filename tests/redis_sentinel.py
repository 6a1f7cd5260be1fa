"""A real Redis Sentinel set for the tests: a primary, a replica and three sentinels.

``RedisSentinelSet()`` starts a primary and a replica (``RedisServer``s, each in its own
temporary folder on a free port of 127.0.0.1), waits until the replica is in sync, then
starts three ``redis-server sentinel.conf --sentinel`` watching the primary as
``mymaster`` (quorum 2, down-after 1000 ms), and waits until every sentinel knows the
primary, the replica and the two other sentinels. ``kill_primary()`` SIGKILLs the
current primary; ``wait_failover()`` waits until the sentinels name another one;
``heal()`` brings the killed server back as a replica of the new primary, so the set
can fail over again (the session fixture is shared by several tests).

Everything is on loopback, so no ``announce-ip`` is needed: the primary sees its replica
and the sentinels as 127.0.0.1, and that is what the sentinels hand out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from typing import Any

from jexkv.resp import Redis
from tests.redis_cluster import info_fields, text
from tests.redis_server import (
    LOCALHOST,
    START_TIMEOUT,
    STOP_TIMEOUT,
    RedisServer,
    ServerGroup,
    free_port,
    redis_server_binary,
    stop_process,
)

MASTER_NAME = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
SET_TIMEOUT = 30.0  # seconds for the set to become healthy (start, heal)
FAILOVER_WAIT = 15.0  # seconds wait_failover waits by default


def as_dict(reply: Any) -> dict:
    """A flat [k, v, k, v] list (RESP2) or a map (RESP3) as a dict of str to str."""
    if isinstance(reply, dict):
        items = list(reply.items())
    else:
        items = list(zip(reply[0::2], reply[1::2]))
    return {text(k): text(v) for k, v in items}


class Sentinel:
    """One ``redis-server <dir>/sentinel.conf --sentinel`` on 127.0.0.1."""

    def __init__(self, master_port: int, quorum: int = 2) -> None:
        self.binary = redis_server_binary()
        self.dir = tempfile.mkdtemp(prefix="jexkv-sentinel-")
        self.host = LOCALHOST
        self.port = free_port()
        self.master_port = master_port
        self.quorum = quorum
        self.conf = os.path.join(self.dir, "sentinel.conf")
        self.process: subprocess.Popen[bytes] | None = None
        self._client: Redis | None = None

    def _write_conf(self) -> None:
        lines = [
            f"port {self.port}",
            f"bind {LOCALHOST}",
            f"dir {self.dir}",
            "daemonize no",
            f"logfile {os.path.join(self.dir, 'sentinel.log')}",
            f"sentinel monitor {MASTER_NAME} {LOCALHOST} {self.master_port} {self.quorum}",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
        ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.dir, "sentinel.log"), errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def start(self) -> None:
        for attempt in range(3):
            self._write_conf()
            with open(os.path.join(self.dir, "stdout.log"), "ab") as out:
                self.process = subprocess.Popen(
                    [self.binary, self.conf, "--sentinel"],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            deadline = time.monotonic() + START_TIMEOUT
            while self.process.poll() is None and time.monotonic() < deadline:
                if self.ping():
                    return
                time.sleep(0.02)
            self.stop()
            if attempt == 2:
                raise RuntimeError(f"redis sentinel did not start:\n{self.log_tail()}")
            self.port = free_port()  # the port may have been taken in the meantime

    def ping(self) -> bool:
        try:
            return bool(self.client().execute_command("PING"))
        except Exception:
            return False

    def client(self) -> Redis:
        if self._client is None:
            self._client = Redis(
                self.host, self.port, connect_timeout=1.0, socket_timeout=5.0, retries=0
            )
        return self._client

    def command(self, *args: Any) -> Any:
        return self.client().execute_command("SENTINEL", *args)

    def master_addr(self) -> tuple[str, int] | None:
        reply = self.command("get-master-addr-by-name", MASTER_NAME)
        if not reply:
            return None
        return text(reply[0]), int(text(reply[1]))

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        process, self.process = self.process, None
        stop_process(process)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisSentinelSet(ServerGroup[RedisServer]):
    """A primary, a replica and three sentinels on 127.0.0.1; ``cleanup()`` ends them.

    ``client(port)`` is a plain client of the data server on ``port`` (no retries)."""

    kind = "data server"
    client_options = {"connect_timeout": 1.0, "socket_timeout": 5.0, "retries": 0}

    def __init__(self, sentinels: int = 3) -> None:
        self.sentinels: list[Sentinel] = []
        self._sentinel_count = sentinels
        super().__init__()

    def _start(self) -> None:
        primary = RedisServer()
        self.servers.append(primary)
        primary.start()
        replica = RedisServer(extra_args=["--replicaof", LOCALHOST, str(primary.port)])
        self.servers.append(replica)
        replica.start()
        self._wait(lambda: self._in_sync(replica.port), "the replica to sync")
        for _ in range(self._sentinel_count):
            sentinel = Sentinel(primary.port)
            self.sentinels.append(sentinel)
            sentinel.start()
        self.wait_healthy()

    # -- addresses ------------------------------------------------------------------------

    @property
    def sentinel_nodes(self) -> list[tuple[str, int]]:
        return [(s.host, s.port) for s in self.sentinels]

    def url(self, db: int = 0) -> str:
        """``redis+sentinel://127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3/mymaster/<db>``."""
        seeds = ",".join(f"{host}:{port}" for host, port in self.sentinel_nodes)
        return f"redis+sentinel://{seeds}/{MASTER_NAME}/{db}"

    def primary_port(self) -> int:
        """The primary's port, as the first sentinel that answers names it."""
        errors = []
        for sentinel in self.sentinels:
            try:
                addr = sentinel.master_addr()
            except Exception as exc:
                errors.append(exc)
                continue
            if addr is not None:
                return addr[1]
        raise RuntimeError(f"no sentinel named the primary: {errors}")

    def replica_ports(self) -> list[int]:
        primary = self.primary_port()
        return [s.port for s in self.servers if s.port != primary and s.process is not None]

    # -- state ----------------------------------------------------------------------------

    def _wait(self, predicate, what: str, timeout: float = SET_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except Exception as exc:  # a process still starting: ask again
                last = exc
            time.sleep(0.05)
        logs = "\n".join(s.log_tail()[-600:] for s in self.sentinels)
        raise RuntimeError(f"timed out waiting for {what} (last error: {last!r})\n{logs}")

    def replication(self, port: int) -> dict:
        return info_fields(self.client(port).execute_command("INFO", "replication"))

    def _in_sync(self, port: int) -> bool:
        info = self.replication(port)
        return info.get("role") == "slave" and info.get("master_link_status") == "up"

    def _sentinel_healthy(self, sentinel: Sentinel, primary: int, replicas: list[int]) -> bool:
        if sentinel.master_addr() != (LOCALHOST, primary):
            return False
        master = as_dict(sentinel.command("master", MASTER_NAME))
        if master.get("flags") != "master":
            return False
        known = {}
        for entry in sentinel.command("replicas", MASTER_NAME):
            fields = as_dict(entry)
            known[int(fields["port"])] = fields.get("flags", "")
        if any(known.get(port) != "slave" for port in replicas):
            return False
        others = sentinel.command("sentinels", MASTER_NAME)
        return len(others) == len(self.sentinels) - 1

    def healthy(self) -> bool:
        """Every running replica in sync, and every sentinel agreeing on the primary,
        seeing each running replica up and knowing every other sentinel."""
        primary = self.primary_port()
        if self.server(primary).process is None:
            return False
        role = info_fields(self.client(primary).execute_command("INFO", "replication"))
        if role.get("role") != "master":
            return False
        replicas = self.replica_ports()
        if not all(self._in_sync(port) for port in replicas):
            return False
        return all(self._sentinel_healthy(s, primary, replicas) for s in self.sentinels)

    def wait_healthy(self, timeout: float = SET_TIMEOUT) -> None:
        self._wait(self.healthy, "the sentinel set to be healthy", timeout)

    def flushall(self) -> None:
        self.client(self.primary_port()).execute_command("FLUSHALL")

    # -- failures -------------------------------------------------------------------------

    def kill_primary(self) -> int:
        """SIGKILL the current primary's process; its port."""
        port = self.primary_port()
        server = self.server(port)
        process, server.process = server.process, None
        assert process is not None, f"the primary on port {port} is not running"
        process.kill()
        process.wait(STOP_TIMEOUT)
        self.drop_client(port)
        return port

    def wait_failover(self, old_port: int, timeout: float = FAILOVER_WAIT) -> int:
        """Wait until every sentinel names a primary other than ``old_port`` and that
        server says it is a master; its port."""

        def promoted() -> bool:
            addrs = {s.master_addr() for s in self.sentinels}
            if len(addrs) != 1:
                return False
            (addr,) = addrs
            if addr is None or addr[1] == old_port:
                return False
            return self.replication(addr[1]).get("role") == "master"

        self._wait(promoted, f"a failover away from port {old_port}", timeout)
        return self.primary_port()

    def heal(self) -> None:
        """Restart every killed data server as a replica of the current primary, then
        wait until the set is healthy again (so it can fail over once more)."""
        primary = self.primary_port()
        if self.server(primary).process is None:  # killed, and not failed over yet
            primary = self.wait_failover(primary)
        for server in self.servers:
            if server.process is None:
                server.extra_args = ["--replicaof", LOCALHOST, str(primary)]
                server.start()
        self.wait_healthy()

    # -- teardown -------------------------------------------------------------------------

    def cleanup(self) -> None:
        self.close_clients()
        for sentinel in self.sentinels:
            sentinel.cleanup()
        super().cleanup()
