"""A fault-injecting TCP proxy for the Redis fault tests.

``FaultProxy(host, port)`` listens on a free port of 127.0.0.1 and forwards every
connection it accepts to ``host:port``, one thread per direction. Each direction of
each connection (a *link*) draws a ``Fault`` from ``proxy.plan`` (a fixed ``Fault``,
which applies to its own direction only, or a callable taking the direction and
returning one) and applies it once that many bytes have passed that way:

* ``cut``: close both sockets at once (``rst=True``: with an RST, SO_LINGER 0);
* ``stall``: stop forwarding for ``stall_s`` seconds, then go on (drawing the next
  fault of the plan for the bytes that follow);
* ``half_close``: send a FIN onward (shutdown of the write side) and forward no more
  that way, leaving the other direction open;
* ``blackhole``: stop forwarding that way for good, reading and discarding what comes,
  with every socket left open (a silently dropped connection).

``Fault.none()`` forwards faithfully. ``proxy.cut_all()`` cuts every open link now;
``proxy.silence_all()`` makes every open link forward nothing more either way, not even an
EOF, with every socket left open (a path that died without a FIN or an RST reaching
either end: a NAT or firewall that forgot the connection, a peer host gone).
After a stall, what the stall held back is delivered only when the sending peer is
still there: a client that gave up on a stalled command never has it run late.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Callable, Union

from tests.redis_server import LocalListener

KINDS = ("none", "cut", "stall", "half_close", "blackhole")
UP, DOWN = "up", "down"  # client -> server, server -> client


@dataclass(frozen=True)
class Fault:
    """What one link suffers: ``kind`` in ``direction`` after ``after_bytes`` bytes."""

    kind: str = "none"
    direction: str = DOWN
    after_bytes: int = 0
    stall_s: float = 0.0
    rst: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.direction not in (UP, DOWN):
            raise ValueError(f"unknown direction {self.direction!r}")

    @classmethod
    def none(cls) -> Fault:
        return cls()


def random_fault(
    rng: random.Random,
    direction: str,
    *,
    clean: float = 0.0,
    max_bytes: int = 3000,
    stalls: tuple[float, ...] = (0.1, 0.3, 1.0),
    kinds: tuple[str, ...] = ("cut", "stall", "half_close", "blackhole"),
) -> Fault:
    """A random fault for one direction of a link: with probability ``clean`` none, else one
    of ``kinds`` after 0 to ``max_bytes`` bytes (a stall then draws the next one)."""
    if rng.random() < clean:
        return Fault.none()
    kind = rng.choice(kinds)
    return Fault(
        kind=kind,
        direction=direction,
        after_bytes=rng.randint(0, max_bytes),
        stall_s=rng.choice(stalls) if kind == "stall" else 0.0,
        rst=rng.random() < 0.5,
    )


def _drain(sock: socket.socket) -> tuple[bytes, bool]:
    """What ``sock`` has received already, without waiting; and whether its peer has gone
    (an EOF or an error after those bytes)."""
    chunks = []
    while True:
        try:
            data = sock.recv(65536, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError, socket.timeout):
            return b"".join(chunks), False
        except OSError:
            return b"".join(chunks), True
        if not data:
            return b"".join(chunks), True
        chunks.append(data)


Plan = Union[Fault, Callable[[str], Fault]]


class _Link:
    """One proxied connection: the client's socket, the server's, two pump threads."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.closed = threading.Event()
        self.silenced = threading.Event()
        self._lock = threading.Lock()
        self._done = {UP: False, DOWN: False}
        self.threads = [
            threading.Thread(target=self._pump, args=(UP,), daemon=True),
            threading.Thread(target=self._pump, args=(DOWN,), daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def cut(self, rst: bool = False) -> None:
        """Close both sockets (with an RST when asked); idempotent."""
        with self._lock:
            if self.closed.is_set():
                return
            self.closed.set()
        for sock in (self.client, self.server):
            try:
                if rst:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass

    def _finish(self, direction: str) -> None:
        with self._lock:
            self._done[direction] = True
            both = all(self._done.values())
        if both:
            self.cut()

    def _send(self, dst: socket.socket, data: bytes, direction: str) -> None:
        trace = self.proxy.trace
        if trace is not None:
            trace.append((time.monotonic(), id(self), direction, bytes(data[:300])))
        dst.sendall(data)

    def _pump(self, direction: str) -> None:
        src, dst = (self.client, self.server) if direction == UP else (self.server, self.client)
        fault = self.proxy.next_fault(direction)
        passed = 0  # bytes forwarded this way since the current fault was drawn
        discarding = False
        try:
            while not self.closed.is_set() and not self.proxy.stopped.is_set():
                try:
                    data = src.recv(65536)
                except socket.timeout:
                    continue
                if self.silenced.is_set():
                    if not data:  # the peer closed: that news is lost too, until the end
                        while not (self.closed.is_set() or self.proxy.stopped.wait(0.05)):
                            pass
                        return
                    continue
                if not data:  # EOF: pass the FIN on, as a proxy does
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                if discarding:
                    continue
                while fault.kind != "none" and passed + len(data) >= fault.after_bytes:
                    head = data[: max(0, fault.after_bytes - passed)]
                    data = data[len(head) :]
                    if head:
                        self._send(dst, head, direction)
                    self.proxy.count(fault.kind, self, direction)
                    if fault.kind == "cut":
                        self.cut(rst=fault.rst)
                        return
                    if fault.kind in ("half_close", "blackhole"):
                        if fault.kind == "half_close":
                            try:
                                dst.shutdown(socket.SHUT_WR)
                            except OSError:
                                pass
                        discarding = True
                        data = b""
                        break
                    # A stall: wait, then go on with the next fault of the plan. What the
                    # sender wrote meanwhile is read at once: when it has closed since,
                    # nothing is delivered (a command it gave up on never runs late).
                    self.proxy.stopped.wait(fault.stall_s)
                    more, gone = _drain(src)
                    if gone or self.closed.is_set():
                        self.cut()
                        return
                    data += more
                    fault, passed = self.proxy.next_fault(direction), 0
                passed += len(data)
                if data:
                    self._send(dst, data, direction)
        except OSError:
            self.cut()
        finally:
            self._finish(direction)


class FaultProxy(LocalListener):
    """A TCP proxy on a free port of 127.0.0.1 in front of ``host:port``, with faults."""

    def __init__(self, host: str, port: int, plan: Plan | None = None) -> None:
        self.target = (host, port)
        self.plan: Plan = plan if plan is not None else Fault.none()
        self.links: list[_Link] = []
        self.faults: dict[str, int] = {kind: 0 for kind in KINDS}
        self.accepted = 0
        self.events: list[tuple[float, int, str, str]] = []  # (monotonic, link, direction, kind)
        self.trace: list | None = None  # set to a list: every forwarded chunk is noted there
        self._lock = threading.Lock()
        super().__init__(64, reuse_address=True)

    def next_fault(self, direction: str) -> Fault:
        """The next fault of the plan for bytes going ``direction`` (UP or DOWN)."""
        plan = self.plan
        fault = plan(direction) if callable(plan) else plan
        assert isinstance(fault, Fault)
        return fault if fault.direction == direction else Fault.none()

    def count(self, kind: str, link: object = None, direction: str = "") -> None:
        with self._lock:
            self.faults[kind] += 1
            self.events.append((time.monotonic(), id(link), direction, kind))

    def _accepted(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.target, timeout=2.0)
        except OSError:
            client.close()  # the server is down: so is the proxied connection
            return
        for sock in (client, server):
            sock.settimeout(0.05)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(self, client, server)
        with self._lock:
            self.accepted += 1
            self.links = [live for live in self.links if not live.closed.is_set()]
            self.links.append(link)
        link.start()

    def cut_all(self, rst: bool = False) -> int:
        """Cut every open link now; how many there were."""
        with self._lock:
            links = [link for link in self.links if not link.closed.is_set()]
        for link in links:
            link.cut(rst=rst)
        return len(links)

    def silence_all(self) -> int:
        """Forward nothing more on every open link, in either direction, and no EOF either
        (the sockets stay open); how many there were. Later links work."""
        with self._lock:
            links = [link for link in self.links if not link.closed.is_set()]
        for link in links:
            link.silenced.set()
        return len(links)

    def close(self) -> None:
        self.stop_listening()
        with self._lock:
            links = list(self.links)
        for link in links:
            link.cut()
        for link in links:
            for thread in link.threads:
                thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["DOWN", "KINDS", "UP", "Fault", "FaultProxy", "random_fault"]
