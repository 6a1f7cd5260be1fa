"""Redis under faults: a server restarted under load, and a proxy that breaks connections.

* ``redis-server`` restarted (with an fsync'd append-only file, so the data survives)
  while KV threads, an enqueuing thread and a worker run: the clients reconnect by
  themselves, every enqueue returns a job or raises a BackendError, and every job that
  was returned completes.
* A fault-injecting proxy (tests/faults/proxy.py) between client and server cuts,
  stalls, half-closes and silently drops connections at random points: every call
  returns or raises a BackendError within a bound (a watchdog thread looks for hangs),
  and no reply ever answers another command: every value written is unique, so a GET
  answered with the reply of another command is seen.
* A connection whose path died silently while it idled in the pool (the proxy forwards
  nothing more, not even the FIN) is found by the pool's PING health check before a command
  is sent on it.
"""

from __future__ import annotations

import random
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

import pytest

import jexkv
from jexkv.resp.client import Redis
from tests.faults.proxy import Fault, FaultProxy, random_fault
from tests.redis_server import AnyRedis, RedisServer

SOCKET_TIMEOUT_MS = 500
# The longest a call may take through the proxy: connect, handshake and reply timeouts
# for each of 1 + 3 retries, the backoff sleeps between them, and a wide margin.
CALL_BOUND_S = 4 * 3 * SOCKET_TIMEOUT_MS / 1000 + 4.0
FAULT_PHASE_S = 3.0


# -- helpers -------------------------------------------------------------------------


class Watchdog:
    """Finds calls running longer than ``bound`` seconds, with the stack of their thread."""

    def __init__(self, bound: float) -> None:
        self.bound = bound
        self.hangs: list[str] = []
        self.longest = 0.0
        self.calls = 0
        self._running: dict[int, tuple[float, str]] = {}
        self._reported: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    @contextmanager
    def call(self, what: str) -> Iterator[None]:
        ident = threading.get_ident()
        started = time.monotonic()
        with self._lock:
            self._running[ident] = (started, what)
        try:
            yield
        finally:
            took = time.monotonic() - started
            with self._lock:
                del self._running[ident]
                self._reported.discard(ident)
                self.calls += 1
                self.longest = max(self.longest, took)
                if took > self.bound:
                    self.hangs.append(f"{what} took {took:.1f} s")

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            now = time.monotonic()
            with self._lock:
                late = [
                    (ident, what, now - started)
                    for ident, (started, what) in self._running.items()
                    if now - started > self.bound and ident not in self._reported
                ]
                self._reported.update(ident for ident, _, _ in late)
            frames = sys._current_frames()
            for ident, what, took in late:
                stack = "".join(traceback.format_stack(frames[ident])) if ident in frames else ""
                self.hangs.append(f"{what} still running after {took:.1f} s:\n{stack}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Model:
    """What each key may hold: the value of the last acknowledged SET, or the value of a
    SET that failed after it (it may have run before its reply was lost)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.acked: dict[str, str | None] = {}
        self.maybe: dict[str, set[str]] = {}
        self.ever_failed: dict[str, set[str]] = {}
        self.violations: list[str] = []
        self.checked = 0
        self.history: dict[str, list[str]] = {}
        self._t0 = 0.0

    def note(self, key: str, event: str) -> None:
        with self._lock:
            when = time.monotonic() - self._t0
            self.history.setdefault(key, []).append(f"{when:7.3f} {event}")

    def acknowledged(self, key: str, value: str) -> None:
        with self._lock:
            self.acked[key] = value
            self.maybe[key] = set()

    def failed(self, key: str, value: str) -> None:
        with self._lock:
            self.maybe.setdefault(key, set()).add(value)
            self.ever_failed.setdefault(key, set()).add(value)

    def check(self, key: str, got: object, what: str) -> None:
        with self._lock:
            self.checked += 1
            allowed = {self.acked.get(key)} | self.maybe.get(key, set())
            if got in allowed:
                return
            if got in self.ever_failed.get(key, set()):
                kind = "a value of a SET that failed before the last acknowledged one"
            else:
                kind = "a reply that belongs to no SET of this key: out of step"
            self.violations.append(f"{what}: {key!r} -> {got!r}, allowed {allowed!r}: {kind}")
            self.violations.append("\n".join(self.history.get(key, [])[-40:]))


def _kind(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__} {code}" if code else type(exc).__name__


def _text(value: object) -> object:
    return value.decode() if isinstance(value, bytes) else value


class RespOps:
    """SET and GET through jexkv.resp.Redis."""

    def __init__(self, url: str, **options: Any) -> None:
        self.client = Redis.from_url(url, **options)

    def set(self, key: str, value: str) -> None:
        reply = self.client.execute_command("SET", key, value)
        assert reply == "OK", f"SET {key} answered {reply!r}"

    def get(self, key: str) -> object:
        return _text(self.client.execute_command("GET", key))

    def close(self) -> None:
        self.client.close()


class KVOps:
    """set and get through jexkv.open_kv (values stored as JSON text)."""

    def __init__(self, url: str, **options: Any) -> None:
        self.kv = jexkv.open_kv(url, **options)

    def set(self, key: str, value: str) -> None:
        written = self.kv.set(key, value)
        assert written is True, f"set({key!r}) returned {written!r}"

    def get(self, key: str) -> object:
        return self.kv.get(key)

    def close(self) -> None:
        self.kv.close()


def _run_threads(targets: list[Callable[[], None]], join_s: float) -> None:
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + join_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "a client thread hung"


@pytest.fixture
def proxy(redis_server: AnyRedis) -> Iterator[FaultProxy]:
    with FaultProxy(redis_server.host, redis_server.port) as fault_proxy:
        yield fault_proxy


def _random_plan(seed: int, **kwargs: Any) -> Callable[[str], Fault]:
    rng = random.Random(seed)
    lock = threading.Lock()

    def plan(direction: str) -> Fault:
        with lock:
            return random_fault(rng, direction, **kwargs)

    return plan


def _client_options() -> dict[str, Any]:
    return {"socket_timeout_ms": SOCKET_TIMEOUT_MS, "connect_timeout_ms": SOCKET_TIMEOUT_MS}


class FaultRun:
    """Client threads against a faulty proxy: what they share (the model of every key, the
    watchdog of every call, the unexpected exceptions, the BackendErrors by type, the stop
    event), the run itself, and the checks that hold at its end."""

    def __init__(self) -> None:
        self.model, self.watchdog = Model(), Watchdog(CALL_BOUND_S)
        self.unexpected: list[str] = []
        self.errors: Counter[str] = Counter()
        self.stop = threading.Event()

    @contextmanager
    def faults_then_calm(
        self, proxy: FaultProxy, workers: list[Callable[[], None]], client: Any
    ) -> Iterator[None]:
        """Run ``workers`` in threads through the proxy's faults for FAULT_PHASE_S, then turn
        the faults off (cutting every link) for the block's final reads on ``client``; at
        the end, or on a failure, stop the workers, the watchdog and close ``client``."""
        stopper = threading.Timer(FAULT_PHASE_S, self.stop.set)
        stopper.start()
        try:
            _run_threads(workers, FAULT_PHASE_S + CALL_BOUND_S + 5)
            # Faults off: the same client works again, and reads what the model allows.
            proxy.plan = Fault.none()
            proxy.cut_all()
            yield
        finally:
            self.stop.set()
            stopper.cancel()
            self.watchdog.stop()
            client.close()

    def assert_in_step(self) -> None:
        """No unexpected exception, no call over the bound, no reply out of step."""
        assert not self.unexpected, self.unexpected[:5]
        assert not self.watchdog.hangs, self.watchdog.hangs[:3]
        assert not self.model.violations, self.model.violations[:5]


# -- 1. redis-server restarted under KV and queue load -----------------------------------


@pytest.fixture
def durable_server() -> Iterator[RedisServer]:
    server = RedisServer(extra_args=["--appendonly", "yes", "--appendfsync", "always"])
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


def _wait_loaded(server: RedisServer, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((server.host, server.port), timeout=1.0) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.01)
    raise AssertionError("the restarted server is still loading its data")


def test_restart_under_kv_and_queue_load(durable_server, unique_name):
    server = durable_server
    url = server.url()
    options = {"socket_timeout_ms": 1000, "connect_timeout_ms": 1000}
    kv = jexkv.open_kv(url, namespace=unique_name + ":", **options)
    producer = jexkv.open_queue(url, **options)
    consumer = jexkv.open_queue(url, lease_ms=1000, max_stalls=1000, **options)
    queue = unique_name
    model, watchdog = Model(), Watchdog(CALL_BOUND_S)
    stop = threading.Event()
    returned: list[str] = []
    enqueue_errors: Counter[str] = Counter()
    kv_errors: Counter[str] = Counter()
    unexpected: list[str] = []
    ran: list[str] = []
    ran_lock = threading.Lock()

    def handler(job):
        with ran_lock:
            ran.append(job.id)
        return job.payload["n"]

    def enqueuer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                with watchdog.call("enqueue"):
                    job = producer.enqueue(queue, "work", {"n": n})
            except jexkv.BackendError as exc:
                enqueue_errors[_kind(exc)] += 1
            except Exception as exc:  # anything else breaks the promise
                unexpected.append(f"enqueue: {exc!r}")
            else:
                if not isinstance(job, jexkv.Job) or not job.id:
                    unexpected.append(f"enqueue returned {job!r}")
                else:
                    returned.append(job.id)
            time.sleep(0.005)

    def kv_thread(t: int) -> Callable[[], None]:
        def run() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                key = f"k{t}-{n % 16}"
                value = f"{key}|{n}|{uuid.uuid4().hex[:8]}"
                try:
                    with watchdog.call(f"set {key}"):
                        assert kv.set(key, value) is True
                except jexkv.BackendError as exc:
                    model.failed(key, value)
                    kv_errors[_kind(exc)] += 1
                    continue
                except Exception as exc:
                    unexpected.append(f"set: {exc!r}")
                    continue
                model.acknowledged(key, value)
                for probe in (key, f"k{t}-{random.randrange(16)}"):
                    try:
                        with watchdog.call(f"get {probe}"):
                            got = kv.get(probe)
                    except jexkv.BackendError as exc:
                        kv_errors[_kind(exc)] += 1
                    except Exception as exc:
                        unexpected.append(f"get: {exc!r}")
                    else:
                        model.check(probe, got, "get")

        return run

    threads = [
        threading.Thread(target=f, daemon=True) for f in (enqueuer, kv_thread(0), kv_thread(1))
    ]
    after_restart: list[str] = []
    try:
        consumer.register_worker(queue, handler, concurrency=2)
        for thread in threads:
            thread.start()
        for restart in range(3):
            time.sleep(1.2)
            server.restart()
            # The server answers -LOADING while it reads its append-only file back (the
            # client raises that ServerError: allowed above); then it must just work.
            _wait_loaded(server)
            # Right after a restart, the same objects work again (no reopen), first time.
            probe = f"probe-{restart}"
            try:
                assert kv.set(probe, restart) is True
                assert kv.get(probe) == restart
                producer.enqueue(queue, "probe", {"n": -1 - restart})
            except jexkv.BackendError as exc:
                after_restart.append(f"restart {restart}: {exc!r}")
        time.sleep(1.2)
        stop.set()
        for thread in threads:
            thread.join(CALL_BOUND_S + 5)
        assert not any(t.is_alive() for t in threads), "a client thread hung"

        wanted = set(returned)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with ran_lock:
                if wanted <= set(ran):
                    break
            time.sleep(0.05)
        with ran_lock:
            done = Counter(ran)
        counts = consumer.counts(queue)
    finally:
        stop.set()
        watchdog.stop()
        consumer.close(timeout_ms=10_000)
        producer.close()
        kv.close()

    summary = (
        f"returned={len(returned)} enqueue_errors={dict(enqueue_errors)} ran={sum(done.values())} "
        f"distinct={len(done)} duplicates={sum(c - 1 for c in done.values())} "
        f"unreturned_but_ran={len(set(done) - set(returned))} kv_errors={dict(kv_errors)} "
        f"kv_checks={model.checked} counts={counts} longest_call={watchdog.longest:.2f}s"
    )
    print(summary)
    assert not unexpected, unexpected[:5]
    assert not watchdog.hangs, watchdog.hangs[:3]
    assert not after_restart, after_restart
    # Errors while the server was down or reading its data back, nothing else.
    allowed = {"BackendUnavailable", "BackendTimeout", "ServerError LOADING"}
    assert set(enqueue_errors) | set(kv_errors) <= allowed, summary
    assert not model.violations, model.violations[:5]
    assert returned, "no enqueue ever succeeded"
    missing = set(returned) - set(done)
    assert not missing, (
        f"{len(missing)} returned jobs never ran: {sorted(missing)[:10]} ({summary})"
    )
    assert counts["dead"] == 0, summary


# -- 2. a proxy that cuts, stalls, half-closes and drops connections ------------------------


@pytest.mark.parametrize("kind", ["resp", "kv"])
def test_set_get_through_a_faulty_proxy_never_desyncs(proxy, unique_name, kind):
    proxy.plan = _random_plan(seed={"resp": 1, "kv": 2}[kind])
    url = proxy.url()
    if kind == "resp":
        ops: Any = RespOps(url, **_client_options())
    else:
        ops = KVOps(url, namespace=unique_name + ":", **_client_options())
    state = FaultRun()
    model, watchdog = state.model, state.watchdog

    def worker(t: int) -> Callable[[], None]:
        rng = random.Random(t)
        keys = [f"{unique_name}:{t}:{i}" for i in range(8)]

        def call(what: str, fn: Callable[[], Any]) -> tuple[bool, Any]:
            key = what.split()[1]
            model.note(key, f"t{t} {what} ...")
            try:
                with watchdog.call(what):
                    got = fn()
                    model.note(key, f"t{t} {what} -> {got!r}")
                    return True, got
            except jexkv.BackendError as exc:
                model.note(key, f"t{t} {what} -> {exc!r}")
                state.errors[type(exc).__name__] += 1
            except Exception as exc:
                state.unexpected.append(f"{what}: {exc!r}")
            return False, None

        def run() -> None:
            n = 0
            while not state.stop.is_set():
                n += 1
                key = rng.choice(keys)
                value = f"{key}|{n}|{uuid.uuid4().hex[:8]}"
                ok, _ = call(f"SET {key} {value}", lambda: ops.set(key, value))  # noqa: B023
                if ok:
                    model.acknowledged(key, value)
                else:
                    model.failed(key, value)
                for probe in (key, rng.choice(keys)):
                    ok, got = call(f"GET {probe}", lambda: ops.get(probe))  # noqa: B023
                    if ok:
                        model.check(probe, got, "GET")

        return run

    with state.faults_then_calm(proxy, [worker(t) for t in range(4)], ops):
        for t in range(4):
            for i in range(8):
                key = f"{unique_name}:{t}:{i}"
                model.check(key, ops.get(key), "final GET")
    print(
        f"calls={watchdog.calls} checks={model.checked} errors={dict(state.errors)} "
        f"faults={proxy.faults} links={proxy.accepted} longest={watchdog.longest:.2f}s"
    )
    state.assert_in_step()
    assert sum(proxy.faults[k] for k in ("cut", "stall", "half_close", "blackhole")) >= 10
    assert model.checked > 100


def test_pipelines_through_a_faulty_proxy_never_desync(proxy, unique_name):
    proxy.plan = _random_plan(seed=7)
    client = Redis.from_url(proxy.url(), **_client_options())
    state = FaultRun()
    model, watchdog = state.model, state.watchdog

    def worker(t: int) -> Callable[[], None]:
        rng = random.Random(100 + t)
        keys = [f"{unique_name}:{t}:{i}" for i in range(8)]

        def run() -> None:
            n = 0
            while not state.stop.is_set():
                n += 1
                a, b = rng.sample(keys, 2)
                va, vb = (f"{k}|{n}|{uuid.uuid4().hex[:8]}" for k in (a, b))
                reads = rng.sample(keys, 4)
                pipe = client.pipeline(transaction=rng.random() < 0.3)
                pipe.execute_command("SET", a, va)
                for key in reads[:2]:
                    pipe.execute_command("GET", key)
                pipe.execute_command("SET", b, vb)
                for key in (*reads[2:], a, b):
                    pipe.execute_command("GET", key)
                try:
                    with watchdog.call("pipeline"):
                        replies = pipe.execute()
                except jexkv.BackendError as exc:
                    state.errors[type(exc).__name__] += 1
                    model.failed(a, va)
                    model.failed(b, vb)
                    continue
                except Exception as exc:
                    state.unexpected.append(f"pipeline: {exc!r}")
                    continue
                if len(replies) != 8 or replies[0] != "OK" or replies[3] != "OK":
                    state.unexpected.append(f"pipeline replies out of shape: {replies!r}")
                    continue
                # The GETs before each SET see the state before it; a and b at the end
                # must be exactly what this pipeline wrote (each thread owns its keys).
                for key, got in zip(reads[:2], replies[1:3]):
                    if key != a:
                        model.check(key, _text(got), "pipelined GET")
                model.acknowledged(a, va)
                if reads[2] != b:
                    model.check(reads[2], _text(replies[4]), "pipelined GET")
                model.acknowledged(b, vb)
                model.check(reads[3], _text(replies[5]), "pipelined GET")
                model.check(a, _text(replies[6]), "pipelined GET of the key just set")
                model.check(b, _text(replies[7]), "pipelined GET of the key just set")

        return run

    with state.faults_then_calm(proxy, [worker(t) for t in range(3)], client):
        pipe = client.pipeline()
        keys = [f"{unique_name}:{t}:{i}" for t in range(3) for i in range(8)]
        for key in keys:
            pipe.execute_command("GET", key)
        for key, got in zip(keys, pipe.execute()):
            model.check(key, _text(got), "final pipelined GET")
    print(
        f"pipelines={watchdog.calls} checks={model.checked} errors={dict(state.errors)} "
        f"faults={proxy.faults} longest={watchdog.longest:.2f}s"
    )
    state.assert_in_step()
    assert model.checked > 100


def test_queue_worker_through_a_faulty_proxy_completes_every_job(proxy, redis_server, unique_name):
    queue = unique_name
    producer = jexkv.open_queue(redis_server.url())  # straight to the server
    proxy.plan = _random_plan(seed=11, stalls=(0.2, 1.0))
    consumer = jexkv.open_queue(proxy.url(), lease_ms=1000, max_stalls=1000, **_client_options())
    ran: list[str] = []
    lock = threading.Lock()

    def handler(job):
        with lock:
            ran.append(job.id)
        time.sleep(0.002)
        return job.payload

    wanted: list[str] = []
    try:
        consumer.register_worker(queue, handler, concurrency=2)
        deadline = time.monotonic() + FAULT_PHASE_S
        n = 0
        while time.monotonic() < deadline:
            n += 1
            wanted.append(producer.enqueue(queue, "work", n).id)
            time.sleep(0.01)
        proxy.plan = Fault.none()
        proxy.cut_all()
        end = time.monotonic() + 30
        while time.monotonic() < end:
            with lock:
                if set(wanted) <= set(ran):
                    break
            time.sleep(0.05)
        # Every job has started; runs whose outcome a cut lost are handed out again once their
        # lease ran out (at least once), so wait for the queue itself to drain.
        end = time.monotonic() + 30
        counts = producer.counts(queue)
        while time.monotonic() < end and (counts["waiting"] or counts["active"]):
            time.sleep(0.1)
            counts = producer.counts(queue)
    finally:
        started = time.monotonic()
        consumer.close(timeout_ms=10_000)
        closing = time.monotonic() - started
        producer.close()
    with lock:
        done = Counter(ran)
    print(f"jobs={len(wanted)} ran={sum(done.values())} faults={proxy.faults} counts={counts}")
    missing = set(wanted) - set(done)
    assert not missing, f"{len(missing)} of {len(wanted)} jobs never ran (counts {counts})"
    assert counts["dead"] == 0 and counts["waiting"] == 0, counts
    assert closing < 12, f"close() took {closing:.1f} s"
    assert sum(proxy.faults[k] for k in ("cut", "stall", "half_close", "blackhole")) >= 3


# -- 3. the pool's health check -----------------------------------------------------------


def test_an_idle_connection_gone_without_a_word_is_found_by_the_health_check(
    proxy, redis_server, unique_name
):
    """An idle connection whose path died silently (no FIN, no RST reaches the client: a NAT
    or firewall forgot it, the server's host is gone) looks sound to every other check:
    has_unread() sees nothing on it, and a write sent on it would wait for a reply that
    never comes, then fail with BackendTimeout (a timeout is never retried: the write may
    have run). Only the pool's PING of a connection idle longer than health_check_interval
    finds it: the call goes over a new connection and succeeds."""
    client = Redis.from_url(proxy.url(), **_client_options())
    client.pool.health_check_interval = 0.05
    direct = Redis.from_url(redis_server.url())
    try:
        assert client.execute_command("SET", unique_name, "before") == "OK"
        assert proxy.accepted == 1
        assert proxy.silence_all() == 1  # the connection idle in the pool
        time.sleep(0.2)  # idle longer than health_check_interval
        assert client.execute_command("SET", unique_name, "after") == "OK"
        assert proxy.accepted == 2  # over a new connection
        assert direct.execute_command("GET", unique_name) == b"after"
    finally:
        client.close()
        direct.close()
