"""A real Redis Cluster for the tests: three primaries on 127.0.0.1, no replicas.

``RedisCluster()`` starts three ``redis-server --cluster-enabled yes`` processes (each a
``RedisServer`` in its own temporary folder, on a free port), joins them with
``redis-cli --cluster create``, and waits until every node says ``cluster_state:ok``.
``migrate_slot`` moves one hash slot from a node to another with the real protocol
(IMPORTING, MIGRATING, MIGRATE in batches, SETSLOT NODE), calling a hook between the
steps so a test can run load while the slot is half-migrated (ASK) and after (MOVED).

Admin commands go through jexkv's plain single-node client (``jexkv.resp.Redis``), one
per node. When ``redis-server`` or ``redis-cli`` is missing the test is skipped (a
failure under ``JEXKV_REQUIRE_REDIS=1``), as for the other Redis tests.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from typing import Any, Callable
from urllib.parse import urlencode

from jexkv.resp.cluster import key_slot
from tests.redis_server import LOCALHOST, RedisServer, ServerGroup, binary, free_port

SLOTS = 16384
CLUSTER_TIMEOUT = 30.0  # seconds to form the cluster, or to agree after a change
MIGRATE_TIMEOUT_MS = 5000

# The hook of migrate_slot is called with one of these steps (and the slot's state then):
STEP_MIGRATING = "migrating"  # IMPORTING on the target, MIGRATING on the source; no key moved
STEP_BATCH = "batch"  # after each MIGRATE of a batch of keys: some keys moved, some not
STEP_MOVED = "moved"  # every key moved, SETSLOT NODE not yet sent: only ASK for any key
STEP_DONE = "done"  # SETSLOT NODE sent to every node: the slot is the target's (MOVED)

MigrationHook = Callable[[str], None]


def redis_cli_binary() -> str:
    return binary("redis-cli", "needed to create a Redis Cluster")


def text(reply: Any) -> str:
    """A bulk or verbatim string reply as ``str``."""
    if isinstance(reply, bytes):
        return reply.decode()
    return str(reply)


def info_fields(reply: Any) -> dict:
    """``field:value`` lines (INFO, CLUSTER INFO) as a dict of str."""
    fields = {}
    for line in text(reply).splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def keys_in_slot(slot: int, count: int, prefix: str = "k") -> list[str]:
    """``count`` distinct keys (``<prefix><n>``, no hash tag) whose slot is ``slot``."""
    keys: list[str] = []
    n = 0
    while len(keys) < count:
        key = f"{prefix}{n}"
        if key_slot(key) == slot:
            keys.append(key)
        n += 1
    return keys


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOCALHOST, port))
        except OSError:
            return False
    return True


class ClusterNode(RedisServer):
    """A ``redis-server --cluster-enabled yes`` whose bus port (port + 10000) is free too."""

    def __init__(self, node_timeout_ms: int = 2000) -> None:
        args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        args += ["--cluster-node-timeout", str(node_timeout_ms)]
        super().__init__(extra_args=args)
        self.node_id = ""

    def _start_once(self) -> None:
        if not self._started_once:
            # The cluster bus listens on port + 10000, which must exist and be free.
            while self.port + 10000 > 65535 or not _port_is_free(self.port + 10000):
                self.port = free_port()
        super()._start_once()


class RedisCluster(ServerGroup[ClusterNode]):
    """Three cluster primaries on 127.0.0.1 covering the 16384 slots; ``cleanup()`` ends it.

    ``client(port)`` is a plain (non-cluster) client of the node on ``port``."""

    kind = "cluster node"
    client_options = {"connect_timeout": 2.0, "socket_timeout": 10.0, "retries": 1}

    def __init__(self, primaries: int = 3, node_timeout_ms: int = 2000) -> None:
        self.cli = redis_cli_binary()
        self._primaries = primaries
        self._node_timeout_ms = node_timeout_ms
        super().__init__()

    def _start(self) -> None:
        for _ in range(self._primaries):
            self.servers.append(ClusterNode(self._node_timeout_ms))
        for server in self.servers:
            server.start()
        self._create()
        self.wait_ok()
        for server in self.servers:
            server.node_id = text(self.client(server.port).execute_command("CLUSTER", "MYID"))

    # -- addresses ------------------------------------------------------------------------

    @property
    def nodes(self) -> list[tuple[str, int]]:
        """The (host, port) of every primary, in start order."""
        return [(server.host, server.port) for server in self.servers]

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self.servers]

    def url(self, **query: Any) -> str:
        """``redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`` (+ ``?query``)."""
        seeds = ",".join(f"{host}:{port}" for host, port in self.nodes)
        url = f"redis+cluster://{seeds}"
        if query:
            url += "?" + urlencode(query)
        return url

    # -- state ----------------------------------------------------------------------------

    def _create(self) -> None:
        command = [self.cli, "--cluster", "create"]
        command += [f"{host}:{port}" for host, port in self.nodes]
        command += ["--cluster-replicas", "0", "--cluster-yes"]
        done = subprocess.run(
            command, capture_output=True, timeout=60, check=False, stdin=subprocess.DEVNULL
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            raise RuntimeError(f"redis-cli --cluster create failed:\n{output[-3000:]}")

    def cluster_info(self, port: int) -> dict:
        return info_fields(self.client(port).execute_command("CLUSTER", "INFO"))

    def wait_ok(self, timeout: float = CLUSTER_TIMEOUT) -> None:
        """Wait until every node says cluster_state:ok and knows every other node."""
        deadline = time.monotonic() + timeout
        while True:
            states = {}
            for port in self.ports:
                try:
                    info = self.cluster_info(port)
                except Exception as exc:  # a node still starting: ask again
                    info = {"error": repr(exc)}
                states[port] = info
            if all(
                info.get("cluster_state") == "ok"
                and info.get("cluster_known_nodes") == str(len(self.servers))
                and info.get("cluster_slots_assigned") == str(SLOTS)
                for info in states.values()
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not become ok: {states}")
            time.sleep(0.05)

    def slot_table(self, port: int | None = None) -> list[tuple[int, int, int]]:
        """(first slot, last slot, owner port) of every range, as the node on ``port``
        (the first one by default) sees it (CLUSTER SLOTS)."""
        reply = self.client(port or self.ports[0]).execute_command("CLUSTER", "SLOTS")
        return sorted((int(entry[0]), int(entry[1]), int(entry[2][1])) for entry in reply)

    def owner(self, slot: int, port: int | None = None) -> int:
        """The port of the primary serving ``slot`` (as the node on ``port`` sees it)."""
        for first, last, owner in self.slot_table(port):
            if first <= slot <= last:
                return owner
        raise LookupError(f"slot {slot} is not served")

    def key_slot(self, key: str) -> int:
        return int(self.client(self.ports[0]).execute_command("CLUSTER", "KEYSLOT", key))

    def error_replies(self) -> dict:
        """How many error replies of each code (``ASK``, ``MOVED``, ``TRYAGAIN``, …) the
        nodes have sent since they started, summed (``INFO errorstats``)."""
        totals: dict = {}
        for port in self.ports:
            stats = info_fields(self.client(port).execute_command("INFO", "errorstats"))
            for name, value in stats.items():
                code = name.removeprefix("errorstat_")
                count = int(dict(part.split("=") for part in value.split(","))["count"])
                totals[code] = totals.get(code, 0) + count
        return totals

    def flushall(self) -> None:
        """Delete every key on every primary."""
        for port in self.ports:
            self.client(port).execute_command("FLUSHALL")

    def dbsize(self) -> int:
        return sum(int(self.client(port).execute_command("DBSIZE")) for port in self.ports)

    # -- resharding -----------------------------------------------------------------------

    def migrate_slot(
        self,
        slot: int,
        source_port: int,
        target_port: int,
        keys_batch: int = 10,
        hook: MigrationHook | None = None,
    ) -> int:
        """Move ``slot`` from the node on ``source_port`` to the one on ``target_port``.

        The protocol of ``redis-cli --cluster reshard``: ``CLUSTER SETSLOT slot IMPORTING``
        on the target, ``MIGRATING`` on the source, then ``CLUSTER GETKEYSINSLOT`` and
        ``MIGRATE … KEYS`` in batches of ``keys_batch`` until the slot is empty on the
        source, then ``CLUSTER SETSLOT slot NODE <target>`` on the target, the source and
        every other node. ``hook(step)`` is called after each step (STEP_MIGRATING, then
        STEP_BATCH after every batch, STEP_MOVED, STEP_DONE); while it runs the slot stays
        in that state, so a test can run load there. Returns how many keys moved.
        """
        hook = hook or (lambda step: None)
        source, target = self.server(source_port), self.server(target_port)
        if source is target:
            raise ValueError("the source and the target are the same node")
        src, dst = self.client(source_port), self.client(target_port)
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
        hook(STEP_MIGRATING)
        moved = 0
        while True:
            keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, keys_batch)
            if not keys:
                break
            reply = src.execute_command(
                "MIGRATE", target.host, target.port, "", 0, MIGRATE_TIMEOUT_MS, "KEYS", *keys
            )
            if text(reply) not in ("OK", "NOKEY"):
                raise RuntimeError(f"MIGRATE answered {reply!r}")
            moved += len(keys)
            hook(STEP_BATCH)
        hook(STEP_MOVED)
        # The target first (it bumps its config epoch), then the source, then the others.
        others = [s for s in self.servers if s is not source and s is not target]
        for node in [target, source, *others]:
            self.client(node.port).execute_command(
                "CLUSTER", "SETSLOT", slot, "NODE", target.node_id
            )
        self.wait_owner(slot, target_port)
        hook(STEP_DONE)
        return moved

    def wait_owner(self, slot: int, port: int, timeout: float = CLUSTER_TIMEOUT) -> None:
        """Wait until every node says the slot is served by the node on ``port``."""
        deadline = time.monotonic() + timeout
        while True:
            owners = {node: self.owner(slot, node) for node in self.ports}
            if set(owners.values()) == {port} and all(
                self.cluster_info(node).get("cluster_state") == "ok" for node in self.ports
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"slot {slot}: the nodes disagree on its owner: {owners}")
            time.sleep(0.05)

    def open_migrations(self) -> dict:
        """port -> slots that node has in MIGRATING or IMPORTING state (CLUSTER NODES)."""
        found = {}
        for port in self.ports:
            for line in text(self.client(port).execute_command("CLUSTER", "NODES")).splitlines():
                if "myself" in line.split()[2]:
                    slots = re.findall(r"\[(\d+)-[<>]-", line)
                    if slots:
                        found[port] = [int(slot) for slot in slots]
        return found

    def reset(self) -> None:
        """Empty every primary and end any migration a failed test left half done (its
        slot stays with the source), so each test starts from a stable cluster."""
        self.flushall()
        for port, slots in self.open_migrations().items():
            for slot in slots:
                self.client(port).execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
        self.wait_ok()
