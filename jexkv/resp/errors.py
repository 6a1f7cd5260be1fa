"""Redis error replies as exceptions, mapped in one place.

Rule: the parser returns error replies as values (``ErrorReply``); the client
turns them into these exceptions with ``server_error``, so every adapter sees
the same classes. Socket and protocol failures are jexkv's BackendUnavailable,
BackendTimeout and ProtocolError (raised by the connection).

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
