"""SentinelRedis: a Redis client for the primary that Redis Sentinel names, across failovers.

Rules:
* Every new connection asks the sentinels (each in turn, the one that answered first next
  time) for the primary of the service (``SENTINEL get-master-addr-by-name``), and checks with
  ``ROLE`` that the server it reached is that primary.
* After a failover the old primary's connections fail or answer ``READONLY``: the pool is
  emptied so the next connection asks again. A ``READONLY`` answer means the command did not
  run, so it is sent again to the new primary (for at most ``failover_window_s``); a command
  whose connection dropped is not repeated if it may have run (Redis.execute_packed's rule).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from typing import Any

from jexkv.errors import BackendError, BackendUnavailable, ConfigError
from jexkv.resp.client import Redis
from jexkv.resp.connection import Connection
from jexkv.resp.errors import ReadOnlyError
from jexkv.resp.protocol import as_text

__all__ = ["SentinelRedis"]


class SentinelRedis(Redis):
    """``Redis`` whose server is the current primary of ``service``, as the sentinels say."""

    def __init__(
        self,
        sentinels: Sequence[tuple[str, int]],
        service: str,
        *,
        failover_window_s: float = 15.0,
        **options: Any,
    ) -> None:
        if not sentinels:
            raise ConfigError("Redis Sentinel needs at least one sentinel address")
        if options.get("ssl_context") is not None:
            raise ConfigError("TLS through Redis Sentinel is not supported")
        self.sentinels = list(sentinels)
        self.service = service
        self.failover_window_s = failover_window_s
        self._sentinel_lock = threading.Lock()
        self._timeout = float(options.get("connect_timeout", 5.0))
        super().__init__("sentinel", 0, **options)
        self._where = f"sentinel {service}"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SentinelRedis:
        """``redis+sentinel://[[user]:password@]host:port[,host:port…]/service[/db]``."""
        from jexkv.resp.url import parse_sentinel_url

        sentinels, service, kwargs = parse_sentinel_url(url, options)
        return cls(sentinels, service, **kwargs)

    def __repr__(self) -> str:
        sentinels = ",".join(f"{h}:{p}" for h, p in self.sentinels)
        return f"<SentinelRedis {self.service} via {sentinels} db={self.db}>"

    def primary_address(self) -> tuple[str, int]:
        """Ask the sentinels, in turn, where the primary of the service is now."""
        errors = []
        for address in list(self.sentinels):
            sentinel = Connection(
                host=address[0],
                port=address[1],
                connect_timeout=self._timeout,
                socket_timeout=self._timeout,
                protocol=2,
            )
            try:
                reply = sentinel.execute("SENTINEL", "get-master-addr-by-name", self.service)
            except BackendError as exc:
                errors.append(f"{address[0]}:{address[1]}: {exc}")
                continue
            finally:
                sentinel.close()
            if isinstance(reply, (list, tuple)) and len(reply) == 2:
                with self._sentinel_lock:  # ask the one that answered first next time
                    self.sentinels.remove(address)
                    self.sentinels.insert(0, address)
                return as_text(reply[0]), int(reply[1])
            errors.append(f"{address[0]}:{address[1]}: does not know {self.service!r}")
        raise BackendUnavailable(
            f"no sentinel named the primary of {self.service!r}: " + "; ".join(errors)
        )

    def new_connection(self, **overrides: Any) -> Connection:
        """A connection to the current primary (checked with ROLE once connected)."""
        host, port = self.primary_address()
        conn = super().new_connection(host=host, port=port, **overrides)
        conn.connect()
        role = conn.execute("ROLE")
        if not isinstance(role, (list, tuple)) or as_text(role[0]) != "master":
            conn.close()
            raise BackendUnavailable(f"{host}:{port} is not the primary of {self.service!r} yet")
        return conn

    def execute_packed(self, packed: bytes, name: str, *, timeout: float | None = None) -> Any:
        deadline = time.monotonic() + self.failover_window_s
        pause = 0.05
        while True:
            try:
                return super().execute_packed(packed, name, timeout=timeout)
            except ReadOnlyError:
                # A demoted primary refused it: the command did not run. Forget that server.
                self.pool.close_idle()
                if time.monotonic() + pause > deadline:
                    raise
            except BackendUnavailable:
                self.pool.close_idle()
                raise
            time.sleep(random.uniform(pause / 2, pause))
            pause = min(pause * 2, 1.0)
