"""Redis: jexkv's own client over a connection pool, with pipelines, scripts, pub/sub.

Rules:
* Error replies become exceptions here (errors.server_error), never in the parser.
* A command is retried after a connection error only when repeating it cannot
  change the result: when the failure came before anything was sent, or when the
  command is a read (``_SAFE``). A write that may have reached the server is not
  silently repeated; the caller gets the error.
* A timeout is never retried, and a retry starts only inside the call's bound
  (connect_timeout + the reply's timeout, counted from the call's start): a call
  against a server that stops answering raises BackendTimeout within that bound,
  and any call ends within twice it (README, "The Redis client").
* A connection that failed in the middle of a reply is closed by the connection
  itself and never returns to the pool.
"""

from __future__ import annotations

import hashlib
import random
import ssl
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from jexkv.errors import BackendTimeout, BackendUnavailable, ConfigError
from jexkv.resp.blocking import Blocker
from jexkv.resp.connection import Connection
from jexkv.resp.errors import NoScriptError, WatchError, server_error
from jexkv.resp.pool import ConnectionPool
from jexkv.resp.protocol import ErrorReply, pack_args, pack_command, pack_commands
from jexkv.resp.url import parse_redis_url

__all__ = ["PubSub", "Pipeline", "Redis", "Script"]

# Commands sent again after a connection error even when the server may have run them:
# reads, and the few admin commands jexkv sends whose second run changes nothing more than
# the first (CONFIG GET/SET of one value, CLIENT ID/SETNAME/UNBLOCK, SCRIPT LOAD, COMMAND,
# INFO). A write (SET, INCR, EVALSHA …) is never repeated behind the caller's back.
_SAFE = frozenset(
    "GET MGET EXISTS TTL PTTL TYPE STRLEN GETRANGE HGET HMGET HGETALL HEXISTS HLEN HKEYS HVALS"
    " LLEN LRANGE LINDEX SCARD SISMEMBER SMEMBERS ZCARD ZSCORE ZRANGE ZRANGEBYSCORE ZCOUNT"
    " ZRANK ZREVRANGE SCAN SSCAN HSCAN ZSCAN KEYS DBSIZE PING ECHO INFO TIME XLEN XRANGE"
    " XREVRANGE XINFO OBJECT MEMORY CONFIG CLIENT COMMAND SCRIPT".split()
)
# Blocking commands whose last argument is a timeout in seconds (0: forever).
_BLOCKING = frozenset("BLPOP BRPOP BZPOPMIN BZPOPMAX BRPOPLPUSH BLMOVE".split())
_FOREVER_S = 365 * 24 * 3600.0  # "block forever", as a finite socket timeout


def _name(arg: object) -> str:
    if isinstance(arg, bytes):
        return arg.decode("ascii", "replace").upper()
    return str(arg).upper()


class Redis:
    """A thread-safe Redis client: any thread may call any method at any time."""

    def __init__(
        self,
        host: str = "localhost",
        port: int = 6379,
        *,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = 5.0,
        socket_timeout: float = 5.0,
        client_name: str | None = None,
        max_connections: int = 50,
        retries: int = 3,
    ) -> None:
        self._settings: dict[str, Any] = dict(
            host=host,
            port=port,
            path=path,
            ssl_context=ssl_context,
            server_hostname=host if ssl_context is not None else None,
            connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            username=username,
            password=password,
            db=db,
            client_name=client_name,
        )
        self._where = path or f"{host}:{port}"
        self.host, self.port = host, port
        self.db = db
        self.socket_timeout = socket_timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.pool = ConnectionPool(self.new_connection, max_connections=max_connections)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Redis:
        """``redis://[[user]:password@]host[:port][/db]``, ``rediss://…`` (TLS, verified),
        ``unix:///path/redis.sock[?db=N]``; options in the query string or as keywords."""
        return cls(**parse_redis_url(url, options))

    def new_connection(self, **overrides: Any) -> Connection:
        """A connection with this client's settings (and ``overrides``), not yet connected."""
        return Connection(**{**self._settings, **overrides})

    def __repr__(self) -> str:
        return f"<Redis {self._where} db={self.db}>"

    # -- commands ----------------------------------------------------------------------

    def execute_command(self, *args: Any, timeout: float | None = None) -> Any:
        """Send one command; its reply, or the ServerError it answered with."""
        name = _name(args[0]) if args else ""
        if timeout is None and name in _BLOCKING:
            seconds = float(args[-1])
            # The server answers within its own timeout (0: it may wait forever).
            timeout = self.socket_timeout + (seconds or _FOREVER_S)
        return self.execute_packed(pack_command(*args), name, timeout=timeout)

    def execute_packed(self, packed: bytes, name: str, *, timeout: float | None = None) -> Any:
        """Send one command packed already (protocol.pack_command); ``name`` is the
        command's name in capitals, which decides whether it may be retried."""
        loading_until = None
        while True:
            reply = self._send_packed(packed, name, timeout)
            if not isinstance(reply, ErrorReply):
                return reply
            if reply.code == "LOADING":
                # A restarted server loading its data did not run the command: wait for it,
                # up to socket_timeout.
                now = time.monotonic()
                if loading_until is None:
                    loading_until = now + self.socket_timeout
                if now < loading_until:
                    time.sleep(0.05)
                    continue
            raise server_error(reply)

    def _send_packed(self, packed: bytes, name: str, timeout: float | None) -> Any:
        """One command sent (again only after a connection error when it is safe), and its
        reply, an ErrorReply included."""
        attempt = 0
        wait = self.socket_timeout if timeout is None else timeout
        deadline = time.monotonic() + self.connect_timeout + wait
        while True:
            sent = False
            try:
                with self.pool.connection() as conn:
                    sent = True
                    conn.send(packed)
                    reply = conn.read_reply(timeout)
                break
            except BackendTimeout:
                raise  # the server does not answer: waiting again would double the wait
            except BackendUnavailable:
                if sent and name not in _SAFE or attempt >= self.retries:
                    raise
                attempt += 1
                # Exponential backoff with full jitter: 10 ms, 20 ms, 40 ms, ... at most 1 s.
                pause = random.uniform(0, min(1.0, 0.01 * 2**attempt))
                if time.monotonic() + pause >= deadline:
                    raise
                time.sleep(pause)
        return reply

    def pipeline(self, transaction: bool = False) -> Pipeline:
        return Pipeline(self, transaction)

    # The few methods that differ on a cluster (jexkv.resp.cluster.RedisCluster), so that
    # adapters take either client: on one server, one node holds every key.

    def node_for(self, key: str | bytes) -> Redis:
        """The client of the server holding ``key``: this one."""
        return self

    def slot_groups(self, keys: Iterable[str]) -> list[list[str]]:
        """``keys`` in groups one multi-key command may take: all of them, here."""
        group = list(keys)
        return [group] if group else []

    def scan_iter(self, match: str, count: int = 500) -> Iterator[bytes]:
        """SCAN MATCH, page by page as the caller iterates (a key may come twice)."""
        cursor: Any = b"0"
        while True:
            cursor, names = self.execute_command("SCAN", cursor, "MATCH", match, "COUNT", count)
            yield from names
            if cursor in (b"0", 0, "0"):
                return

    def register_script(self, lua: str) -> Script:
        return Script(self, lua)

    def blocker(self, client_name: str | None = None) -> Blocker:
        """A connection of its own for blocking pops (see jexkv.resp.blocking)."""
        return Blocker(lambda key: self, lambda reply: None, client_name)

    def pubsub(self) -> PubSub:
        return PubSub(self)

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> Redis:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Pipeline:
    """Commands queued, then sent in one write; with ``transaction``, inside MULTI/EXEC."""

    def __init__(self, client: Redis, transaction: bool) -> None:
        self._client = client
        self._transaction = transaction
        self._commands: list[tuple[Any, ...]] = []
        self._watching: Connection | None = None

    def execute_command(self, *args: Any) -> Pipeline:
        if not args:
            raise ValueError("a command needs at least its name")
        self._commands.append(args)
        return self

    def __len__(self) -> int:
        return len(self._commands)

    def watch(self, *keys: Any) -> None:
        """WATCH keys now, on the connection that will run the transaction."""
        if not self._transaction:
            raise ConfigError("watch() needs pipeline(transaction=True)")
        if self._watching is None:
            self._watching = self._client.pool.acquire()
        self._check(self._watching.execute("WATCH", *keys))

    def _check(self, reply: Any) -> Any:
        if isinstance(reply, ErrorReply):
            self.reset()
            raise server_error(reply)
        return reply

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Send every queued command in one write; their replies, in order."""
        commands, self._commands = self._commands, []
        pool = self._client.pool
        conn, self._watching = self._watching, None
        if not commands:
            if conn is not None:
                self._release_watched(conn)
            return []
        conn = conn or pool.acquire()
        try:
            if self._transaction:
                commands = [("MULTI",), *commands, ("EXEC",)]
            conn.send(pack_commands(commands))
            replies = [conn.read_reply() for _ in commands]
        except BaseException:
            pool.discard(conn)
            raise
        pool.release(conn)
        if self._transaction:
            for reply in replies[:-1]:
                if isinstance(reply, ErrorReply) and reply.code != "EXECABORT":
                    # A command refused while queueing: EXEC then aborts.
                    if raise_on_error:
                        raise server_error(reply)
            result = replies[-1]
            if result is None:
                raise WatchError("a watched key changed; the transaction did not run")
            if isinstance(result, ErrorReply):
                raise server_error(result)
            replies = result
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, ErrorReply):
                    raise server_error(reply)
        return replies

    def _release_watched(self, conn: Connection) -> None:
        try:
            conn.execute("UNWATCH")
        except Exception:
            self._client.pool.discard(conn)
        else:
            self._client.pool.release(conn)

    def reset(self) -> None:
        """Drop queued commands and any WATCH."""
        self._commands = []
        conn, self._watching = self._watching, None
        if conn is not None:
            self._release_watched(conn)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.reset()


class Script:
    """A Lua script run with EVALSHA; loaded on the first NOSCRIPT answer.

    The packed head of each call (EVALSHA, the hash, the keys) is kept per key list, so a
    script called again and again on the same keys packs only its arguments.
    """

    _HEADS_KEPT = 256

    def __init__(self, client: Redis, lua: str) -> None:
        self._client = client
        self.lua = lua
        self.sha = hashlib.sha1(lua.encode()).hexdigest()
        self._heads: dict[tuple[Any, ...], tuple[int, bytes]] = {}

    def packed(self, keys: Sequence[Any], args: Sequence[Any]) -> bytes:
        """The EVALSHA command for these keys and arguments, packed."""
        key_tuple = tuple(keys)
        head = self._heads.get(key_tuple)
        if head is None:
            if len(self._heads) >= self._HEADS_KEPT:
                self._heads.clear()
            packed = pack_args(("EVALSHA", self.sha, len(key_tuple), *key_tuple))
            head = self._heads[key_tuple] = (3 + len(key_tuple), packed)
        return b"*%d\r\n" % (head[0] + len(args)) + head[1] + pack_args(args)

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        packed = self.packed(keys, args)
        try:
            return self._client.execute_packed(packed, "EVALSHA")
        except NoScriptError:
            self._client.execute_command("SCRIPT", "LOAD", self.lua)
            return self._client.execute_packed(packed, "EVALSHA")


class PubSub:
    """Subscriptions on a connection of their own, restored after a reconnect."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._conn: Connection | None = None
        self.channels: set[Any] = set()
        self.patterns: set[Any] = set()

    def _connection(self) -> Connection:
        if self._conn is None or not self._conn.is_connected:
            # RESP2: messages are plain replies, so reading them needs no push handler.
            conn = self._client.new_connection(protocol=2)
            conn.connect()
            self._conn = conn
            if self.channels:
                conn.send(pack_commands([("SUBSCRIBE", *self.channels)]))
            if self.patterns:
                conn.send(pack_commands([("PSUBSCRIBE", *self.patterns)]))
        return self._conn

    def subscribe(self, *channels: Any) -> None:
        conn = self._connection()  # (re)connecting restores the earlier subscriptions
        self.channels.update(channels)
        conn.send(pack_commands([("SUBSCRIBE", *channels)]))

    def psubscribe(self, *patterns: Any) -> None:
        conn = self._connection()  # (re)connecting restores the earlier subscriptions
        self.patterns.update(patterns)
        conn.send(pack_commands([("PSUBSCRIBE", *patterns)]))

    def unsubscribe(self, *channels: Any) -> None:
        conn = self._connection()  # (re)connecting restores the earlier subscriptions
        self.channels.difference_update(channels)
        conn.send(pack_commands([("UNSUBSCRIBE", *channels)]))

    def punsubscribe(self, *patterns: Any) -> None:
        conn = self._connection()  # (re)connecting restores the earlier subscriptions
        self.patterns.difference_update(patterns)
        conn.send(pack_commands([("PUNSUBSCRIBE", *patterns)]))

    def get_message(self, timeout: float = 0.0) -> dict[str, Any] | None:
        """The next message or subscription event, or None when none came within ``timeout``.

        A lost connection is re-opened and every subscription restored; the call
        then returns None (messages published meanwhile are lost, as in Redis).
        """
        try:
            conn = self._connection()
            if not conn.wait_readable(timeout):
                return None
            return _message(conn.read_reply())
        except (BackendUnavailable, BackendTimeout):
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            return None

    def listen(self) -> Iterator[dict[str, Any]]:
        while self._conn is not None or self.channels or self.patterns:
            message = self.get_message(timeout=1.0)
            if message is not None:
                yield message

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.channels.clear()
        self.patterns.clear()


def _message(reply: Any) -> dict[str, Any]:
    kind = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
    if kind == "pmessage":
        return {"type": kind, "pattern": reply[1], "channel": reply[2], "data": reply[3]}
    return {"type": kind, "pattern": None, "channel": reply[1], "data": reply[2]}
