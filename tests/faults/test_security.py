"""Security properties of jexkv.

* No pickle, marshal, shelve, eval, exec (or their kin) anywhere in jexkv/: found with ast,
  not grep; the Lua scripts load no code (loadstring, load, dofile, loadfile, require).
* A new SQLite file (KV store or queue, and its WAL and shared-memory files) has mode 0600,
  whatever the umask.
* A Redis password appears in no repr, no exception (text, repr, traceback, causes) and no
  record of the ``jexkv`` logger: an unreachable server, a server refusing the password,
  sentinel and cluster URLs, malformed URLs, a worker that keeps failing to reach its server.
* rediss:// verifies the server's certificate and host name by default.
* The Lua scripts are constant text and get data only through KEYS and ARGV: the scripts
  sent in a run with hostile keys, values, queue names and job ids are the ones a run with
  plain data sends, all of them the package's own; the hostile data round-trips as data.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import logging
import os
import re
import socket
import stat
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jexkv
from jexkv.resp.protocol import NEED_DATA, ReplyParser
from tests.helpers import wait_for
from tests.redis_server import RedisServer, TlsUnavailable, free_port, unavailable

PACKAGE = Path(jexkv.__file__).resolve().parent
SECRET = "S3cretPW"

# --------------------------------------------------------------------------- no code loading

FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "execfile"}


def python_files() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20, f"only {len(files)} files found under {PACKAGE}"
    return files


def forbidden_uses(source: str, filename: str) -> list[str]:
    found = []
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"{where}: import {alias.name}")
                if alias.name == "importlib" or alias.name.startswith("importlib."):
                    pass  # importlib.resources reads the Lua files; import_module is below
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[0]
            if module in FORBIDDEN_MODULES:
                found.append(f"{where}: from {node.module} import ...")
            if module == "builtins" and any(a.name in FORBIDDEN_CALLS for a in node.names):
                found.append(f"{where}: from builtins import {[a.name for a in node.names]}")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(f"{where}: {func.id}(...)")
            elif isinstance(func, ast.Attribute):
                owner = func.value
                owner_name = owner.id if isinstance(owner, ast.Name) else None
                if func.attr in FORBIDDEN_CALLS and owner_name in ("builtins", "__builtins__"):
                    found.append(f"{where}: {owner_name}.{func.attr}(...)")
                if owner_name in FORBIDDEN_MODULES:
                    found.append(f"{where}: {owner_name}.{func.attr}(...)")
                if func.attr == "import_module":
                    found.append(f"{where}: import_module(...)")
            # getattr(builtins, "eval") and the like
            if isinstance(func, ast.Name) and func.id == "getattr" and len(node.args) >= 2:
                name = node.args[1]
                if isinstance(name, ast.Constant) and name.value in FORBIDDEN_CALLS:
                    found.append(f"{where}: getattr(..., {name.value!r})")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_CALLS | FORBIDDEN_MODULES:
            if isinstance(node.ctx, ast.Load):  # passed around without being called
                found.append(f"{where}: reference to {node.id}")
    return found


def test_the_checker_finds_what_it_looks_for() -> None:
    bad = (
        "import pickle\nfrom marshal import loads\nimport shelve as s\n"
        "eval('1')\nexec('x = 1')\nbuiltins.eval('1')\ngetattr(builtins, 'exec')\n"
        "f = eval\nfrom builtins import exec\n"
    )
    assert len(forbidden_uses(bad, "bad.py")) >= 9
    fine = "import re\nre.compile('x')\nx = {'eval': 1}\nobj.exec_command()\nliteral_eval = 1\n"
    assert forbidden_uses(fine, "fine.py") == []


# The command line's worker imports the handler module its user names (MODULE:FUNCTION),
# as `python -m` would; a process worker's child imports the module of the handler its
# parent registered (processes.py checks that it can, child.py does it): that is the
# feature, not data turned into code.
ALLOWED = {
    ("runner.py", "import_module(...)"),
    ("processes.py", "import_module(...)"),
    ("child.py", "import_module(...)"),
}


def test_no_pickle_marshal_shelve_eval_or_exec_in_the_package() -> None:
    found = []
    for path in python_files():
        found += forbidden_uses(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))
    unexpected = [f for f in found if (f.split(":")[0], f.split(": ", 1)[1]) not in ALLOWED]
    assert unexpected == []


def lua_code(text: str) -> str:
    """Lua source without its comments (``--[[ ... ]]`` blocks and ``--`` lines)."""
    text = re.sub(r"--\[(=*)\[.*?\]\1\]", "", text, flags=re.DOTALL)
    return re.sub(r"--[^\n]*", "", text)


def test_the_lua_scripts_load_no_code() -> None:
    files = sorted((PACKAGE / "redis" / "lua").glob("*.lua"))
    assert len(files) >= 10
    found = []
    for path in files:
        code = lua_code(path.read_text(encoding="utf-8"))
        for match in re.finditer(r"\b(loadstring|load|dofile|loadfile|require|setfenv)\s*\(", code):
            found.append(f"{path.name}: {match.group(0)}")
        for match in re.finditer(r"\b(loadstring|load|dofile|loadfile)\b", code):
            found.append(f"{path.name}: reference to {match.group(0)}")
    assert {"kv_incr.lua", "kv_set_many.lua"} <= {path.name for path in files}  # the KV's too
    assert found == []


# --------------------------------------------------------------------------- SQLite file modes


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077], ids=["umask000", "umask022", "umask077"])
@pytest.mark.parametrize("kind", ["kv", "queue", "kv-then-queue"])
def test_a_new_sqlite_file_is_private(tmp_path: Path, mask: int, kind: str) -> None:
    path = tmp_path / "sub" / "store.db"
    url = f"sqlite:///{path}"
    with umask(mask):
        if kind == "queue":
            with jexkv.open_queue(url) as queue:
                queue.enqueue("q", "job", {"a": 1})
                seen = {p.name: mode_of(p) for p in path.parent.iterdir()}
        else:
            with jexkv.open_kv(url) as kv:
                kv.set("k", "v")
                if kind == "kv-then-queue":
                    with jexkv.open_queue(url) as queue:
                        queue.enqueue("q", "job")
                seen = {p.name: mode_of(p) for p in path.parent.iterdir()}
    assert "store.db" in seen
    # The database and its -wal and -shm files: read and write for the owner alone.
    assert {name: oct(m) for name, m in seen.items()} == {name: "0o600" for name in seen}


# --------------------------------------------------------------------------- Redis passwords


def texts_of_exception(exc: BaseException) -> list[str]:
    texts = ["".join(traceback.format_exception(type(exc), exc, exc.__traceback__))]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        current = current.__cause__ or current.__context__
    return texts


def assert_no_secret(texts: list[str], secret: str = SECRET, what: str = "") -> None:
    for text in texts:
        assert secret not in text, f"the password is in {what}: {text[:2000]}"
        # its URL-encoded and repr forms too
        assert repr(secret)[1:-1] not in text


def reprs_of(store: Any) -> list[str]:
    """repr of the store or queue and of the client objects inside it."""
    texts = [repr(store), str(store)]
    client = getattr(store, "_client", None)
    backend = getattr(store, "_backend", None)
    if client is None and backend is not None:
        client = getattr(backend, "_client", None)
        texts += [repr(backend)]
    assert client is not None, f"no client found in {store!r}"
    texts += [repr(client), str(client)]
    clients = [client]
    nodes = getattr(client, "_nodes", None)
    if isinstance(nodes, dict):
        clients += list(nodes.values())
    for one in clients:
        texts.append(repr(one))
        pool = getattr(one, "pool", None)
        if pool is not None:
            texts.append(repr(pool))
            texts += [repr(conn) for conn in list(getattr(pool, "_idle", []))]
        new_connection = getattr(one, "new_connection", None)
        if new_connection is not None and type(one).__name__ == "Redis":
            texts.append(repr(new_connection()))
    return texts


def log_texts(records: list[logging.LogRecord]) -> list[str]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    texts = []
    for record in records:
        texts.append(formatter.format(record))
        texts.append(repr(record.args))
        if record.exc_info:
            texts.append(formatter.formatException(record.exc_info))
    return texts


def closed_port() -> int:
    port = free_port()  # nothing listens there now
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    return port


FAST = {"connect_timeout_ms": 300, "socket_timeout_ms": 2000, "retries": 0}


def unreachable_urls() -> list[Any]:
    port = closed_port()
    return [
        pytest.param(f"redis://user:{SECRET}@127.0.0.1:{port}/0", id="redis-user"),
        pytest.param(f"redis://:{SECRET}@127.0.0.1:{port}/0", id="redis-no-user"),
        pytest.param(f"redis+sentinel://user:{SECRET}@127.0.0.1:{port}/mymaster/0", id="sentinel"),
        pytest.param(f"redis+cluster://user:{SECRET}@127.0.0.1:{port}", id="cluster"),
    ]


def exercise_kv(kv: jexkv.KVStore) -> list[BaseException]:
    errors: list[BaseException] = []
    for call in (
        lambda: kv.get("k"),
        lambda: kv.set("k", 1),
        lambda: kv.incr("n"),
        lambda: kv.set_many({"a": 1}),
        lambda: list(kv.keys()),
    ):
        try:
            call()
        except jexkv.JexkvError as exc:
            errors.append(exc)
    return errors


@pytest.mark.parametrize("url", unreachable_urls())
def test_password_of_an_unreachable_server_stays_secret(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="jexkv")
    with jexkv.open_kv(url, **FAST) as kv:
        errors = exercise_kv(kv)
        texts = reprs_of(kv)
    assert len(errors) == 5, errors
    assert all(isinstance(e, jexkv.BackendError) for e in errors), errors
    for exc in errors:
        texts += texts_of_exception(exc)
    queue = jexkv.open_queue(url, **FAST)
    try:
        with pytest.raises(jexkv.BackendError) as info:
            queue.enqueue("q", "job", {"x": 1})
        texts += texts_of_exception(info.value) + reprs_of(queue)
    finally:
        queue.close(timeout_ms=5000)
    texts += log_texts(caplog.records)
    assert_no_secret(texts, what=url)


@pytest.mark.parametrize("url", unreachable_urls())
def test_password_stays_out_of_the_worker_logs(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="jexkv")
    queue = jexkv.open_queue(url, **FAST)
    try:
        queue.register_worker("q", lambda job: None)
        # The worker keeps failing to reach the server, and says so on the jexkv logger.
        assert wait_for(
            lambda: any(r.levelno >= logging.WARNING for r in caplog.records), timeout=15
        ), "the worker logged nothing about the unreachable server"
        texts = reprs_of(queue)
    finally:
        queue.close(timeout_ms=5000)
    records = [r for r in caplog.records if r.name.startswith("jexkv")]
    assert records
    assert_no_secret(texts + log_texts(records), what=url)


# Malformed URLs: the error names what is wrong, never the password.
MALFORMED = [
    pytest.param("redis+sentinal://user:{s}@127.0.0.1:1/mymaster", id="unknown-scheme"),
    pytest.param("rediss+cluster://user:{s}@127.0.0.1:1", id="tls-cluster-scheme"),
    pytest.param("redis://user:{s}@[::1/0", id="bad-ipv6"),
    pytest.param("redis:/user:{s}@127.0.0.1:1/0", id="no-double-slash"),
    pytest.param("redis://user:{s}@127.0.0.1:port/0", id="bad-port"),
    pytest.param("redis://user:{s}@127.0.0.1:1/x", id="bad-db"),
    pytest.param("redis://user:{s}@127.0.0.1:1/0?nope=1", id="unknown-option"),
    pytest.param("redis://user:{s}@127.0.0.1:1/0#frag", id="fragment"),
    pytest.param("redis+cluster://user:{s}@127.0.0.1:x", id="cluster-bad-port"),
    pytest.param("redis+sentinel://user:{s}@127.0.0.1:1/", id="sentinel-no-service"),
    # a password with an unencoded '/' (it should be %2F): the URL splits inside it
    pytest.param("redis://user:{s}/x@127.0.0.1:1/0", id="slash-in-password"),
    pytest.param("redis+cluster://user:{s}/x@127.0.0.1:1", id="cluster-slash-in-password"),
    pytest.param("redis+sentinel://user:{s}/x@127.0.0.1:1/m", id="sentinel-slash-in-password"),
]


@pytest.mark.parametrize("template", MALFORMED)
@pytest.mark.parametrize("opener", [jexkv.open_kv, jexkv.open_queue], ids=["kv", "queue"])
def test_a_malformed_url_error_hides_the_password(template: str, opener: Any) -> None:
    with pytest.raises(jexkv.ConfigError) as info:
        opener(template.format(s=SECRET))
    assert_no_secret(texts_of_exception(info.value), what=template)


@pytest.fixture(scope="module")
def password_server() -> Iterator[RedisServer]:
    if os.environ.get("JEXKV_REDIS_URL"):
        pytest.skip("needs a redis-server started here (JEXKV_REDIS_URL is set)")
    server = RedisServer(password="The-Right-One-42")
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.mark.parametrize("user", ["", "default"])
def test_a_wrong_password_stays_secret(
    password_server: RedisServer, user: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="jexkv")
    url = password_server.url(db=3, username=user, password=SECRET)
    assert SECRET in url
    texts: list[str] = []
    with jexkv.open_kv(url, **FAST) as kv:
        errors = exercise_kv(kv)
        texts += reprs_of(kv)
    assert len(errors) == 5
    assert all(isinstance(e, jexkv.BackendUnavailable) for e in errors), errors
    assert "auth" in str(errors[0]).lower(), errors[0]  # says what is wrong
    for exc in errors:
        texts += texts_of_exception(exc)
    queue = jexkv.open_queue(url, **FAST)
    try:
        with pytest.raises(jexkv.BackendError) as info:
            queue.enqueue("q", "job")
        texts += texts_of_exception(info.value)
        queue.register_worker("q", lambda job: None)
        assert wait_for(
            lambda: any(r.levelno >= logging.WARNING for r in caplog.records), timeout=15
        )
        texts += reprs_of(queue)
    finally:
        queue.close(timeout_ms=5000)
    texts += log_texts(caplog.records)
    assert_no_secret(texts, what=url)
    assert_no_secret(texts, password_server.password or "", what=url)


def test_the_right_password_stays_secret_too(
    password_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="jexkv")
    secret = password_server.password or ""
    with jexkv.open_kv(password_server.url(db=3), **FAST) as kv:
        kv.set("k", {"v": 1})
        assert kv.get("k") == {"v": 1}
        texts = reprs_of(kv)
        with pytest.raises(jexkv.WrongTypeError) as info:
            kv.incr("k")
        texts += texts_of_exception(info.value)
        kv.delete("k")
    assert_no_secret(texts + log_texts(caplog.records), secret, what="a working store")


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls_server() -> Iterator[RedisServer]:
    if os.environ.get("JEXKV_REDIS_URL"):
        pytest.skip("needs a redis-server started here (JEXKV_REDIS_URL is set)")
    try:
        server = RedisServer(tls=True)
    except TlsUnavailable as exc:
        unavailable(f"TLS cannot be tested here: {exc}")
        raise
    try:
        try:
            server.start()
        except RuntimeError as exc:
            unavailable(f"redis-server did not start with TLS (built without it?): {exc}")
        yield server
    finally:
        server.cleanup()


def test_tls_refuses_a_server_it_cannot_verify(tls_server: RedisServer) -> None:
    url = tls_server.url(db=0)
    assert url.startswith("rediss://")
    with jexkv.open_kv(url, **FAST) as kv:
        with pytest.raises(jexkv.BackendUnavailable) as info:
            kv.set("k", 1)
    text = str(info.value).lower()
    assert "certificate" in text and "verif" in text, info.value


def test_tls_works_with_the_ca_file(tls_server: RedisServer) -> None:
    assert tls_server.tls is not None
    with jexkv.open_kv(tls_server.url(db=0), ssl_ca_file=tls_server.tls.ca_cert, **FAST) as kv:
        kv.set("tls", {"ok": True})
        assert kv.get("tls") == {"ok": True}
        assert kv.delete("tls") == 1
    queue = jexkv.open_queue(f"{tls_server.url(db=0)}?ssl_ca_file={tls_server.tls.ca_cert}")
    try:
        job = queue.enqueue("tlsq", "job", [1])
        assert queue.get_job("tlsq", job.id) is not None
    finally:
        queue.close()


def test_tls_checks_the_host_name_by_default(tls_server: RedisServer) -> None:
    # "127.1" reaches 127.0.0.1, but it is not a name the certificate was issued for.
    assert tls_server.tls is not None
    url = f"rediss://127.1:{tls_server.port}/0"
    ca = tls_server.tls.ca_cert
    with jexkv.open_kv(url, ssl_ca_file=ca, **FAST) as kv:
        with pytest.raises(jexkv.BackendUnavailable) as info:
            kv.get("k")
    assert "hostname" in str(info.value).lower() or "match" in str(info.value).lower()
    # Turning the check off is explicit, and then the same server is accepted.
    with jexkv.open_kv(url, ssl_ca_file=ca, ssl_check_hostname="false", **FAST) as kv:
        assert kv.get("k") is None


def test_a_plain_url_never_speaks_tls_options() -> None:
    with pytest.raises(jexkv.ConfigError):
        jexkv.open_kv("redis://127.0.0.1:1/0", ssl_ca_file="/nonexistent/ca.pem")


def test_a_missing_ca_file_is_a_jexkv_error(tmp_path: Path) -> None:
    with pytest.raises(jexkv.JexkvError):
        jexkv.open_kv("rediss://127.0.0.1:1/0", ssl_ca_file=str(tmp_path / "missing.pem"))


# --------------------------------------------------------------------------- Lua scripts


def known_scripts() -> dict[str, str]:
    """sha1 -> name of every script jexkv may send."""
    from jexkv.redis import scripts

    lib = scripts._source("lib")
    texts = {name: scripts.build(scripts._source(name), lib) for name in scripts.NAMES}
    texts.update({name: scripts._source(name) for name in scripts.KV_NAMES})
    return {hashlib.sha1(text.encode()).hexdigest(): name for name, text in texts.items()}


class Wiretap:
    """Every command jexkv's connections send, parsed back out of the bytes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from jexkv.resp.connection import Connection

        self.sent: list[bytes] = []
        original = Connection.send

        def send(conn: Any, data: bytes) -> None:
            self.sent.append(bytes(data))
            original(conn, data)

        monkeypatch.setattr(Connection, "send", send)

    def commands(self) -> list[list[bytes]]:
        parser = ReplyParser()  # commands are RESP arrays of bulk strings: replies' syntax
        parser.feed(b"".join(self.sent))
        out = []
        while (command := parser.next_reply()) is not NEED_DATA:
            out.append(command)
        assert parser.buffered == 0
        return out

    def scripts(self) -> tuple[set[str], list[list[bytes]]]:
        """(SHAs run by EVALSHA or loaded, every other script-ish command)."""
        shas: set[str] = set()
        others = []
        for command in self.commands():
            name = command[0].upper()
            if name in (b"EVALSHA", b"EVALSHA_RO"):
                shas.add(command[1].decode())
            elif name == b"SCRIPT" and command[1].upper() == b"LOAD":
                shas.add(hashlib.sha1(command[2]).hexdigest())
            elif name in (b"EVAL", b"EVAL_RO", b"FUNCTION", b"FCALL", b"FCALL_RO"):
                others.append(command)
        return shas, others


HOSTILE = "]] redis.call('FLUSHALL') --"
HOSTILE_VALUES = [
    HOSTILE,
    "'; redis.call('FLUSHALL'); --",
    '"); redis.call("FLUSHDB") --[[',
    "line1\nline2\r\n*1\r\n$8\r\nFLUSHALL\r\n",
    "\\'\\\"\x00\u2028é🙂",
    "%s %d {} $1 ${x} `id`",
    {"]]": ["--", "redis.call('DEL', KEYS[1])"], "k'": {"\n": None}},
]


def run_everything(url: str, data: list[Any], key_word: str, tag: str) -> dict[str, Any]:
    """The same KV and queue operations, with ``data`` as values and ``key_word`` in every
    key, queue name, job name and job id; what came back."""
    out: dict[str, Any] = {}
    with jexkv.open_kv(url, namespace=f"ns{tag}{key_word}:") as kv:
        for i, value in enumerate(data):
            key = f"{key_word}{i}"
            assert kv.set(key, value, ttl_ms=600_000)
            assert kv.set(key, value, nx=True) is False
            assert kv.set(key, value, xx=True)
            out[f"get{i}"] = kv.get(key)
            out[f"many{i}"] = kv.get_many([key, f"{key}-missing"])
            kv.set_many({key: value, f"{key}b": [value]}, ttl_ms=600_000)
            kv.set_many({f"{key}c": value})
            out[f"incr{i}"] = kv.incr(f"{key}n", 5, ttl_ms=600_000)
            if type(value) is not int:
                with pytest.raises(jexkv.WrongTypeError):
                    kv.incr(key)
            out[f"keys{i}"] = sorted(kv.keys(key))
            out[f"pop{i}"] = kv.pop(f"{key}c")
        out["clear"] = kv.clear()
    queue = jexkv.open_queue(url, namespace=f"ns{tag}", keep_completed=10)
    try:
        qname = f"q{key_word}"
        results: list[Any] = []

        def handler(job: jexkv.Job) -> Any:
            results.append(job.payload)
            if isinstance(job.payload, dict) and "fail" in job.payload:
                raise jexkv.Unrecoverable(str(job.payload["fail"]))
            return {"echo": job.payload, "name": job.name}

        jobs = [
            queue.enqueue(qname, f"{key_word}-job{i}", value, job_id=f"{key_word}-id{i}")
            for i, value in enumerate(data)
        ]
        again = queue.enqueue(qname, "dup", None, job_id=f"{key_word}-id0")
        assert again.id == jobs[0].id
        failing = queue.enqueue(qname, f"{key_word}-fails", {"fail": data[0]})
        queue.register_worker(qname, handler)
        assert wait_for(lambda: len(results) == len(data) + 1, timeout=20), results
        assert wait_for(lambda: queue.counts(qname)["dead"] == 1, timeout=10)
        assert wait_for(lambda: queue.counts(qname)["completed"] == len(data), timeout=10)
        out["payloads"] = sorted(results[: len(data)], key=repr)
        done = [queue.get_job(qname, job.id) for job in jobs]
        out["results"] = [(j.id, j.name, j.payload, j.result) for j in done if j is not None]
        dead = queue.dead_letters(qname)
        out["dead"] = [(j.id == failing.id, j.error) for j in dead]
        out["counts"] = queue.counts(qname)
        assert queue.purge_dead(qname) == 1
    finally:
        queue.close(timeout_ms=10_000)
    return out


@pytest.fixture
def fresh_db(redis_server: Any) -> Iterator[str]:
    url = redis_server.url(db=12)
    from jexkv.resp import Redis

    with Redis.from_url(url) as client:
        client.execute_command("FLUSHDB")
        client.execute_command("SET", "canary", "alive")
    yield url
    with Redis.from_url(url) as client:
        client.execute_command("FLUSHDB")


def canary_alive(url: str) -> bool:
    from jexkv.resp import Redis

    with Redis.from_url(url) as client:
        return client.execute_command("GET", "canary") == b"alive"


def test_lua_scripts_are_constant_and_hostile_data_stays_data(
    fresh_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = known_scripts()
    plain_tap = Wiretap(monkeypatch)
    plain = run_everything(
        fresh_db, ["hello", 1, [1, 2], {"a": "b"}, None, "x", {"y": 2}], "k", "p"
    )
    plain_shas, plain_others = plain_tap.scripts()
    monkeypatch.undo()
    assert canary_alive(fresh_db)

    hostile_tap = Wiretap(monkeypatch)
    hostile = run_everything(fresh_db, HOSTILE_VALUES, HOSTILE, "h")
    hostile_shas, hostile_others = hostile_tap.scripts()
    monkeypatch.undo()

    # Nothing ran: the canary and every other key are still there.
    assert canary_alive(fresh_db)
    # Only the package's own scripts, by hash; never an inline EVAL or a FUNCTION.
    assert plain_others == [] and hostile_others == []
    assert plain_shas <= set(known), {s: known.get(s) for s in plain_shas}
    assert hostile_shas == plain_shas, {
        "only with hostile data": sorted(hostile_shas - plain_shas),
        "only with plain data": sorted(known.get(s, s) for s in plain_shas - hostile_shas),
    }
    assert {"kv_incr", "kv_set_many", "add", "fetch"} <= {known[s] for s in plain_shas}

    # Every hostile value came back as itself, as data.
    for i, value in enumerate(HOSTILE_VALUES):
        key = f"{HOSTILE}{i}"
        assert hostile[f"get{i}"] == value
        assert hostile[f"many{i}"] == {key: value}
        assert hostile[f"incr{i}"] == 5
        assert hostile[f"keys{i}"] == sorted([key, f"{key}b", f"{key}c", f"{key}n"])
        assert hostile[f"pop{i}"] == value
    assert hostile["clear"] == plain["clear"]
    assert hostile["payloads"] == sorted(HOSTILE_VALUES, key=repr)
    assert sorted(hostile["results"], key=repr) == sorted(
        (
            (f"{HOSTILE}-id{i}", f"{HOSTILE}-job{i}", v, {"echo": v, "name": f"{HOSTILE}-job{i}"})
            for i, v in enumerate(HOSTILE_VALUES)
        ),
        key=repr,
    )
    assert hostile["dead"] == [(True, f"Unrecoverable: {HOSTILE}")]
    assert hostile["counts"] == plain["counts"]


def test_the_sha_of_each_script_does_not_depend_on_data(redis_server: Any) -> None:
    # Scripts are built once from package files: the text a Script object holds is the
    # same whatever store, namespace or prefix it serves.
    from jexkv.redis import scripts

    known = known_scripts()
    url = redis_server.url(db=12)
    a = jexkv.open_queue(url, namespace=HOSTILE, prefix="p1")
    b = jexkv.open_queue(url, namespace="plain", prefix="p2")
    try:
        sha_a = {n: s.sha for n, s in a._backend._scripts.items()}
        sha_b = {n: s.sha for n, s in b._backend._scripts.items()}
    finally:
        a.close()
        b.close()
    assert sha_a == sha_b
    assert set(sha_a.values()) <= set(known)
    assert set(sha_a) == set(scripts.NAMES)


def test_time_is_not_interpolated_either(fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two runs a moment apart send the same scripts (the clock goes in ARGV).
    tap = Wiretap(monkeypatch)
    with jexkv.open_queue(fresh_db) as queue:
        queue.enqueue("t", "a")
        time.sleep(0.01)
        queue.enqueue("t", "b", delay_ms=5)
        queue.counts("t")
    shas, others = tap.scripts()
    assert others == []
    assert shas <= set(known_scripts())
