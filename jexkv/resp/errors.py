"""Redis error replies as exceptions, mapped in one place.

Rules: the parser returns error replies as values (``ErrorReply``); the client
turns them into these exceptions with ``server_error``, so every adapter sees
the same classes. Socket failures are mapped in one place too, ``socket_errors``, for every
step of every connection (sync or asyncio): a timeout becomes BackendTimeout, any other
OSError (TLS errors included) BackendUnavailable, raised ``from`` it, and the connection is
closed first whatever went wrong, ProtocolError (bad bytes) included.

::

    BackendError
    ├── ServerError            an error reply: .code ("ERR", "WRONGTYPE", …) and .message
    │   ├── WrongTypeError     WRONGTYPE (also a jexkv.WrongTypeError)
    │   ├── NoScriptError      NOSCRIPT: the script is not in the server's cache
    │   ├── ExecAbortError     EXECABORT: a transaction was discarded
    │   └── ReadOnlyError      READONLY: a write sent to a replica
    └── WatchError             a watched key changed: the transaction did not run
"""

from __future__ import annotations

import socket
from types import TracebackType
from typing import Callable, Union

from jexkv import errors
from jexkv.resp.protocol import ErrorReply

__all__ = [
    "ExecAbortError",
    "NoScriptError",
    "ReadOnlyError",
    "ServerError",
    "WatchError",
    "WrongTypeError",
    "server_error",
    "socket_errors",
]


class ServerError(errors.BackendError):
    """The server answered with an error reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code} {message}" if message else code)
        self.code = code
        self.message = message


class WrongTypeError(ServerError, errors.WrongTypeError):
    """WRONGTYPE: an operation against a key holding the wrong kind of value."""


class NoScriptError(ServerError):
    """NOSCRIPT: EVALSHA of a script the server has not loaded."""


class ExecAbortError(ServerError):
    """EXECABORT: the transaction was discarded because of an earlier error."""


class ReadOnlyError(ServerError):
    """READONLY: a write was sent to a read-only replica."""


class WatchError(errors.BackendError):
    """A key watched with WATCH changed before EXEC: the transaction did not run."""


_BY_CODE: dict[str, type[ServerError]] = {
    "WRONGTYPE": WrongTypeError,
    "NOSCRIPT": NoScriptError,
    "EXECABORT": ExecAbortError,
    "READONLY": ReadOnlyError,
}


def server_error(reply: ErrorReply) -> ServerError:
    """The exception for an error reply."""
    if reply.code == "NOAUTH":  # a command before AUTH: "Authentication required."
        return ServerError("NOAUTH", "the server requires a password, and none was given")
    return _BY_CODE.get(reply.code, ServerError)(reply.code, reply.message)


_TIMEOUTS: tuple[type[BaseException], ...] = (socket.timeout, TimeoutError)
Text = Union[str, Callable[[], str]]  # a message, or what makes it (only when it is raised)


class socket_errors:  # noqa: N801 - used as a context manager, like contextlib's
    """One step of a connection (connect, send, receive): whatever it raises closes the
    connection (``close``) first; a timeout (``timeouts``: an asyncio caller adds its own)
    becomes ``BackendTimeout(timed_out)``, any other OSError ``BackendUnavailable("{failed}:
    {the error}")``, both raised from it; anything else is raised as it is. The texts may be
    callables, called only when there is an error (a reply is read per command)."""

    __slots__ = ("_close", "_failed", "_timed_out", "_timeouts")

    def __init__(
        self,
        timed_out: Text,
        failed: Text,
        close: Callable[[], object],
        timeouts: tuple[type[BaseException], ...] = _TIMEOUTS,
    ) -> None:
        self._timed_out, self._failed, self._close, self._timeouts = (
            timed_out,
            failed,
            close,
            timeouts,
        )

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            return
        self._close()
        if isinstance(exc, self._timeouts):
            raise errors.BackendTimeout(_text(self._timed_out)) from exc
        if isinstance(exc, OSError):  # refused, reset, unreachable, TLS failures (ssl.SSLError)
            raise errors.BackendUnavailable(f"{_text(self._failed)}: {exc}") from exc


def _text(text: Text) -> str:
    return text if isinstance(text, str) else text()
