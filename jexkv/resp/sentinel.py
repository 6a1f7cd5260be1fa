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

import time
from collections.abc import Sequence
from typing import Any

from jexkv.errors import BackendError, BackendUnavailable
from jexkv.resp.client import Redis
from jexkv.resp.connection import Connection
from jexkv.resp.errors import ReadOnlyError
from jexkv.resp.failover import SentinelSettings

__all__ = ["SentinelRedis"]


class SentinelRedis(SentinelSettings, Redis):
    """``Redis`` whose server is the current primary of ``service``, as the sentinels say."""

    def __init__(
        self,
        sentinels: Sequence[tuple[str, int]],
        service: str,
        *,
        failover_window_s: float = 15.0,
        **options: Any,
    ) -> None:
        self._sentinel_setup(sentinels, service, failover_window_s, options)
        Redis.__init__(self, "sentinel", 0, **options)
        self._where = f"sentinel {service}"

    def primary_address(self) -> tuple[str, int]:
        """Ask the sentinels, in turn, where the primary of the service is now."""
        errors: list[str] = []
        for address in list(self.sentinels):
            sentinel = Connection(**self._sentinel_settings(address))
            try:
                reply = sentinel.execute("SENTINEL", "get-master-addr-by-name", self.service)
            except BackendError as exc:
                errors.append(f"{address[0]}:{address[1]}: {exc}")
                continue
            finally:
                sentinel.close()
            primary = self._primary_named(address, reply, errors)
            if primary is not None:
                return primary
        raise self._no_primary(errors)

    def new_connection(self, **overrides: Any) -> Connection:
        """A connection to the current primary (checked with ROLE once connected)."""
        host, port = self.primary_address()
        conn = super().new_connection(host=host, port=port, **overrides)
        conn.connect()
        try:
            self._is_primary(conn.execute("ROLE"), host, port)
        except BaseException:
            conn.close()
            raise
        return conn

    def execute_packed(self, packed: bytes, name: str, *, timeout: float | None = None) -> Any:
        backoff = self._failover_backoff()
        while True:
            try:
                return super().execute_packed(packed, name, timeout=timeout)
            except ReadOnlyError:
                # A demoted primary refused it: the command did not run. Forget that server.
                self.pool.close_idle()
                pause = backoff.next()
                if pause is None:
                    raise
            except BackendUnavailable:
                self.pool.close_idle()
                raise
            time.sleep(pause)
