"""Which SQLite library jexkv runs on: the one place its version is read.

Rules:
* A library older than MINIMUM is refused when a store or queue is opened, before any
  file is created: the newest statement jexkv needs is the KV's ``INSERT … ON CONFLICT
  DO UPDATE`` (UPSERT, SQLite 3.24.0); the rest (partial indexes, ``WITHOUT ROWID``,
  ``PRAGMA data_version``) is older. README "SQLite" states it.
* ``UPDATE … RETURNING`` (3.35.0) claims jobs in one statement; older libraries take the
  three-statement path. ``JEXKV_SQLITE_NO_RETURNING=1`` forces that path, for tests only
  (README "Development"); it is read on each call, so a test may also set it.
"""

from __future__ import annotations

import os
import sqlite3

from jexkv.errors import ConfigError

__all__ = ["MINIMUM", "has_returning", "library_version", "require"]

MINIMUM = (3, 24, 0)
_RETURNING = (3, 35, 0)


def library_version() -> tuple[int, int, int]:
    """The version of the SQLite library Python's sqlite3 module is linked with."""
    major, minor, patch = sqlite3.sqlite_version_info[:3]
    return (major, minor, patch)


def _text(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def require(path: str) -> None:
    """Raise ConfigError when the library is too old for jexkv to open ``path``."""
    found = library_version()
    if found < MINIMUM:
        raise ConfigError(
            f"jexkv needs SQLite {_text(MINIMUM)} or newer to open {path}; Python's sqlite3 "
            f"module is linked with SQLite {_text(found)}: use a Python built with a newer one"
        )


def has_returning() -> bool:
    """Whether job claims use ``UPDATE … RETURNING`` (unless a test switched it off)."""
    if os.environ.get("JEXKV_SQLITE_NO_RETURNING", "") not in ("", "0"):
        return False
    return library_version() >= _RETURNING
