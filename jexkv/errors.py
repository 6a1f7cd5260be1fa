"""One exception tree for everything jexkv raises.

::

    JexkvError                      root: ``except jexkv.JexkvError`` catches all of ours
    ├── ConfigError (ValueError)    bad URL, unknown scheme or option, misuse of the API
    ├── InvalidArgument (ValueError)     an argument jexkv refuses (an empty key, a ttl_ms of 0)
    ├── InvalidArgumentType (TypeError)  an argument of the wrong type (a key that is no str)
    ├── SerializationError (TypeError)   a value JSON cannot carry (set, object, NaN)
    ├── WrongTypeError (TypeError)  an operation on a value of the wrong kind (incr on text)
    ├── ClosedError                 a call on a store or queue after close()
    ├── Unrecoverable               raised by a job handler: dead-letter the job now, no retry
    ├── JobTimeout (TimeoutError)   an attempt ran past its timeout_ms (the attempt fails)
    ├── WorkerCrashed               the child process running an attempt died
    ├── WaitTimeout (TimeoutError)  wait_for gave up before the job finished
    ├── JobNotFound (LookupError)   wait_for was given an id no job on that queue has
    └── BackendError                the storage behind the store failed
        ├── BackendUnavailable      it cannot be reached or opened (I/O error, refused)
        ├── BackendTimeout          it stayed busy past the deadline (a locked SQLite file)
        └── ProtocolError           a Redis server sent bytes that are not valid RESP

Errors coming from a backend are raised ``from`` their cause, so the original
exception stays in the traceback.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "ClosedError",
    "ConfigError",
    "InvalidArgument",
    "InvalidArgumentType",
    "JexkvError",
    "JobNotFound",
    "JobTimeout",
    "ProtocolError",
    "SerializationError",
    "Unrecoverable",
    "WaitTimeout",
    "WorkerCrashed",
    "WrongTypeError",
]


class JexkvError(Exception):
    """The root of every error jexkv raises on purpose."""


class ConfigError(JexkvError, ValueError):
    """A malformed URL, an unknown scheme or option, or a misuse of the API."""


class InvalidArgument(JexkvError, ValueError):
    """An argument jexkv refuses, checked before any I/O: an empty key, a ``ttl_ms`` that is
    not a positive int, a job id of digits, a queue name holding ``:``…"""


class InvalidArgumentType(JexkvError, TypeError):
    """An argument of the wrong type, checked before any I/O: a key that is not a str, a
    handler that is not callable…"""


class SerializationError(JexkvError, TypeError):
    """A value that JSON cannot encode (a set, an arbitrary object, NaN)."""


class WrongTypeError(JexkvError, TypeError):
    """An operation on a stored value of the wrong kind, e.g. ``incr`` on text."""


class ClosedError(JexkvError):
    """The store or queue was closed."""


class Unrecoverable(JexkvError):
    """Raise it in a job handler to send the job to the dead-letter state at once."""


class WaitTimeout(JexkvError, TimeoutError):
    """``wait_for`` gave up: the job had not finished when ``timeout_ms`` passed."""


class JobTimeout(JexkvError, TimeoutError):
    """An attempt ran past its ``timeout_ms``: it fails (and is retried like any failure)."""


class WorkerCrashed(JexkvError):
    """The child process running an attempt died (a signal, ``os._exit``, out of memory)."""


class JobNotFound(JexkvError, LookupError):
    """``wait_for`` was given the id of no job on that queue (never added, or finished and
    removed before the wait began)."""


class BackendError(JexkvError):
    """The backend (a SQLite file, a Redis server) failed."""


class BackendUnavailable(BackendError):
    """The backend cannot be reached or opened."""


class BackendTimeout(BackendError):
    """The backend stayed busy (locked) until the deadline passed."""


class ProtocolError(BackendError):
    """The server's bytes are not valid RESP; the connection they came on is dropped."""
