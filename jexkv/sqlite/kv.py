"""SQLiteKV: the KV contract over the ``kv`` table of one SQLite file.

Rule: every read filters on ``expires_at`` itself, so an expired row is never
seen even before the vacuum thread deletes it, and reads never write. Each
write is one autocommit statement, or a ``BEGIN IMMEDIATE`` transaction when it
must read first (incr, pop, clear, many keys), so it is atomic across threads
and processes alike.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jexkv.clock import now_ms
from jexkv.codec import (
    NX_AND_XX,
    check_amount,
    check_key,
    check_prefix,
    check_ttl,
    decode,
    encode,
)
from jexkv.errors import ClosedError, InvalidArgument, WrongTypeError
from jexkv.namespaces import check_namespace
from jexkv.sqlite.db import Database

__all__ = ["SQLiteKV"]

log = logging.getLogger("jexkv")

_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_ONE = "ns = ? AND key = ?"  # every statement names its namespace: two never meet
# Values are read as their UTF-8 bytes (CAST … AS BLOB) and decoded by codec.decode, in
# chunks when large: sqlite3's own text decoding peaks at up to 6x a non-ASCII value.
_VALUE = "CAST(value AS BLOB)"
_GET = f"SELECT {_VALUE} FROM kv WHERE {_ONE} AND {_LIVE}"
_SET = "INSERT OR REPLACE INTO kv (ns, key, value, expires_at) VALUES (?, ?, ?, ?)"
_SET_NX = (
    "INSERT INTO kv (ns, key, value, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (ns, key)"
    " DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
    " WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= ?"
)
_SET_XX = f"UPDATE kv SET value = ?, expires_at = ? WHERE {_ONE} AND {_LIVE}"
_EXISTS = f"SELECT 1 FROM kv WHERE {_ONE} AND {_LIVE}"
_TTL = f"SELECT expires_at FROM kv WHERE {_ONE} AND {_LIVE}"
_DELETE = f"DELETE FROM kv WHERE {_ONE} AND {_LIVE}"
_EXPIRE = f"UPDATE kv SET expires_at = ? WHERE {_ONE} AND {_LIVE}"
_PERSIST = f"UPDATE kv SET expires_at = NULL WHERE {_ONE} AND expires_at > ?"
_POP = f"SELECT {_VALUE}, expires_at FROM kv WHERE {_ONE}"
_VACUUM = "DELETE FROM kv WHERE (ns, key) IN (SELECT ns, key FROM kv WHERE expires_at <= ? LIMIT ?)"
_CHUNK = 500  # keys per statement or page: well under SQLite's variable limit


def _prefix_end(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: no bound).

    SQLite compares TEXT as UTF-8 bytes, which orders like code points.
    """
    while prefix:
        code = ord(prefix[-1]) + 1
        if code <= 0x10FFFF:
            if 0xD800 <= code <= 0xDFFF:  # surrogates have no UTF-8 form
                code = 0xE000
            return prefix[:-1] + chr(code)
        prefix = prefix[:-1]
    return None


def _range(ns: str, start: str) -> tuple[str, tuple[Any, ...]]:
    """SQL condition and parameters for the keys of namespace ``ns`` starting with ``start``."""
    end = _prefix_end(start)
    if end is None:
        return "ns = ? AND key >= ?", (ns, start)
    return "ns = ? AND key >= ? AND key < ?", (ns, start, end)


class SQLiteKV:
    """A KV store in a SQLite file that threads and processes may share."""

    def __init__(
        self,
        path: str,
        *,
        namespace: str = "",
        vacuum_interval_ms: int = 60_000,
        vacuum_batch: int = 500,
        busy_timeout_ms: int = 10_000,
    ) -> None:
        self._db = Database(path, busy_timeout_ms=busy_timeout_ms)
        self.path = self._db.path
        self._ns = check_namespace(namespace)
        self._closed = False
        self._vacuum_batch = vacuum_batch
        self._stop = threading.Event()
        self._vacuum_thread = threading.Thread(
            target=self._vacuum_loop,
            args=(vacuum_interval_ms / 1000.0,),
            name="jexkv-vacuum",
            daemon=True,
        )
        self._vacuum_thread.start()

    def _key(self, key: object) -> str:
        if self._closed:
            raise ClosedError(f"this KV store on {self.path} is closed")
        return check_key(key)

    def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        rows = self._db.read(sql, params)
        return rows[0] if rows else None

    # -- reads -----------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        rows = self._db.read(_GET, (self._ns, self._key(key), now_ms()))
        # Popped: the bytes are then held by decode() alone, which frees them before the parse.
        return decode(rows.pop()[0], key) if rows else default

    def exists(self, key: str) -> bool:
        return bool(self._db.read(_EXISTS, (self._ns, self._key(key), now_ms())))

    def ttl_ms(self, key: str) -> int:
        name = self._key(key)
        now = now_ms()
        row = self._one(_TTL, (self._ns, name, now))
        if row is None:
            return -2
        return -1 if row[0] is None else int(row[0]) - now

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        names = list(dict.fromkeys(self._key(key) for key in keys))
        now = now_ms()
        found = {}
        for i in range(0, len(names), _CHUNK):
            chunk = names[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT key, {_VALUE} FROM kv WHERE ns = ? AND key IN ({marks}) AND {_LIVE}"
            for name, data in self._db.read(sql, (self._ns, *chunk, now)):
                found[name] = decode(data, name)
        return found

    def keys(self, prefix: str = "") -> Iterator[str]:
        if self._closed:
            raise ClosedError(f"this KV store on {self.path} is closed")
        check_prefix(prefix)
        return self._iter_keys(prefix)

    def _iter_keys(self, start: str) -> Iterator[str]:
        # Keyset pages: no read transaction stays open while the caller iterates.
        cond, params = _range(self._ns, start)
        first = f"SELECT key FROM kv WHERE {cond} AND {_LIVE} ORDER BY key LIMIT {_CHUNK}"
        more = (
            f"SELECT key FROM kv WHERE key > ? AND {cond} AND {_LIVE} ORDER BY key LIMIT {_CHUNK}"
        )
        rows = self._db.read(first, (*params, now_ms()))
        while rows:
            for (name,) in rows:
                yield name
            if len(rows) < _CHUNK:
                return
            if self._closed:
                raise ClosedError(f"this KV store on {self.path} is closed")
            rows = self._db.read(more, (rows[-1][0], *params, now_ms()))

    # -- writes ----------------------------------------------------------------------

    def set(
        self,
        key: str,
        value: Any,
        *,
        ttl_ms: int | None = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        name = self._key(key)
        text = encode(value)
        now = now_ms()
        expires_at = None if ttl_ms is None else now + check_ttl(ttl_ms)
        if nx:
            if xx:
                raise InvalidArgument(NX_AND_XX)
            return self._db.write(_SET_NX, (self._ns, name, text, expires_at, now)) > 0
        if xx:
            return self._db.write(_SET_XX, (text, expires_at, self._ns, name, now)) > 0
        self._db.write(_SET, (self._ns, name, text, expires_at))
        return True

    def set_many(self, mapping: Mapping[str, Any], *, ttl_ms: int | None = None) -> None:
        items = [(self._key(key), encode(value)) for key, value in mapping.items()]
        expires_at = None if ttl_ms is None else now_ms() + check_ttl(ttl_ms)
        rows = [(self._ns, name, text, expires_at) for name, text in items]
        if rows:
            self._db.transaction(lambda conn: conn.executemany(_SET, rows))

    def delete(self, *keys: str) -> int:
        names = [self._key(key) for key in keys]
        now = now_ms()
        if len(names) == 1:
            return self._db.write(_DELETE, (self._ns, names[0], now))
        rows = [(self._ns, name, now) for name in names]
        return self._db.transaction(lambda conn: conn.executemany(_DELETE, rows).rowcount)

    def expire(self, key: str, ttl_ms: int) -> bool:
        name = self._key(key)
        ttl = check_ttl(ttl_ms)
        now = now_ms()
        return self._db.write(_EXPIRE, (now + ttl, self._ns, name, now)) > 0

    def persist(self, key: str) -> bool:
        return self._db.write(_PERSIST, (self._ns, self._key(key), now_ms())) > 0

    def incr(self, key: str, amount: int = 1, *, ttl_ms: int | None = None) -> int:
        name = self._key(key)
        ns = self._ns
        check_amount(amount)
        ttl = None if ttl_ms is None else check_ttl(ttl_ms)

        def add(conn: sqlite3.Connection) -> int:
            now = now_ms()
            row = conn.execute(_GET, (ns, name, now)).fetchone()
            if row is None:
                expires_at = None if ttl is None else now + ttl
                conn.execute(_SET, (ns, name, str(amount), expires_at))
                return amount
            current = decode(row[0], key)
            if type(current) is not int:
                raise WrongTypeError(f"incr: the value of {key!r} is not an int")
            conn.execute(f"UPDATE kv SET value = ? WHERE {_ONE}", (str(current + amount), ns, name))
            return current + amount

        return self._db.transaction(add)

    def pop(self, key: str, default: Any = None) -> Any:
        one = (self._ns, self._key(key))

        missing = object()

        def take(conn: sqlite3.Connection) -> Any:
            row = conn.execute(_POP, one).fetchone()
            if row is None:
                return missing
            conn.execute(f"DELETE FROM kv WHERE {_ONE}", one)
            if row[1] is not None and row[1] <= now_ms():
                return missing  # expired: gone either way
            # Decoded before the commit: a value that is not JSON raises, and the
            # rollback keeps it (another client wrote it; it is not ours to lose).
            return decode(row[0], key)

        value = self._db.transaction(take)
        return default if value is missing else value

    def clear(self) -> int:
        if self._closed:
            raise ClosedError(f"this KV store on {self.path} is closed")
        cond, params = "ns = ?", (self._ns,)

        def wipe(conn: sqlite3.Connection) -> int:
            live = conn.execute(
                f"SELECT count(*) FROM kv WHERE {cond} AND {_LIVE}", (*params, now_ms())
            ).fetchone()[0]
            conn.execute(f"DELETE FROM kv WHERE {cond}", params)
            return int(live)

        return self._db.transaction(wipe)

    # -- vacuum ----------------------------------------------------------------------

    def vacuum_once(self) -> int:
        """Delete expired rows in small batches, each its own short transaction."""
        total = 0
        while not self._stop.is_set():
            deleted = self._db.write(_VACUUM, (now_ms(), self._vacuum_batch))
            total += deleted
            if deleted < self._vacuum_batch:
                break
        if total:
            # Hand the freed pages back to the file system (auto_vacuum=INCREMENTAL).
            self._db.read("PRAGMA incremental_vacuum(1000)")
        return total

    def _vacuum_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.vacuum_once()
            except Exception:  # a busy or failing file must not kill the thread
                log.exception("vacuum of %s failed", self.path)

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._vacuum_thread is not threading.current_thread():
            self._vacuum_thread.join()
        self._db.close()

    def __enter__(self) -> SQLiteKV:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<SQLiteKV sqlite:///{self.path} namespace={self._ns!r}{state}>"
