"""What the sync and the asyncio Sentinel clients share apart from I/O: their settings
(checked), how the sentinels' answer and the primary's ``ROLE`` are read, and how long a
``READONLY`` answer is waited out after a failover.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, TypeVar

from jexkv.errors import BackendUnavailable, ConfigError
from jexkv.resp.protocol import as_text
from jexkv.resp.retry import Backoff

__all__ = ["SentinelSettings"]

Address = tuple[str, int]
_S = TypeVar("_S", bound="SentinelSettings")


class SentinelSettings:
    """Mixed in before the client class: ``SentinelRedis(SentinelSettings, Redis)``."""

    sentinels: list[Address]
    service: str
    failover_window_s: float
    db: int

    def _sentinel_setup(
        self,
        sentinels: Sequence[Address],
        service: str,
        failover_window_s: float,
        options: dict[str, Any],
    ) -> None:
        if not sentinels:
            raise ConfigError("Redis Sentinel needs at least one sentinel address")
        if options.get("ssl_context") is not None:
            raise ConfigError("TLS through Redis Sentinel is not supported")
        self.sentinels = list(sentinels)
        self.service = service
        self.failover_window_s = failover_window_s
        self._sentinel_lock = threading.Lock()
        self._ask_timeout = float(options.get("connect_timeout", 5.0))

    @classmethod
    def from_url(cls: type[_S], url: str, **options: Any) -> _S:
        """``redis+sentinel://[[user]:password@]host:port[,host:port…]/service[/db]``."""
        from jexkv.resp.url import parse_sentinel_url

        sentinels, service, kwargs = parse_sentinel_url(url, options)
        return cls(sentinels, service, **kwargs)  # type: ignore[call-arg]

    def __repr__(self) -> str:
        sentinels = ",".join(f"{h}:{p}" for h, p in self.sentinels)
        return f"<{type(self).__name__} {self.service} via {sentinels} db={self.db}>"

    def _sentinel_settings(self, address: Address) -> dict[str, Any]:
        """How to reach the sentinel at ``address`` (RESP2, the connect timeout for all)."""
        timeout = self._ask_timeout
        return dict(
            host=address[0], port=address[1], connect_timeout=timeout, socket_timeout=timeout,
            protocol=2,
        )  # fmt: skip

    def _primary_named(self, address: Address, reply: Any, errors: list[str]) -> Address | None:
        """The primary the sentinel at ``address`` named in ``reply`` (that sentinel is asked
        first next time), or None with the reason added to ``errors``."""
        if isinstance(reply, (list, tuple)) and len(reply) == 2:
            with self._sentinel_lock:
                self.sentinels.remove(address)
                self.sentinels.insert(0, address)
            return as_text(reply[0]), int(reply[1])
        errors.append(f"{address[0]}:{address[1]}: does not know {self.service!r}")
        return None

    def _no_primary(self, errors: list[str]) -> BackendUnavailable:
        return BackendUnavailable(
            f"no sentinel named the primary of {self.service!r}: " + "; ".join(errors)
        )

    def _is_primary(self, role: Any, host: str, port: int) -> None:
        """Raise unless ``role`` (the reply to ROLE) says the server is a primary."""
        if not isinstance(role, (list, tuple)) or not role or as_text(role[0]) != "master":
            raise BackendUnavailable(f"{host}:{port} is not the primary of {self.service!r} yet")

    def _failover_backoff(self) -> Backoff:
        """Pauses from 50 ms to 1 s while a demoted primary answers READONLY."""
        return Backoff(self.failover_window_s, 0.05, 1.0)
