"""Where a Redis connection goes and who it says it is: the settings that the sync and the
asyncio connections (``Endpoint``) and clients (``ClientSettings``) share, checked and kept in
one place; only their I/O lives in their own modules.
"""

from __future__ import annotations

import abc
import ssl
from typing import Any, TypeVar

from jexkv.resp.handshake import Handshake, handshake
from jexkv.resp.url import parse_redis_url

__all__ = ["ClientSettings", "Endpoint"]

_C = TypeVar("_C", bound="ClientSettings")


class Endpoint:
    """A connection's settings: address, TLS, timeouts, credentials, database, name."""

    def __init__(
        self,
        *,
        host: str = "localhost",
        port: int = 6379,
        path: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        connect_timeout: float = 5.0,
        socket_timeout: float = 5.0,
        username: str | None = None,
        password: str | None = None,
        db: int = 0,
        client_name: str | None = None,
        protocol: int = 3,
    ) -> None:
        if protocol not in (2, 3):
            raise ValueError(f"protocol must be 2 or 3, not {protocol!r}")
        self.host, self.port, self.path = host, port, path
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.connect_timeout = connect_timeout
        self.socket_timeout = socket_timeout
        self.username = username
        self._password = password
        self.db = db
        self.client_name = client_name
        self.protocol = protocol
        self.protocol_version = protocol

    @property
    def address(self) -> str:
        """Where this connection goes: ``host:port`` or the unix socket's path."""
        if self.path is not None:
            return self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def describe(self, connected: bool) -> str:
        """The repr: scheme, address, database and user, never the password."""
        if self.path is not None:
            scheme = "unix+tls" if self.ssl_context is not None else "unix"
        else:
            scheme = "rediss" if self.ssl_context is not None else "redis"
        state = "connected" if connected else "closed"
        user = f" user={self.username!r}" if self.username else ""
        return f"<{type(self).__name__} {scheme}://{self.address} db={self.db}{user} {state}>"

    def handshake(self) -> Handshake:
        """The handshake program this connection's driver runs (handshake.py)."""
        return handshake(
            self.address,
            protocol=self.protocol,
            username=self.username,
            password=self._password,
            client_name=self.client_name,
            db=self.db,
        )


class ClientSettings(abc.ABC):
    """A client's settings; ``_start`` (the client's own) then builds its connections' home
    (a pool, or one auto-pipelined connection per loop)."""

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
        self.host, self.port, self.db = host, port, db
        self.socket_timeout = socket_timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self._start(max_connections)

    @abc.abstractmethod
    def _start(self, max_connections: int) -> None:
        """Set up the client's connections (a pool, or one shared connection per loop)."""

    @classmethod
    def from_url(cls: type[_C], url: str, **options: Any) -> _C:
        """``redis://[[user]:password@]host[:port][/db]``, ``rediss://…`` (TLS, verified),
        ``unix:///path/redis.sock[?db=N]``; options in the query string or as keywords."""
        return cls(**parse_redis_url(url, options))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._where} db={self.db}>"
