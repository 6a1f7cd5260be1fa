"""The handshake of a new connection, without I/O: the sync and the asyncio connection drive it.

Rule: :func:`handshake` yields the commands a new connection sends (``HELLO 3`` with AUTH
and SETNAME, or on a server older than 6 the RESP2 ``AUTH`` and ``CLIENT SETNAME``; then
``SELECT``) and gets each reply sent back; it returns the protocol version spoken. Error
replies are turned into BackendUnavailable here, once, with messages that never quote the
password: a missing one and a wrong one each say so.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from jexkv.errors import BackendUnavailable
from jexkv.resp.protocol import ErrorReply

__all__ = ["Handshake", "handshake"]

_AUTH_CODES = frozenset({"WRONGPASS", "NOAUTH"})

Handshake = Generator[tuple[Any, ...], Any, int]


def _is_auth_error(reply: ErrorReply) -> bool:
    if reply.code in _AUTH_CODES:
        return True
    text = reply.message.lower()
    return "auth" in text or "password" in text


def check(reply: Any, what: str, address: str, password: str | None) -> Any:
    """``reply``, or the BackendUnavailable for an error reply to ``what``."""
    if isinstance(reply, ErrorReply):
        text = str(reply)
        if password:
            text = text.replace(password, "***")
        if reply.code == "NOAUTH" and password is None:
            raise BackendUnavailable(
                f"{address}: the server requires a password, and none was given"
                " (redis://[user]:PASSWORD@host…)"
            )
        if _is_auth_error(reply):
            raise BackendUnavailable(
                f"authentication failed on {address}: wrong username or password ({text})"
            )
        raise BackendUnavailable(f"{what} failed on {address}: {text}")
    return reply


def handshake(
    address: str,
    *,
    protocol: int,
    username: str | None,
    password: str | None,
    client_name: str | None,
    db: int,
) -> Handshake:
    """Commands to send (yielded), replies to send back; returns the protocol version."""
    version = 2
    resp2 = protocol != 3
    if protocol == 3:
        hello: list[object] = ["HELLO", 3]
        if password is not None:
            hello += ["AUTH", username or "default", password]
        if client_name:
            hello += ["SETNAME", client_name]
        reply = yield tuple(hello)
        if not isinstance(reply, ErrorReply):
            version = 3
        elif reply.code == "NOPROTO" or "unknown command" in reply.message.lower():
            resp2 = True  # a server older than 6: no HELLO, no RESP3
        else:
            check(reply, "HELLO", address, password)
    if resp2:
        if password is not None:
            auth: tuple[object, ...] = (
                ("AUTH", username, password) if username else ("AUTH", password)
            )
            check((yield auth), "AUTH", address, password)
        if client_name:
            check((yield ("CLIENT", "SETNAME", client_name)), "CLIENT SETNAME", address, password)
    if db:
        check((yield ("SELECT", db)), f"SELECT {db}", address, password)
    return version
