"""Redis: jexkv's own client over a connection pool, with pipelines, scripts, pub/sub.

Rules:
* Error replies become exceptions here (errors.server_error), never in the parser.
* A command is retried after a connection error only when repeating it cannot
  change the result: when the failure came before anything was sent, or when the
  command is safe to repeat (``commands.SAFE``). A write that may have reached the server is not
  silently repeated; the caller gets the error.
* A timeout is never retried, and a retry starts only inside the call's bound
  (connect_timeout + the reply's timeout, counted from the call's start): a call
  against a server that stops answering raises BackendTimeout within that bound,
  and any call ends within twice it (README, "The Redis client").
* A connection that failed in the middle of a reply is closed by the connection
  itself and never returns to the pool.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from jexkv.errors import BackendTimeout, BackendUnavailable, ConfigError
from jexkv.resp.blocking import Blocker
from jexkv.resp.commands import blocking_timeout, command_name
from jexkv.resp.connection import Connection
from jexkv.resp.endpoint import ClientSettings
from jexkv.resp.errors import NoScriptError, server_error
from jexkv.resp.evalsha import EvalSha
from jexkv.resp.pipelines import Commands, framed, replies_of
from jexkv.resp.pool import ConnectionPool
from jexkv.resp.protocol import ErrorReply, pack_command, pack_commands
from jexkv.resp.retry import Loading, Resend

__all__ = ["PubSub", "Pipeline", "Redis", "Script"]


class Redis(ClientSettings):
    """A thread-safe Redis client: any thread may call any method at any time."""

    def _start(self, max_connections: int) -> None:
        self.pool = ConnectionPool(self.new_connection, max_connections=max_connections)

    def new_connection(self, **overrides: Any) -> Connection:
        """A connection with this client's settings (and ``overrides``), not yet connected."""
        return Connection(**{**self._settings, **overrides})

    # -- commands ----------------------------------------------------------------------

    def execute_command(self, *args: Any, timeout: float | None = None) -> Any:
        """Send one command; its reply, or the ServerError it answered with."""
        name = command_name(args[0]) if args else ""
        if timeout is None:
            timeout = blocking_timeout(name, args, self.socket_timeout)
        return self.execute_packed(pack_command(*args), name, timeout=timeout)

    def execute_packed(self, packed: bytes, name: str, *, timeout: float | None = None) -> Any:
        """Send one command packed already (protocol.pack_command); ``name`` is the
        command's name in capitals, which decides whether it may be retried."""
        loading = None
        while True:
            reply = self._send_packed(packed, name, timeout)
            if not isinstance(reply, ErrorReply):
                return reply
            loading = loading or Loading(self.socket_timeout)
            pause = loading.pause(reply)
            if pause is None:
                raise server_error(reply)
            time.sleep(pause)

    def _send_packed(self, packed: bytes, name: str, timeout: float | None) -> Any:
        """One command sent (again only after a connection error when it is safe), and its
        reply, an ErrorReply included."""
        wait = self.socket_timeout if timeout is None else timeout
        resend = Resend(name, self.retries, self.connect_timeout + wait)
        while True:
            sent = False
            try:
                with self.pool.connection() as conn:
                    sent = True
                    conn.send(packed)
                    return conn.read_reply(timeout)
            except BackendTimeout:
                raise  # the server does not answer: waiting again would double the wait
            except BackendUnavailable:
                pause = resend.pause(sent)
                if pause is None:
                    raise
                time.sleep(pause)

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


class Pipeline(Commands):
    """Commands queued, then sent in one write; with ``transaction``, inside MULTI/EXEC."""

    def __init__(self, client: Redis, transaction: bool) -> None:
        super().__init__(transaction)
        self._client = client
        self._watching: Connection | None = None

    def watch(self, *keys: Any) -> None:
        """WATCH keys now, on the connection that will run the transaction."""
        if not self._transaction:
            raise ConfigError("watch() needs pipeline(transaction=True)")
        if self._watching is None:
            self._watching = self._client.pool.acquire()
        reply = self._watching.execute("WATCH", *keys)
        if isinstance(reply, ErrorReply):
            self.reset()
            raise server_error(reply)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Send every queued command in one write; their replies, in order."""
        commands = self._take()
        pool = self._client.pool
        conn, self._watching = self._watching, None
        if not commands:
            if conn is not None:
                self._release_watched(conn)
            return []
        conn = conn or pool.acquire()
        try:
            commands = framed(commands, self._transaction)
            conn.send(pack_commands(commands))
            replies = [conn.read_reply() for _ in commands]
        except BaseException:
            pool.discard(conn)
            raise
        pool.release(conn)
        return replies_of(replies, self._transaction, raise_on_error)

    def _release_watched(self, conn: Connection) -> None:
        try:
            conn.execute("UNWATCH")
        except Exception:
            self._client.pool.discard(conn)
        else:
            self._client.pool.release(conn)

    def reset(self) -> None:
        """Drop queued commands and any WATCH."""
        self._take()
        conn, self._watching = self._watching, None
        if conn is not None:
            self._release_watched(conn)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.reset()


class Script(EvalSha):
    """A Lua script run with EVALSHA; loaded on the first NOSCRIPT answer (evalsha.py)."""

    def __init__(self, client: Redis, lua: str) -> None:
        super().__init__(lua)
        self._client = client

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
