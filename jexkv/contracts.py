"""The public contract every adapter keeps, as typing Protocols.

Rule: this module holds no behaviour. Each method's docstring is the contract
(../shared/CONTRACT.md in the project's steering notes); the memory adapter is the
reference implementation and the contract test suite runs every adapter
against the same cases.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["KVStore"]


@runtime_checkable
class KVStore(Protocol):
    """A key-value store whose keys may expire.

    Keys are non-empty ``str``; values are anything JSON can carry and come back
    as JSON decodes them. Times are int milliseconds. A key past its TTL is never
    returned, counted or listed, even before the background purge removes it.
    Every method is safe to call from many threads at once; every method raises
    :class:`jexkv.ClosedError` after :meth:`close`.
    """

    def get(self, key: str, default: Any = None) -> Any:
        """The live value of ``key``, or ``default`` if it is missing or expired."""

    def set(
        self,
        key: str,
        value: Any,
        *,
        ttl_ms: int | None = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        """Write ``value``; True when written.

        ``nx``: only if the key is absent; ``xx``: only if it is present (not both).
        Without ``ttl_ms`` any earlier TTL of the key is removed.
        """

    def delete(self, *keys: str) -> int:
        """Remove ``keys``; how many of them were live."""

    def exists(self, key: str) -> bool:
        """Whether ``key`` is live."""

    def ttl_ms(self, key: str) -> int:
        """Remaining ms; -1 if the key has no expiry; -2 if it is missing."""

    def expire(self, key: str, ttl_ms: int) -> bool:
        """Set a TTL on a live key; False if the key is missing."""

    def persist(self, key: str) -> bool:
        """Drop the TTL of a live key; True if it had one."""

    def incr(self, key: str, amount: int = 1, *, ttl_ms: int | None = None) -> int:
        """Atomically add ``amount``; a missing key starts at 0.

        ``ttl_ms`` applies only when this call creates the key (a fixed window).
        A value that is not an int raises :class:`jexkv.WrongTypeError`.
        """

    def pop(self, key: str, default: Any = None) -> Any:
        """Atomically get and delete: of two concurrent pops exactly one gets the value."""

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The live keys among ``keys``, with their values."""

    def set_many(self, mapping: Mapping[str, Any], *, ttl_ms: int | None = None) -> None:
        """Write every item, atomically where the backend allows; nothing if any is invalid."""

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Live keys starting with ``prefix``, in no set order, fetched lazily."""

    def clear(self) -> int:
        """Remove every key of this store (its namespace only); how many were live."""

    def close(self) -> None:
        """Stop background threads and release resources; safe to call twice."""

    def __enter__(self) -> KVStore: ...

    def __exit__(self, *exc_info: object) -> None: ...
