"""The command line, run as a user runs it: ``python -m jexkv ...`` in a subprocess.

Every command runs with the working directory in a fresh tmp_path, PYTHONPATH at the repo root
(so the checkout's jexkv is used) and JEXKV_URL removed unless a test sets it. Worker processes
that a test starts are killed at its end if they are still running.
"""

from __future__ import annotations

import ast
import json
import pathlib
import re
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any, Callable

import pytest

import jexkv
from tests.helpers import REPO_ROOT, python_env, wait_for

EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.py"))
TIMEOUT = 30.0  # seconds: the longest one CLI command may run
DEADLINE = 20.0  # seconds: the longest any wait for a worker may take
STORY = ("reset token", "ttl", "expired", "sendWelcomeEmail", "dead", "retry", "counts")
STATES = ("waiting", "delayed", "active", "completed", "dead")

Worker = Callable[..., "subprocess.Popen[bytes]"]


def _env(**extra: str) -> dict[str, str]:
    env = python_env()
    env.pop("JEXKV_URL", None)
    env.update(extra)
    return env


def cli(
    cwd: pathlib.Path, *args: str, env: dict[str, str] | None = None, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m jexkv ARGS`` in ``cwd`` and return what it did."""
    return subprocess.run(
        [sys.executable, "-m", "jexkv", *args],
        cwd=str(cwd),
        env=env if env is not None else _env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(cwd: pathlib.Path, *args: str, env: dict[str, str] | None = None) -> str:
    """stdout of a command that must succeed, without a traceback."""
    proc = cli(cwd, *args, env=env)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}: {proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def ok_json(cwd: pathlib.Path, *args: str) -> Any:
    """The one JSON document a ``--json`` command prints."""
    out = ok(cwd, "--json", *args)
    try:
        return json.loads(out)
    except ValueError:
        pytest.fail(f"{args} --json printed no JSON document: {out!r}")


def _has(line: str, word: str) -> bool:
    """``word`` appears in ``line`` as a whole token."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", line) is not None


def _state_counts(cwd: pathlib.Path, url: tuple[str, ...], queue: str) -> dict[str, int]:
    """The five states' counts of ``queue`` (``queue counts --json``; it may print more)."""
    counts = ok_json(cwd, *url, "queue", "counts", queue)
    return {k: counts[k] for k in STATES}


def _counts_text(out: str) -> dict[str, int]:
    counts = {}
    for line in out.splitlines():
        state, _, n = line.partition(":")
        counts[state.strip()] = int(n)
    return counts


def _module(folder: pathlib.Path, name: str, source: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(source))


def _err(folder: pathlib.Path, index: int = 0) -> str:
    path = folder / f"worker-{index}.err"
    return path.read_text(errors="replace") if path.exists() else ""


def _signal_exit_code(
    folder: pathlib.Path, proc: subprocess.Popen[bytes], sig: int, what: str, timeout: float = 15
) -> int:
    """Send ``sig`` (called ``what`` in a failure) to the worker; its exit code, which must
    come within ``timeout`` seconds."""
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"worker still running {timeout:g} s after {what}: {_err(folder)}")


def _wait_ready(folder: pathlib.Path, proc: subprocess.Popen[bytes], index: int = 0) -> None:
    wait_for(lambda: "ready" in _err(folder, index) or proc.poll() is not None, timeout=DEADLINE)
    assert proc.poll() is None, f"worker exited early ({proc.returncode}): {_err(folder, index)}"
    assert "ready" in _err(folder, index), f"worker never said ready: {_err(folder, index)}"


# --- help ----------------------------------------------------------------------------------------


def test_help_lists_the_commands(tmp_path: pathlib.Path) -> None:
    out = ok(tmp_path, "--help")
    for command in ("demo", "worker", "queue", "kv"):
        assert _has(out, command), out
    assert list(tmp_path.iterdir()) == []


# --- demo ----------------------------------------------------------------------------------------


def test_demo_tells_the_story(tmp_path: pathlib.Path) -> None:
    t0 = time.monotonic()
    proc = cli(tmp_path, "demo")
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert took < 30, f"demo took {took:.1f} s"
    missing = [p for p in STORY if p.lower() not in proc.stdout.lower()]
    assert missing == [], f"demo output lacks {missing}:\n{proc.stdout}"
    # The default store is a SQLite file in a temporary folder, not in the working directory.
    assert list(tmp_path.iterdir()) == []
    print(f"\ndemo took {took:.1f} s")


def test_demo_uses_url_and_ignores_jexkv_url(tmp_path: pathlib.Path) -> None:
    env = _env(JEXKV_URL="ftp://not-used-by-the-demo")
    proc = cli(tmp_path, "demo", "--url", "sqlite:///story.db", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert (tmp_path / "story.db").exists()
    assert not (tmp_path / "jexkv.db").exists()


# --- kv ------------------------------------------------------------------------------------------


def test_kv_set_get_ttl_del_keys_round_trip(tmp_path: pathlib.Path) -> None:
    url = ("--url", "sqlite:///kv.db")

    def run(*args: str) -> str:  # global options after the command
        return ok(tmp_path, "kv", *args, *url)

    def run_json(*args: str) -> Any:
        return ok_json(tmp_path, "kv", *args, *url)

    # VALUE is JSON when it parses, else a string.
    for key, text in [
        ("greeting", "hello world"),
        ("n", "42"),
        ("obj", '{"a": 1, "b": [true, null]}'),
        ("quoted", '"42"'),
        ("flag", "true"),
    ]:
        assert run("set", key, text).strip() == "OK"
    assert run("get", "greeting").strip() == '"hello world"'
    assert run("get", "n").strip() == "42"
    assert json.loads(run("get", "obj")) == {"a": 1, "b": [True, None]}
    assert run("get", "quoted").strip() == '"42"'
    assert run("get", "flag").strip() == "true"
    assert run("get", "missing").strip() == "(nil)"

    assert run_json("get", "n") == {"key": "n", "found": True, "value": 42}
    assert run_json("get", "obj") == {
        "key": "obj",
        "found": True,
        "value": {"a": 1, "b": [True, None]},
    }
    got = run_json("get", "missing")
    assert (got["key"], got["found"], got.get("value")) == ("missing", False, None)

    # TTLs: -1 without expiry, -2 when missing, the remaining ms otherwise.
    assert run("ttl", "n").strip() == "-1"
    assert run("ttl", "missing").strip() == "-2"
    assert run("set", "token", '{"user_id": 7}', "--ttl-ms", "60000").strip() == "OK"
    left = int(run("ttl", "token"))
    assert 0 < left <= 60000
    ttl = run_json("ttl", "token")
    assert ttl["key"] == "token" and 0 < ttl["ttl_ms"] <= 60000
    assert run_json("ttl", "missing") == {"key": "missing", "ttl_ms": -2}

    # A short TTL runs out.
    assert run("set", "short", "soon gone", "--ttl-ms", "300").strip() == "OK"
    time.sleep(0.4)
    assert run("get", "short").strip() == "(nil)"
    assert run("ttl", "short").strip() == "-2"

    # --nx / --xx
    assert run("set", "n", "43", "--nx").strip() == "(not set)"
    assert run("set", "absent", "1", "--xx").strip() == "(not set)"
    assert run_json("set", "n", "44", "--nx") == {"key": "n", "written": False}
    assert run_json("set", "n", "45", "--xx") == {"key": "n", "written": True}
    assert run("get", "n").strip() == "45"
    assert run("set", "fresh", "1", "--nx").strip() == "OK"

    # keys
    live = {"greeting", "n", "obj", "quoted", "flag", "token", "fresh"}
    assert set(run("keys").split()) == live
    assert len(run("keys").splitlines()) == len(live)
    assert sorted(run_json("keys")) == sorted(live)
    assert sorted(run("keys", "f").split()) == ["flag", "fresh"]
    assert len(run("keys", "--limit", "2").splitlines()) == 2

    # del
    assert run("del", "greeting", "flag", "missing").strip() == "2"
    assert run_json("del", "quoted") == {"deleted": 1}
    assert run_json("del", "quoted") == {"deleted": 0}
    assert run("get", "greeting").strip() == "(nil)"

    # The file is relative to the working directory and is an ordinary jexkv store.
    with jexkv.open_kv("sqlite:///" + str(tmp_path / "kv.db")) as store:
        assert sorted(store.keys()) == ["fresh", "n", "obj", "token"]
        assert store.get("token") == {"user_id": 7}
        assert store.get("n") == 45
    assert not (tmp_path / "jexkv.db").exists()


def test_kv_default_url_then_jexkv_url(tmp_path: pathlib.Path) -> None:
    assert ok(tmp_path, "kv", "set", "a", "1").strip() == "OK"
    assert (tmp_path / "jexkv.db").exists()  # the default: sqlite:///jexkv.db
    env = _env(JEXKV_URL="sqlite:///from-env.db")
    assert ok(tmp_path, "kv", "get", "a", env=env).strip() == "(nil)"
    assert ok(tmp_path, "kv", "set", "b", "2", env=env).strip() == "OK"
    assert (tmp_path / "from-env.db").exists()
    assert ok(tmp_path, "--url", "sqlite:///jexkv.db", "kv", "get", "a", env=env).strip() == "1"
    assert ok(tmp_path, "kv", "get", "b", env=env).strip() == "2"


# --- queue ---------------------------------------------------------------------------------------


def test_queue_enqueue_counts_and_jobs(tmp_path: pathlib.Path) -> None:
    url = ("--url", "sqlite:///q.db")
    first = ok(tmp_path, *url, "queue", "enqueue", "mail", "hello", '{"to": "a@b.c"}').strip()
    assert first and len(first.splitlines()) == 1
    second = ok_json(tmp_path, *url, "queue", "enqueue", "mail", "plain", "just text")
    assert (second["queue"], second["name"], second["payload"]) == ("mail", "plain", "just text")
    assert second["state"] == "waiting" and second["attempts"] == 1
    assert second["id"] != first
    low = ok_json(tmp_path, *url, "queue", "enqueue", "mail", "low", "--priority", "5")
    assert low["priority"] == 5 and low["payload"] is None
    later = ok_json(tmp_path, *url, "queue", "enqueue", "mail", "later", "7", "--delay-ms", "60000")
    assert later["state"] == "delayed" and later["payload"] == 7
    mine = ok_json(
        tmp_path,
        *url,
        "queue",
        "enqueue",
        "mail",
        "mine",
        "[1, 2]",
        "--job-id",
        "my-id",
        "--attempts",
        "3",
        "--backoff-ms",
        "100",
    )
    assert (mine["id"], mine["attempts"], mine["payload"]) == ("my-id", 3, [1, 2])
    # The same job id again adds nothing and returns the job that is there.
    again = ok(tmp_path, *url, "queue", "enqueue", "mail", "other", "--job-id", "my-id").strip()
    assert again == "my-id"

    counts = _state_counts(tmp_path, url, "mail")
    assert counts == {"waiting": 4, "delayed": 1, "active": 0, "completed": 0, "dead": 0}
    text = _counts_text(ok(tmp_path, *url, "queue", "counts", "mail"))
    assert {k: text[k] for k in STATES} == counts

    # Waiting jobs in the order they will run: priority 0 first in, first out, then priority 5.
    waiting = ok_json(tmp_path, *url, "queue", "jobs", "mail")
    assert [j["id"] for j in waiting] == [first, second["id"], "my-id", low["id"]]
    assert waiting[0]["payload"] == {"to": "a@b.c"}
    assert {j["state"] for j in waiting} == {"waiting"}
    for key in ("queue", "name", "attempts", "attempts_made", "priority", "created_at_ms"):
        assert key in waiting[0], waiting[0]
    lines = ok(tmp_path, *url, "queue", "jobs", "mail").splitlines()
    assert len(lines) == 4
    for line, (job_id, name) in zip(
        lines, [(first, "hello"), (second["id"], "plain"), ("my-id", "mine"), (low["id"], "low")]
    ):
        assert _has(line, job_id) and _has(line, name) and _has(line, "waiting"), line
    assert _has(lines[2], "0/3"), lines[2]
    assert [j["id"] for j in ok_json(tmp_path, *url, "queue", "jobs", "mail", "--limit", "2")] == [
        first,
        second["id"],
    ]
    delayed = ok_json(tmp_path, *url, "queue", "jobs", "mail", "--state", "delayed")
    assert [j["id"] for j in delayed] == [later["id"]]
    assert ok_json(tmp_path, *url, "queue", "jobs", "mail", "--state", "dead") == []
    assert ok_json(tmp_path, *url, "queue", "counts", "other-queue")["waiting"] == 0

    with jexkv.open_queue("sqlite:///" + str(tmp_path / "q.db")) as q:
        job = q.get_job("mail", first)
        assert job is not None and (job.name, job.payload) == ("hello", {"to": "a@b.c"})


FLAKY = """
    import pathlib

    HERE = pathlib.Path(__file__).resolve().parent


    def setup(queue):
        def handle(job):
            if (HERE / "broken").exists():
                raise RuntimeError("the mail server is down")
            (HERE / ("sent-" + job.id)).write_text("sent")
            return {"sent_to": job.payload}

        queue.register_worker("mail", handle)
"""


def test_queue_dead_retry_purge_round_trip(tmp_path: pathlib.Path, worker: Worker) -> None:
    _module(tmp_path, "flaky", FLAKY)
    url = ("--url", "sqlite:///q.db?keep_completed=10")
    (tmp_path / "broken").touch()
    proc = worker(*url, "worker", "flaky:setup")
    _wait_ready(tmp_path, proc)

    def enqueue(to: str) -> str:
        job = ok_json(tmp_path, *url, "queue", "enqueue", "mail", "welcome", to, "--attempts", "1")
        return str(job["id"])

    def dead_ids() -> list[str]:
        return [j["id"] for j in ok_json(tmp_path, *url, "queue", "dead", "mail")]

    def counts() -> dict[str, int]:
        return _state_counts(tmp_path, url, "mail")

    first, second = enqueue("ada@example.com"), enqueue("bob@example.com")
    assert wait_for(lambda: len(dead_ids()) == 2 or proc.poll() is not None, timeout=DEADLINE), (
        counts(),
        _err(tmp_path),
    )
    assert proc.poll() is None, _err(tmp_path)
    dead = ok_json(tmp_path, *url, "queue", "dead", "mail")
    assert {j["id"] for j in dead} == {first, second}
    for job in dead:
        assert job["state"] == "dead" and job["attempts_made"] == 1 and job["attempts"] == 1
        assert "RuntimeError: the mail server is down" in job["error"], job["error"]
    lines = ok(tmp_path, *url, "queue", "dead", "mail").splitlines()
    assert len(lines) == 2
    assert all("RuntimeError" in line and _has(line, "dead") for line in lines), lines
    assert {i for i in (first, second) for line in lines if _has(line, i)} == {first, second}
    assert counts() == {"waiting": 0, "delayed": 0, "active": 0, "completed": 0, "dead": 2}

    # Fix the cause, retry one job: it runs and completes; the other stays dead.
    (tmp_path / "broken").unlink()
    assert ok(tmp_path, *url, "queue", "retry", "mail", first).strip() == "retried 1"
    assert wait_for(lambda: counts()["completed"] == 1, timeout=DEADLINE), counts()
    assert counts() == {"waiting": 0, "delayed": 0, "active": 0, "completed": 1, "dead": 1}
    assert (tmp_path / f"sent-{first}").exists()
    assert not (tmp_path / f"sent-{second}").exists()
    completed = ok_json(tmp_path, *url, "queue", "jobs", "mail", "--state", "completed")
    assert [(j["id"], j["result"]) for j in completed] == [(first, {"sent_to": "ada@example.com"})]
    assert dead_ids() == [second]

    # Purge the rest.
    assert ok_json(tmp_path, *url, "queue", "purge", "mail") == {"purged": 1}
    assert dead_ids() == []
    assert ok(tmp_path, *url, "queue", "purge", "mail").strip() == "purged 0"
    assert ok(tmp_path, *url, "queue", "retry", "mail").strip() == "retried 0"

    # Retry every dead job at once.
    (tmp_path / "broken").touch()
    third = enqueue("cy@example.com")
    assert wait_for(lambda: dead_ids() == [third], timeout=DEADLINE), counts()
    (tmp_path / "broken").unlink()
    assert ok_json(tmp_path, *url, "queue", "retry", "mail") == {"retried": 1}
    assert wait_for(lambda: counts()["completed"] == 2, timeout=DEADLINE), counts()
    assert counts() == {"waiting": 0, "delayed": 0, "active": 0, "completed": 2, "dead": 0}
    assert (tmp_path / f"sent-{third}").exists()

    assert _signal_exit_code(tmp_path, proc, signal.SIGTERM, "SIGTERM") == 0, _err(tmp_path)
    err = _err(tmp_path)
    for job_id in (first, second, third):
        assert re.search(rf"job {job_id} \(welcome\) on mail failed", err), err
    for job_id in (first, third):
        assert re.search(rf"job {job_id} \(welcome\) on mail done in", err), err
    assert not re.search(rf"job {second} \(welcome\) on mail done in", err), err


# --- worker --------------------------------------------------------------------------------------


SLOW = """
    import pathlib
    import time

    HERE = pathlib.Path(__file__).resolve().parent


    def setup(queue):
        def handle(job):
            (HERE / "started").write_text(job.id)
            time.sleep(job.payload["sleep"])
            (HERE / "finished").write_text(job.id)
            return "ok"

        queue.register_worker("slow", handle)
"""


def test_worker_finishes_the_running_job_on_sigterm(tmp_path: pathlib.Path, worker: Worker) -> None:
    _module(tmp_path, "slow", SLOW)
    url = ("--url", "sqlite:///w.db?keep_completed=10")
    proc = worker(*url, "worker", "slow:setup")
    _wait_ready(tmp_path, proc)
    job = ok_json(tmp_path, *url, "queue", "enqueue", "slow", "nap", '{"sleep": 1.5}')
    started = tmp_path / "started"
    wait_for(lambda: started.exists() or proc.poll() is not None, timeout=DEADLINE)
    assert started.exists(), f"the job never started: {_err(tmp_path)}"
    assert not (tmp_path / "finished").exists()

    t0 = time.monotonic()
    code = _signal_exit_code(tmp_path, proc, signal.SIGTERM, "SIGTERM")  # mid-job
    err = _err(tmp_path)
    assert code == 0, f"worker exited {code}: {err}"
    assert (tmp_path / "finished").read_text() == job["id"]
    assert time.monotonic() - t0 < 15

    counts = _state_counts(tmp_path, url, "slow")
    assert counts == {"waiting": 0, "delayed": 0, "active": 0, "completed": 1, "dead": 0}
    done = ok_json(tmp_path, *url, "queue", "jobs", "slow", "--state", "completed")
    assert [(j["id"], j["result"]) for j in done] == [(job["id"], "ok")]

    assert "Traceback" not in err, err
    assert re.search(rf"job {re.escape(job['id'])} \(nap\) on slow started", err), err
    assert re.search(rf"job {re.escape(job['id'])} \(nap\) on slow done in [\d.,]+ ?ms", err), err
    assert "stopping" in err, err


@pytest.mark.parametrize(
    "first, second",
    [(signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, signal.SIGINT)],
    ids=["term-term", "int-int"],
)
def test_a_second_signal_exits_at_once(
    tmp_path: pathlib.Path, worker: Worker, first: signal.Signals, second: signal.Signals
) -> None:
    _module(tmp_path, "slow", SLOW)
    url = ("--url", "sqlite:///w.db")
    proc = worker(*url, "worker", "slow:setup")
    _wait_ready(tmp_path, proc)
    ok(tmp_path, *url, "queue", "enqueue", "slow", "long", '{"sleep": 30}')
    started = tmp_path / "started"
    wait_for(lambda: started.exists() or proc.poll() is not None, timeout=DEADLINE)
    assert started.exists(), f"the job never started: {_err(tmp_path)}"

    proc.send_signal(first)
    wait_for(lambda: "stopping" in _err(tmp_path) or proc.poll() is not None, timeout=DEADLINE)
    assert proc.poll() is None, f"exited on the first signal ({proc.returncode}): {_err(tmp_path)}"
    assert "stopping" in _err(tmp_path), _err(tmp_path)

    t0 = time.monotonic()
    code = _signal_exit_code(tmp_path, proc, second, "the second signal", timeout=5)
    assert time.monotonic() - t0 < 5
    assert code == 1, f"exit code {code}, expected 1: {_err(tmp_path)}"
    assert not (tmp_path / "finished").exists()


EXITS = """
    def setup(queue):
        def handle(job):
            if job.name == "exit":
                raise SystemExit(3)
            if job.name == "interrupt":
                raise KeyboardInterrupt
            return "ok"

        queue.register_worker("exits", handle, concurrency=1)
"""


def test_a_handler_raising_systemexit_fails_its_job_and_sigint_still_stops(
    tmp_path: pathlib.Path, worker: Worker
) -> None:
    _module(tmp_path, "exits", EXITS)
    url = ("--url", "sqlite:///w.db?keep_completed=10&lease_ms=60000")
    proc = worker(*url, "worker", "exits:setup")
    _wait_ready(tmp_path, proc)
    ids = [ok_json(tmp_path, *url, "queue", "enqueue", "exits", name)["id"]
           for name in ("exit", "interrupt", "fine")]  # fmt: skip

    def counts() -> dict[str, int]:
        return _state_counts(tmp_path, url, "exits")

    done = {"waiting": 0, "delayed": 0, "active": 0, "completed": 1, "dead": 2}
    assert wait_for(lambda: counts() == done, timeout=DEADLINE), (counts(), _err(tmp_path))
    dead = ok_json(tmp_path, *url, "queue", "jobs", "exits", "--state", "dead")
    assert sorted((j["id"], j["error"]) for j in dead) == sorted(
        [(ids[0], "SystemExit: 3"), (ids[1], "KeyboardInterrupt: ")]
    )
    assert proc.poll() is None, f"worker exited ({proc.returncode}): {_err(tmp_path)}"

    # The first SIGINT still stops gracefully.
    code = _signal_exit_code(tmp_path, proc, signal.SIGINT, "SIGINT")
    err = _err(tmp_path)
    assert code == 0, f"worker exited {code}: {err}"
    assert "stopping" in err and "stopped" in err, err
    for job_id, kind in zip(ids, ("SystemExit", "KeyboardInterrupt")):
        assert re.search(rf"job {job_id} .*{kind}.*BaseException.*goes on", err), err
        assert re.search(rf"job {job_id} \(\w+\) on \w+ failed after .* ms: {kind}", err), err


# --- errors --------------------------------------------------------------------------------------


ERRORS = {
    "unknown-scheme": ["--url", "ftp://x", "kv", "get", "a"],
    "redis-unreachable": ["--url", "redis://localhost:1/0", "kv", "get", "a"],
    "not-sqlite": ["--url", "sqlite:///garbage.db", "kv", "get", "a"],
    "not-sqlite-queue": ["--url", "sqlite:///garbage.db", "queue", "counts", "q"],
    "unknown-option": ["--url", "sqlite:///x.db?bogus=1", "kv", "get", "a"],
    "bad-ttl": ["--url", "sqlite:///x.db", "kv", "set", "a", "1", "--ttl-ms", "0"],
    "no-such-module": ["--url", "sqlite:///x.db", "worker", "nosuchmodule:setup"],
    "no-such-function": ["--url", "sqlite:///x.db", "worker", "mod:nosuchfunction"],
}
JUNK = b"this is not a database\x00\xff" * 100


@pytest.mark.parametrize("args", list(ERRORS.values()), ids=list(ERRORS))
def test_errors_are_one_line_and_exit_2(tmp_path: pathlib.Path, args: list[str]) -> None:
    (tmp_path / "garbage.db").write_bytes(JUNK)
    _module(tmp_path, "mod", "def setup(queue):\n    pass\n")
    proc = cli(tmp_path, *args)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr: {proc.stderr!r}"
    assert lines[0].startswith("jexkv: error: "), lines[0]
    assert (tmp_path / "garbage.db").read_bytes() == JUNK  # left untouched


@pytest.mark.parametrize(
    "args",
    [["nosuchcommand"], ["kv", "frobnicate"], ["kv", "set", "only-a-key"], ["kv", "ttl", "--x"]],
    ids=["command", "kv-command", "missing-value", "unknown-flag"],
)
def test_usage_errors_exit_2(tmp_path: pathlib.Path, args: list[str]) -> None:
    proc = cli(tmp_path, *args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip(), "a usage error says what is wrong"


# --- examples ------------------------------------------------------------------------------------


def test_there_are_examples() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"welcome_email.py", "reset_tokens.py", "rate_limit.py"} <= names, names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(tmp_path: pathlib.Path, path: pathlib.Path) -> None:
    assert ast.get_docstring(ast.parse(path.read_text())), f"{path.name} has no docstring"
    proc = subprocess.run(
        [sys.executable, str(path)],
        cwd=str(tmp_path),
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.strip(), "an example prints what happens"
    assert list(tmp_path.iterdir()) == [], "an example leaves no files behind"


def test_global_options_go_before_after_or_inside_the_command(tmp_path: pathlib.Path) -> None:
    assert ok(tmp_path, "--url", "sqlite:///g.db", "kv", "set", "k", "1").strip() == "OK"
    assert ok(tmp_path, "kv", "--url", "sqlite:///g.db", "get", "k").strip() == "1"
    assert ok(tmp_path, "kv", "get", "k", "--url", "sqlite:///g.db").strip() == "1"
    counts = ok_json(tmp_path, "queue", "--json", "--url", "sqlite:///g.db", "counts", "q")
    assert counts == {"waiting": 0, "delayed": 0, "active": 0, "completed": 0, "dead": 0}


def test_queue_pause_and_resume(tmp_path: pathlib.Path) -> None:
    url = ("--url", "sqlite:///q.db")
    assert ok_json(tmp_path, *url, "queue", "pause", "mail") == {"paused": True}
    assert ok(tmp_path, *url, "queue", "pause", "mail").strip() == "mail: paused"
    with jexkv.open_queue(f"sqlite:///{tmp_path / 'q.db'}") as q:
        assert q.is_paused("mail") and not q.is_paused("other")
    assert ok(tmp_path, *url, "queue", "resume", "mail").strip() == "mail: resumed"
    assert ok_json(tmp_path, *url, "queue", "resume", "mail") == {"paused": False}


def test_queue_schedules_and_unschedule(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path / 'sched.db'}"
    assert (
        ok(tmp_path, "queue", "--url", url, "schedules", "reports") == "\n"
    )  # none (and no file made)
    with jexkv.open_queue(url) as q:
        q.schedule("reports", "nightly", "sendDigest", {"kind": "daily"}, cron="0 3 * * *",
                   tz="Europe/Berlin")  # fmt: skip
        q.schedule("reports", "purge", "purge", every_ms=60_000, limit=5)
    lines = ok(tmp_path, "queue", "--url", url, "schedules", "reports").splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("nightly  sendDigest  cron '0 3 * * *' Europe/Berlin  next ")
    assert re.search(r"next \d{4}-\d\d-\d\dT0[12]:00:00Z  runs 1$", lines[0]), lines[0]
    assert lines[1].startswith("purge  purge  every 60000 ms  next ")
    listed = ok_json(tmp_path, "queue", "--url", url, "schedules", "reports")
    assert [(s["id"], s["limit"], s["payload"]) for s in listed] == [
        ("nightly", None, {"kind": "daily"}),
        ("purge", 5, None),
    ]
    assert ok(tmp_path, "queue", "--url", url, "unschedule", "reports", "purge") == (
        "unscheduled purge\n"
    )
    missing = cli(tmp_path, "queue", "--url", url, "unschedule", "reports", "purge")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "jexkv: error: no schedule 'purge' on queue 'reports'"
    assert [s["id"] for s in ok_json(tmp_path, "queue", "--url", url, "schedules", "reports")] == [
        "nightly"
    ]


PROCESS_JOBS = """
import os

def handle(job):
    if job.payload == "crash":
        os._exit(3)
    return {"pid": os.getpid(), "parent": os.getppid()}

def setup(queue):
    queue.register_worker("cpu", handle, timeout_ms=5000)
"""


def test_worker_with_processes_runs_handlers_in_child_processes(
    tmp_path: pathlib.Path, worker: Worker
) -> None:
    _module(tmp_path, "cpujobs", PROCESS_JOBS)
    url = ("--url", "sqlite:///p.db?keep_completed=10&keep_dead=10")
    proc = worker(*url, "worker", "cpujobs:setup", "--processes", "2")
    _wait_ready(tmp_path, proc)
    jobs = [ok_json(tmp_path, *url, "queue", "enqueue", "cpu", "n", f'"{n}"') for n in "ab"]
    crash = ok_json(tmp_path, *url, "queue", "enqueue", "cpu", "c", '"crash"')

    def finished() -> bool:
        counts = _state_counts(tmp_path, url, "cpu")
        return counts["completed"] == 2 and counts["dead"] == 1 or proc.poll() is not None

    assert wait_for(finished, timeout=DEADLINE), _err(tmp_path)
    done = ok_json(tmp_path, *url, "queue", "jobs", "cpu", "--state", "completed")
    assert {j["result"]["parent"] for j in done} == {proc.pid}  # children of the worker
    assert all(j["result"]["pid"] != proc.pid for j in done)
    [dead] = ok_json(tmp_path, *url, "queue", "dead", "cpu")
    assert dead["id"] == crash["id"] and "it exited with code 3" in dead["error"]
    assert _signal_exit_code(tmp_path, proc, signal.SIGTERM, "SIGTERM") == 0
    err = _err(tmp_path)
    assert re.search(rf"job {jobs[0]['id']} \(n\) on cpu done in", err), err
    assert "Traceback" not in err.split("WorkerCrashed")[0], err
