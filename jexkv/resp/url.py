"""Redis URLs to client arguments: ``redis://``, ``rediss://`` (TLS, verified), ``unix://``,
``redis+cluster://`` and ``redis+sentinel://``.

Rule: every part and option is checked here; a bad one raises ConfigError naming
it (never quoting the password) before anything connects.
"""

from __future__ import annotations

import re
import ssl
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from jexkv.errors import ConfigError

__all__ = [
    "OPTIONS",
    "option_value",
    "parse_cluster_url",
    "parse_redis_url",
    "parse_sentinel_url",
    "redact_url",
]

_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*:/*)(.*)@", re.DOTALL)


def redact_url(url: str) -> str:
    """``url`` fit for an error or a log line: whatever stands between the scheme and the
    last ``@`` (user and password) becomes ``***``, even in a URL that does not parse.
    Any URL: jexkv.urls uses it for every store's."""
    return _USERINFO.sub(r"\1***@", url, count=1)


# The one table of the client's options, as a URL's query string or keywords give them:
# name -> (type, least value of an int). jexkv.urls takes it for open_kv/open_queue too.
OPTIONS: dict[str, tuple[type, int]] = {
    "connect_timeout_ms": (int, 1),
    "socket_timeout_ms": (int, 1),
    "max_connections": (int, 1),
    "retries": (int, 0),
    "db": (int, 0),
    "client_name": (str, 0),
    "ssl_ca_file": (str, 0),
    "ssl_cert_file": (str, 0),
    "ssl_key_file": (str, 0),
    "ssl_check_hostname": (bool, 0),
}
_FLAGS = {"1": True, "true": True, "yes": True, "on": True,
          "0": False, "false": False, "no": False, "off": False}  # fmt: skip


def option_value(name: str, value: Any) -> Any:
    """The value of client option ``name`` (a key of OPTIONS) given as ``value``: its own
    type, or text from a query string; ConfigError naming it otherwise."""
    kind, minimum = OPTIONS[name]
    if kind is bool:
        if isinstance(value, bool):
            return value
        flag = _FLAGS.get(value.lower()) if isinstance(value, str) else None
        if flag is None:
            raise ConfigError(f"option {name!r} must be true or false, got {value!r}")
        return flag
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"option {name!r} must be a str, got {type(value).__name__}")
        return value
    if isinstance(value, str):
        try:
            value = int(value, 10)
        except ValueError:
            raise ConfigError(f"option {name!r} must be an int, got {value!r}") from None
    if type(value) is not int:
        raise ConfigError(f"option {name!r} must be an int, got {type(value).__name__}: {value!r}")
    if value < minimum:
        raise ConfigError(f"option {name!r} must be >= {minimum}, got {value}")
    return value


def _split(url: str) -> tuple[SplitResult, int | None] | None:
    """``url`` split, and its port; None when it does not parse."""
    try:
        parts = urlsplit(url)
        return parts, parts.port
    except ValueError:
        return None


def parse_redis_url(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of Redis() for a redis://, rediss:// or unix:// URL."""
    split = _split(url)
    if split is None:
        # The parser's message may quote a password (an unencoded "/" in it): raised outside
        # its except block, so it is not even the error's __context__.
        raise ConfigError(
            f"malformed Redis URL {redact_url(url)!r}: bad host or port "
            "(percent-encode '/', '@' and ':' in a password)"
        )
    parts, port = split
    scheme = parts.scheme.lower()
    given = _query(parts.query, options)
    kwargs: dict[str, Any] = {}
    if scheme in ("redis", "rediss"):
        kwargs["host"] = parts.hostname or "localhost"
        kwargs["port"] = port or 6379
        db_text = parts.path.lstrip("/") or str(given.pop("db", 0))
    elif scheme == "unix":
        if not parts.path:
            raise ConfigError("unix:// URLs need the socket's path: unix:///path/redis.sock")
        kwargs["path"] = unquote(parts.path)
        db_text = str(given.pop("db", 0))
    else:
        raise ConfigError(f"not a Redis URL scheme: {parts.scheme!r}")
    try:
        kwargs["db"] = int(db_text)
    except ValueError:
        raise ConfigError(f"the Redis database must be a number, got {db_text!r}") from None
    if parts.username:
        kwargs["username"] = unquote(parts.username)
    if parts.password is not None:
        kwargs["password"] = unquote(parts.password)
    return _client_options(given, scheme == "rediss", kwargs)


def _client_options(given: dict[str, Any], tls_url: bool, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The connection options of every kind of Redis URL, into ``kwargs``."""
    for name, key in (
        ("connect_timeout_ms", "connect_timeout"),
        ("socket_timeout_ms", "socket_timeout"),
    ):
        if name in given:
            kwargs[key] = given.pop(name) / 1000.0
    for name in ("max_connections", "retries", "client_name"):
        if name in given:
            kwargs[name] = given.pop(name)
    tls = {k: given.pop(k) for k in list(given) if k.startswith("ssl_")}
    if tls_url:
        try:
            context = ssl.create_default_context(cafile=tls.get("ssl_ca_file"))
            if "ssl_cert_file" in tls:
                context.load_cert_chain(tls["ssl_cert_file"], tls.get("ssl_key_file"))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the TLS files of the Redis URL: {exc}") from None
        context.check_hostname = tls.get("ssl_check_hostname", True)
        kwargs["ssl_context"] = context
    elif tls:
        raise ConfigError(f"TLS options need a rediss:// URL: {', '.join(sorted(tls))}")
    return kwargs


def _hosts(netloc: str, default_port: int, what: str) -> tuple[list[tuple[str, int]], str]:
    """The ``host:port,host:port`` list of a cluster or sentinel URL, and its user info."""
    userinfo, _, hostlist = netloc.rpartition("@")
    hosts = []
    for number, item in enumerate(hostlist.split(","), 1):
        if not item:
            raise ConfigError(f"{what} URL has an empty host (number {number})")
        split = _split(f"//{item}")
        if split is None:
            raise ConfigError(
                f"malformed host number {number} in the {what} URL "
                "(percent-encode '/', '@' and ':' in a password)"
            )
        host, port = split[0].hostname, split[1]
        if not host:
            raise ConfigError(f"malformed host number {number} in the {what} URL")
        hosts.append((host, port or default_port))
    return hosts, userinfo


def _userinfo(userinfo: str, kwargs: dict[str, Any]) -> None:
    if not userinfo:
        return
    user, colon, password = userinfo.partition(":")
    if user:
        kwargs["username"] = unquote(user)
    if colon:
        kwargs["password"] = unquote(password)


def _query(query: str, options: dict[str, Any]) -> dict[str, Any]:
    given = {**dict(parse_qsl(query, keep_blank_values=True)), **options}
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"unknown Redis option(s) {', '.join(map(repr, unknown))}")
    return {name: option_value(name, value) for name, value in given.items()}


def parse_cluster_url(
    url: str, options: dict[str, Any]
) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """(seed nodes, keyword arguments of each node's Redis()) of a ``redis+cluster://`` URL."""
    scheme, _, rest = url.partition("://")
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    if "?" in netloc:
        netloc, _, query = netloc.partition("?")
    given = _query(query, options)
    seeds, userinfo = _hosts(netloc, 6379, "redis+cluster://")
    db = path.strip("/") or str(given.pop("db", 0))
    if db != "0":
        raise ConfigError(f"a Redis Cluster has only database 0, the URL names {db!r}")
    kwargs: dict[str, Any] = {}
    _userinfo(userinfo, kwargs)
    return seeds, _client_options(given, scheme.lower() == "rediss+cluster", kwargs)


def parse_sentinel_url(
    url: str, options: dict[str, Any]
) -> tuple[list[tuple[str, int]], str, dict[str, Any]]:
    """(sentinels, service name, keyword arguments of Redis() for the primary) of a
    ``redis+sentinel://host:port[,host:port…]/service[/db]`` URL."""
    scheme, _, rest = url.partition("://")
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    given = _query(query, options)
    sentinels, userinfo = _hosts(netloc, 26379, "redis+sentinel://")
    service, _, db_text = path.strip("/").partition("/")
    if not service:
        raise ConfigError("redis+sentinel:// URL names no service: write …/mymaster[/db]")
    db_text = db_text or str(given.pop("db", 0))
    kwargs: dict[str, Any] = {}
    try:
        kwargs["db"] = int(db_text)
    except ValueError:
        raise ConfigError(f"the Redis database must be a number, got {db_text!r}") from None
    _userinfo(userinfo, kwargs)
    return sentinels, unquote(service), _client_options(given, False, kwargs)
