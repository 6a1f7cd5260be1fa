"""AsyncSentinelRedis: the asyncio client of the primary Redis Sentinel names (sentinel.py's
rules, with only the I/O different).

Rules:
* Every new connection asks the sentinels (each in turn, the one that answered first next
  time) for the primary of the service, and checks with ``ROLE`` that it is that primary.
* After a failover the old primary's connection fails or answers ``READONLY``: it is
  dropped, so the next one asks again. A ``READONLY`` answer means the command did not run,
  so it is sent again to the new primary (for at most ``failover_window_s``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Callable

from jexkv.errors import BackendError, BackendUnavailable
from jexkv.resp.aio_client import AsyncRedis
from jexkv.resp.aio_connection import AsyncConnection
from jexkv.resp.errors import ReadOnlyError
from jexkv.resp.failover import SentinelSettings
from jexkv.resp.protocol import pack_command

__all__ = ["AsyncSentinelRedis"]


class AsyncSentinelRedis(SentinelSettings, AsyncRedis):
    """``AsyncRedis`` whose server is the current primary of ``service``."""

    def __init__(
        self,
        sentinels: Sequence[tuple[str, int]],
        service: str,
        *,
        failover_window_s: float = 15.0,
        **options: Any,
    ) -> None:
        self._sentinel_setup(sentinels, service, failover_window_s, options)
        AsyncRedis.__init__(self, "sentinel", 0, **options)
        self._where = f"sentinel {service}"

    async def primary_address(self) -> tuple[str, int]:
        """Ask the sentinels, in turn, where the primary of the service is now."""
        errors: list[str] = []
        for address in list(self.sentinels):
            sentinel = AsyncConnection(**self._sentinel_settings(address))
            try:
                await sentinel.connect()
                reply = await sentinel.request(
                    pack_command("SENTINEL", "get-master-addr-by-name", self.service)
                )
            except BackendError as exc:
                errors.append(f"{address[0]}:{address[1]}: {exc}")
                continue
            finally:
                sentinel.close()
            primary = self._primary_named(address, reply, errors)
            if primary is not None:
                return primary
        raise self._no_primary(errors)

    async def _open(self, **overrides: Any) -> AsyncConnection:
        """A connection to the current primary, checked with ROLE once connected."""
        host, port = await self.primary_address()
        conn = await super()._open(host=host, port=port, **overrides)
        try:
            self._is_primary(await conn.request(pack_command("ROLE")), host, port)
        except BaseException:
            conn.close()
            raise
        return conn

    def _forget_primary(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def execute_command(self, *args: Any, timeout: float | None = None) -> Any:
        parent = super().execute_command
        return await self._failing_over(lambda wait: parent(*args, timeout=wait), timeout)

    async def execute_packed(
        self, packed: bytes, name: str, *, timeout: float | None = None
    ) -> Any:
        parent = super().execute_packed
        return await self._failing_over(lambda wait: parent(packed, name, timeout=wait), timeout)

    async def _failing_over(
        self, call: Callable[[float | None], Any], timeout: float | None
    ) -> Any:
        backoff = self._failover_backoff()
        while True:
            try:
                return await call(timeout)
            except ReadOnlyError:
                # A demoted primary refused it: the command did not run. Forget that server.
                self._forget_primary()
                pause = backoff.next()
                if pause is None:
                    raise
            except BackendUnavailable:
                self._forget_primary()
                raise
            await asyncio.sleep(pause)
