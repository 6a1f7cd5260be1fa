"""Blocker: blocking pops on a connection of their own, ended early from any thread.

Rules:
* A blocking command (``BZPOPMIN`` over many keys) holds its connection for as long as it
  waits, so it never borrows one from the pool: a Blocker owns one, named as its user asks
  (BullMQ's workers name theirs so that ``getWorkers()`` lists them), on the node that holds
  its keys' slot.
* Any thread may end the running wait early with :meth:`Blocker.interrupt` (``CLIENT
  UNBLOCK`` of the connection's id, sent over the pool): the wait then returns None.
* What the server refuses (ACLs) is learnt once: ``can_block`` turns False when it refuses
  ``BZPOPMIN``, ``can_interrupt`` when it refuses ``CLIENT``; the caller decides what to do
  instead. A slot that moved (``MOVED``/``ASK`` on a cluster) is reported to the client and
  the next wait finds the slot's node again; the wait returns None meanwhile.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable

from jexkv.errors import BackendError
from jexkv.resp.errors import ServerError
from jexkv.resp.protocol import ErrorReply, as_text, pack_command

if TYPE_CHECKING:
    from jexkv.resp.client import Redis
    from jexkv.resp.connection import Connection

__all__ = ["Blocker", "BlockerState"]

_SLACK_S = 0.25  # how late past its timeout the server may answer a blocking command
_REDIRECTS = frozenset({"MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"})


class BlockerState:
    """What every Blocker (sync, asyncio) knows and decides; its subclass does the I/O."""

    def __init__(
        self,
        node_for: Callable[[str], Any],
        on_redirect: Callable[[ErrorReply], None],
        client_name: str | None = None,
    ) -> None:
        self._node_for = node_for
        self._on_redirect = on_redirect
        self.client_name = client_name
        self.can_block = True
        self.can_interrupt = True
        self._node: Any = None
        self._conn: Any = None
        self._conn_id: int | None = None

    def _identified(self, conn: Any, reply: Any) -> None:
        """The reply to ``CLIENT ID`` on the new connection ``conn``: kept for interrupt()."""
        self._conn_id = None
        if isinstance(reply, ErrorReply) and reply.code == "NOPERM":
            self.can_interrupt = False
        elif isinstance(reply, ErrorReply):
            conn.close()
            raise BackendError(f"CLIENT ID failed on {conn.address}: {reply}")
        elif reply is not None:
            self._conn_id = int(reply)
        self._conn = conn

    def _popped(self, reply: Any, keys: Sequence[str]) -> tuple[str, Any, Any] | None:
        """What a BZPOPMIN reply means for the caller (see ``Blocker.bzpopmin``)."""
        if isinstance(reply, ErrorReply):
            self.close()
            if reply.code == "NOPERM":
                self.can_block = False
                return None
            if reply.code in _REDIRECTS:
                self._on_redirect(reply)  # the next call finds the slot's node again
                return None
            raise BackendError(f"BZPOPMIN {' '.join(keys)} failed: {reply}")
        if not reply:
            return None
        key, member, score = reply
        return as_text(key), member, score

    def _bzpopmin(self, keys: Sequence[str], timeout_s: float) -> tuple[bytes, float]:
        """The packed command, and how long its reply may take."""
        wait = timeout_s + self._conn.socket_timeout + _SLACK_S
        return pack_command("BZPOPMIN", *keys, f"{timeout_s:.3f}"), wait

    def close(self) -> None:
        conn, self._conn, self._conn_id = self._conn, None, None
        if conn is not None:
            conn.close()


class Blocker(BlockerState):
    _node: Redis | None
    _conn: Connection | None

    def _connect(self, key: str) -> Connection:
        node: Redis = self._node_for(key)
        self._node = node
        conn = node.new_connection(client_name=self.client_name)
        conn.connect()
        self._identified(conn, conn.execute("CLIENT", "ID") if self.can_interrupt else None)
        return conn

    def bzpopmin(self, keys: Sequence[str], timeout_s: float) -> tuple[str, Any, Any] | None:
        """Pop the lowest member of the first of ``keys`` that has one, waiting up to
        ``timeout_s``: (key, member, score), or None (timed out, interrupted, refused, or
        the slot moved). Connection errors raise (the next call connects again)."""
        conn = self._conn
        if conn is None or not conn.is_connected or conn.pid != os.getpid():
            conn = self._connect(keys[0])
        packed, wait = self._bzpopmin(keys, timeout_s)
        try:
            conn.send(packed)
            reply = conn.read_reply(wait)
        except BaseException:
            self.close()
            raise
        return self._popped(reply, keys)

    def interrupt(self) -> bool:
        """End the running wait now, from any thread; False when none was running (not yet
        sent, or over already), or where CLIENT is refused (it ends by its own timeout)."""
        conn_id, node = self._conn_id, self._node
        if conn_id is None or node is None:
            return False
        try:
            return bool(node.execute_command("CLIENT", "UNBLOCK", conn_id))
        except (BackendError, ServerError):
            return False  # it ends by its own timeout then
