"""Servers for the Redis tests: real ``redis-server`` processes, and a scriptable fake.

``RedisServer`` starts ``redis-server`` (from PATH) on a free port of 127.0.0.1 in a
temporary folder, waits until it answers PING, and stops it at teardown; ``restart()``
brings it back on the same port. It never uses port 6379 nor a non-local address.
``ExternalRedis`` stands for the server named by ``JEXKV_REDIS_URL`` (plain tests only).
``ServerGroup`` is what several started together share (redis_cluster.py, redis_sentinel.py).
``FakeRedis`` is a listening socket served by threads, answering as a test scripts it; its
``LocalListener`` (the socket and the accepting thread) serves other fakes too (faults/).

When no server can be had the tests are skipped with a reason, unless
``JEXKV_REQUIRE_REDIS=1``: then it is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any, Callable, Generic, TypeVar, Union
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from jexkv.resp import Redis

LOCALHOST = "127.0.0.1"
FORBIDDEN_PORTS = frozenset({6379})
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


def unavailable(reason: str) -> None:
    """Skip the test (or fail it when ``JEXKV_REQUIRE_REDIS=1``)."""
    if os.environ.get("JEXKV_REQUIRE_REDIS") == "1":
        pytest.fail(f"{reason} (and JEXKV_REQUIRE_REDIS=1)", pytrace=False)
    pytest.skip(reason)


def binary(name: str, why: str) -> str:
    """The path of the program ``name``; when it is not on PATH, the test is skipped (failed
    under ``JEXKV_REQUIRE_REDIS=1``) saying ``why`` it is needed."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not on PATH ({why})")
        raise AssertionError("unreachable")
    return path


def redis_server_binary() -> str:
    return binary("redis-server", "set JEXKV_REDIS_URL or install redis")


def free_port() -> int:
    """A TCP port of 127.0.0.1 free at the time of asking (never 6379)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOCALHOST, 0))
            port = int(sock.getsockname()[1])
        if port not in FORBIDDEN_PORTS:
            return port


def _userinfo(username: str | None, password: str | None) -> str:
    if password is None:
        return ""
    return f"{quote(username or '', safe='')}:{quote(password, safe='')}@"


# -- TLS ------------------------------------------------------------------------------


class TlsFiles:
    """A CA and a server certificate for 127.0.0.1 and localhost, made with openssl."""

    def __init__(self, folder: str) -> None:
        self.ca_cert = os.path.join(folder, "ca.crt")
        self.ca_key = os.path.join(folder, "ca.key")
        self.cert = os.path.join(folder, "server.crt")
        self.key = os.path.join(folder, "server.key")
        openssl = shutil.which("openssl")
        if openssl is None:
            raise TlsUnavailable("openssl is not on PATH")
        ext = os.path.join(folder, "server.ext")
        with open(ext, "w") as f:
            f.write(
                "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
                "basicConstraints = critical, CA:FALSE\n"
                "keyUsage = critical, digitalSignature, keyEncipherment\n"
                "extendedKeyUsage = serverAuth\n"
                "subjectKeyIdentifier = hash\n"
                "authorityKeyIdentifier = keyid, issuer\n"
            )
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        steps = [
            [openssl, "req", "-x509", *ec, "-keyout", self.ca_key, "-out", self.ca_cert]
            + ["-days", "2", "-subj", "/CN=jexkv test CA"]
            + ["-addext", "basicConstraints=critical,CA:TRUE"]
            + ["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            [openssl, "req", "-new", *ec, "-keyout", self.key]
            + ["-out", os.path.join(folder, "server.csr"), "-subj", "/CN=localhost"],
            [openssl, "x509", "-req", "-in", os.path.join(folder, "server.csr")]
            + ["-CA", self.ca_cert, "-CAkey", self.ca_key, "-CAcreateserial"]
            + ["-out", self.cert, "-days", "2", "-extfile", ext],
        ]
        for step in steps:
            try:
                done = subprocess.run(step, capture_output=True, timeout=30, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise TlsUnavailable(f"openssl failed: {exc}") from exc
            if done.returncode != 0:
                raise TlsUnavailable(f"openssl failed: {done.stderr.decode(errors='replace')}")

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_cert)
        return context


class TlsUnavailable(Exception):
    """TLS cannot be tested here (no openssl, or a redis-server built without TLS)."""


# -- real servers ---------------------------------------------------------------------


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate a server process (kill it if it does not stop in time) and reap it."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, in its own temporary folder."""

    external = False

    def __init__(
        self,
        *,
        password: str | None = None,
        extra_args: Sequence[str] = (),
        unix_socket: bool = False,
        tls: bool = False,
    ) -> None:
        self.binary = redis_server_binary()
        self.dir = tempfile.mkdtemp(prefix="jexkv-redis-")
        self.host = LOCALHOST
        self.port = free_port()
        self.password = password
        self.username: str | None = None
        self.extra_args = list(extra_args)
        self.unix_path = os.path.join(self.dir, "redis.sock") if unix_socket else None
        self.tls: TlsFiles | None = None
        self.process: subprocess.Popen[bytes] | None = None
        if tls:
            try:
                self.tls = TlsFiles(self.dir)
            except BaseException:
                self.cleanup()
                raise

    # URLs and connection arguments

    def url(self, db: int = 0, username: str | None = None, password: str | None = None) -> str:
        scheme = "rediss" if self.tls else "redis"
        user = _userinfo(username, password if password is not None else self.password)
        return f"{scheme}://{user}{self.host}:{self.port}/{db}"

    def unix_url(self, db: int = 0) -> str:
        assert self.unix_path is not None
        return f"unix://{self.unix_path}?db={db}"

    def connection_kwargs(self) -> dict:
        return {"host": self.host, "port": self.port, "password": self.password}

    # process control

    def _command(self) -> list:
        args = [self.binary, "--bind", LOCALHOST]
        if self.tls is not None:
            args += ["--port", "0", "--tls-port", str(self.port)]
            args += ["--tls-cert-file", self.tls.cert, "--tls-key-file", self.tls.key]
            args += ["--tls-ca-cert-file", self.tls.ca_cert, "--tls-auth-clients", "no"]
        else:
            args += ["--port", str(self.port)]
        args += ["--save", "", "--appendonly", "no", "--dir", self.dir, "--daemonize", "no"]
        args += ["--logfile", os.path.join(self.dir, "redis.log")]
        if self.unix_path is not None:
            args += ["--unixsocket", self.unix_path, "--unixsocketperm", "700"]
        if self.password is not None:
            args += ["--requirepass", self.password]
        return args + self.extra_args

    def log_tail(self) -> str:
        text = ""
        for name in ("stdout.log", "redis.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text += f.read()[-2000:]
            except OSError:
                pass
        return text

    def start(self) -> None:
        for attempt in range(3):
            try:
                self._start_once()
                return
            except RuntimeError:
                # The free port may have been taken in the meantime: try another one,
                # unless the process was already started once (a restart keeps its port).
                if attempt == 2 or self._started_once:
                    raise
                self.port = free_port()

    _started_once = False

    def _start_once(self) -> None:
        assert self.process is None, "already running"
        with open(os.path.join(self.dir, "stdout.log"), "ab") as out:
            self.process = subprocess.Popen(
                self._command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"redis-server exited at start:\n{self.log_tail()}")
            if self.ping():
                self._started_once = True
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING:\n{self.log_tail()}")
            time.sleep(0.02)

    def _raw_socket(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=1.0)
        if self.tls is not None:
            return self.tls.client_context().wrap_socket(sock, server_hostname=self.host)
        return sock

    def ping(self) -> bool:
        """True when the server answers PING (NOAUTH counts: it is up)."""
        try:
            with self._raw_socket() as sock:
                sock.settimeout(1.0)
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                data = sock.recv(64)
        except OSError:
            return False
        return data[:1] in (b"+", b"-")

    def stop(self) -> None:
        process, self.process = self.process, None
        stop_process(process)

    def restart(self) -> None:
        """Stop, then start again on the same port (the data is gone: no persistence)."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class ExternalRedis:
    """The server named by ``JEXKV_REDIS_URL`` (a redis:// URL); never started or stopped."""

    external = True
    unix_path = None
    tls = None

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(f"JEXKV_REDIS_URL must be a redis:// URL, got {parts.scheme!r}")
        self._parts = parts
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        self.username = parts.username or None
        self.password = parts.password

    def url(self, db: int = 0, username: str | None = None, password: str | None = None) -> str:
        if password is None and username is None:
            username, password = self.username, self.password
        netloc = f"{_userinfo(username, password)}{self.host}:{self.port}"
        return urlunsplit(("redis", netloc, f"/{db}", "", ""))

    def connection_kwargs(self) -> dict:
        return {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
        }

    def cleanup(self) -> None:
        pass


AnyRedis = Union[RedisServer, ExternalRedis]

S = TypeVar("S", bound=RedisServer)
G = TypeVar("G", bound="ServerGroup[Any]")


class ServerGroup(Generic[S]):
    """Several ``RedisServer``s started together (a cluster, a sentinel set): ``servers``, a
    plain client of the server on a port (with ``client_options``, kept until cleanup), the
    server on a port, and the teardown (``cleanup()``, or the end of a ``with`` block).
    ``__init__`` runs ``_start()``, which a subclass defines (its own state set before); when
    it fails, everything started is cleaned up."""

    kind = "server"  # what one of ``servers`` is called in an error
    client_options: dict[str, Any] = {}

    def __init__(self) -> None:
        self.servers: list[S] = []
        self._clients: dict[int, Redis] = {}
        try:
            self._start()
        except BaseException:
            self.cleanup()
            raise

    def _start(self) -> None:
        raise NotImplementedError

    def client(self, port: int) -> Redis:
        """A plain (single-node, no cluster or sentinel) client of the server on ``port``,
        kept until cleanup."""
        if port not in self._clients:
            self._clients[port] = Redis(LOCALHOST, port, **self.client_options)
        return self._clients[port]

    def drop_client(self, port: int) -> None:
        """Close the client of the server on ``port`` (the next ``client(port)`` is new)."""
        client = self._clients.pop(port, None)
        if client is not None:
            client.close()

    def server(self, port: int) -> S:
        for server in self.servers:
            if server.port == port:
                return server
        raise KeyError(f"no {self.kind} on port {port}")

    def __enter__(self: G) -> G:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    def close_clients(self) -> None:
        for client in self._clients.values():
            try:
                client.close()
            except Exception:
                pass
        self._clients.clear()

    def cleanup(self) -> None:
        self.close_clients()
        for server in self.servers:
            server.cleanup()


# -- a fake server ----------------------------------------------------------------------

HELLO_REPLY = b"%3\r\n+server\r\n+redis\r\n+version\r\n+7.0.0\r\n+proto\r\n:3\r\n"  # a RESP3 map

Reply = Union[bytes, None]
"""What a fake answers: bytes to send, ``None`` to close the connection, ``HOLD`` to go silent."""

HOLD = b"<hold>"


class LocalListener:
    """A listening socket on a port of 127.0.0.1 the system picks, and a daemon thread that
    accepts connections until ``stopped`` is set, handing each to ``_accepted(conn)``, which
    a subclass defines. A subclass sets up its own state before calling ``__init__``: a
    connection may come at once."""

    def __init__(self, backlog: int, *, reuse_address: bool = False) -> None:
        self.stopped = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if reuse_address:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOCALHOST, 0))
        self._listener.listen(backlog)
        self._listener.settimeout(0.05)
        self.host = LOCALHOST
        self.port = int(self._listener.getsockname()[1])
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepter.start()

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def _accepted(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _accept_loop(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._accepted(conn)

    def stop_listening(self) -> None:
        """Set ``stopped``, close the listening socket and wait for the accepting thread."""
        self.stopped.set()
        try:
            self._listener.close()
        except OSError:
            pass
        self._accepter.join(5)


class SendThenClose(bytes):
    """An answer sent, after which the fake closes the connection (a reply cut short)."""


def read_command(reader) -> list | None:
    """One command (a RESP array of bulk strings) from ``reader``; None at EOF."""
    line = reader.readline()
    if not line:
        return None
    if not line.startswith(b"*"):
        raise ValueError(f"the fake server expected an array, got {line!r}")
    args = []
    for _ in range(int(line[1:])):
        header = reader.readline()
        if not header.startswith(b"$"):
            raise ValueError(f"the fake server expected a bulk string, got {header!r}")
        size = int(header[1:])
        data = reader.read(size + 2)
        if len(data) != size + 2:
            return None
        args.append(data[:size])
    return args


class FakeRedis(LocalListener):
    """A listening socket on 127.0.0.1 whose connections a thread each serves.

    ``answer(command, index)`` gets each command (a list of bytes) and the number of
    the connection (0, 1, ...); it returns the bytes to send, ``None`` to close the
    connection, or ``HOLD`` to keep it open and never answer. ``accept_only=True``:
    accept connections and never read nor answer. The handshake (HELLO, AUTH, SELECT,
    CLIENT) gets default answers unless ``answer`` handles it (returns not NotImplemented).
    """

    def __init__(
        self,
        answer: Callable[[list, int], object] | None = None,
        *,
        accept_only: bool = False,
    ) -> None:
        self.answer = answer
        self.accept_only = accept_only
        self.commands: list = []  # (connection index, command) in arrival order
        self.errors: list = []
        self.closed_by_client: set = set()  # indexes of the connections the client closed
        self.connections = 0
        self._lock = threading.Lock()
        self._socks: list = []
        self._threads: list = []
        super().__init__(16)

    def _accepted(self, conn: socket.socket) -> None:
        with self._lock:
            index = self.connections
            self.connections += 1
            self._socks.append(conn)
        thread = threading.Thread(target=self._serve, args=(conn, index), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _default(self, command: list) -> Reply:
        name = command[0].upper()
        if name == b"HELLO":
            return HELLO_REPLY
        if name in (b"AUTH", b"SELECT", b"CLIENT"):
            return b"+OK\r\n"
        if name == b"PING":
            return b"+PONG\r\n"
        return b"-ERR the fake server does not know this command\r\n"

    def _serve(self, conn: socket.socket, index: int) -> None:
        try:
            conn.settimeout(0.1)
            if self.accept_only:
                self.stopped.wait(60)
                return
            reader = _Reader(conn, self.stopped)
            while not self.stopped.is_set():
                command = read_command(reader)
                if command is None:
                    with self._lock:
                        self.closed_by_client.add(index)
                    return
                with self._lock:
                    self.commands.append((index, command))
                reply: object = NotImplemented
                if self.answer is not None:
                    reply = self.answer(command, index)
                if reply is NotImplemented:
                    reply = self._default(command)
                if reply is None:
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                if reply == HOLD:
                    self.stopped.wait(60)
                    return
                assert isinstance(reply, bytes)
                conn.sendall(reply)
                if isinstance(reply, SendThenClose):
                    conn.shutdown(socket.SHUT_RDWR)
                    return
        except _Stopped:
            pass
        except OSError:
            with self._lock:
                self.closed_by_client.add(index)
        except BaseException as exc:  # reported by the test, never an unhandled thread error
            self.errors.append(exc)
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def commands_of(self, index: int) -> list:
        with self._lock:
            return [c for i, c in self.commands if i == index]

    def close(self) -> None:
        self.stop_listening()
        for thread in self._threads:
            thread.join(5)


class _Stopped(Exception):
    pass


class _Reader:
    """readline/read on a socket with a short timeout, giving up when the fake stops."""

    def __init__(self, sock: socket.socket, stopped: threading.Event) -> None:
        self._sock = sock
        self._stopped = stopped
        self._buf = b""

    def _fill(self) -> bool:
        while True:
            if self._stopped.is_set():
                raise _Stopped()
            try:
                data = self._sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return False
            self._buf += data
            return True

    def readline(self) -> bytes:
        while b"\n" not in self._buf:
            if not self._fill():
                return b""
        line, _, self._buf = self._buf.partition(b"\n")
        return line.rstrip(b"\r")

    def read(self, size: int) -> bytes:
        while len(self._buf) < size:
            if not self._fill():
                break
        data, self._buf = self._buf[:size], self._buf[size:]
        return data
