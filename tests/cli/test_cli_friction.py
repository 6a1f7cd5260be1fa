"""What a new user met on the command line: the demo on an app's store, examples run
without installing, pipes, a handler given as the setup function, payloads that are not
quite JSON, read-only commands that must create nothing, and ``~`` in SQLite URLs."""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import subprocess
import sys
import threading

import pytest

import jexkv
from jexkv.resp import Redis
from tests.cli.test_cli import EXAMPLES, REPO_ROOT, _env, _module, cli, ok
from tests.helpers import wait_for

# --- the demo on a store an app uses -------------------------------------------------------------


def test_demo_on_an_apps_store_keeps_to_itself(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/app.db"
    seen: list[str] = []
    with jexkv.open_kv(url) as kv, jexkv.open_queue(url, keep_completed=100) as app:
        kv.set("app:setting", {"theme": "dark"})
        app.register_worker("emails", lambda job: seen.append(job.name), concurrency=2)
        app.enqueue("emails", "appJob")
        wait_for(lambda: seen == ["appJob"], timeout=10)
        proc = cli(tmp_path, "demo", "--url", url)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
        assert seen == ["appJob"], "the app's worker took the demo's jobs"
        assert list(kv.keys()) == ["app:setting"]
        assert app.counts("emails")["completed"] == 1
    con = sqlite3.connect(f"{tmp_path}/app.db")
    try:
        assert con.execute("SELECT count(*) FROM jobs").fetchone() == (1,)
        assert [row[0] for row in con.execute("SELECT key FROM kv")] == ["app:setting"]
    finally:
        con.close()


def test_demo_on_redis_leaves_no_key_behind(tmp_path: pathlib.Path, redis_server) -> None:
    url = redis_server.url(db=15)  # a database no other test module uses
    with Redis.from_url(url) as raw:
        raw.execute_command("FLUSHDB")
        raw.execute_command("SET", "app:key", "1")
        proc = cli(tmp_path, "demo", "--url", url)
        assert proc.returncode == 0, proc.stderr
        assert raw.execute_command("KEYS", "*") == [b"app:key"]


def test_the_demo_prints_the_error_it_stores(tmp_path: pathlib.Path) -> None:
    out = ok(tmp_path, "demo")
    printed = [line for line in out.splitlines() if "attempt 1:" in line and "Error" in line]
    stored = [line for line in out.splitlines() if "dead-letter state" in line]
    assert printed and stored, out
    reason = printed[0].split("attempt 1:", 1)[1].strip()
    assert stored[0].endswith(reason), (printed[0], stored[0])


# --- examples, not installed ---------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_as_its_header_says_without_installing(path: pathlib.Path) -> None:
    assert f"python examples/{path.name}" in path.read_text()
    env = {k: v for k, v in _env().items() if k != "PYTHONPATH"}
    # -S: no site-packages, so an installed (or editable) jexkv is out of reach.
    proc = subprocess.run(
        [sys.executable, "-S", f"examples/{path.name}"],
        cwd=str(REPO_ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    probe = subprocess.run(
        [sys.executable, "-S", "-c", "import jexkv"], cwd="/", env=env, capture_output=True
    )
    assert probe.returncode != 0, (
        "jexkv is importable without site-packages: the test proves nothing"
    )


# --- pipes ---------------------------------------------------------------------------------------


def test_a_closed_pipe_ends_the_command_quietly(tmp_path: pathlib.Path) -> None:
    with jexkv.open_kv(f"sqlite:///{tmp_path}/big.db") as kv:
        kv.set_many({f"key-{i:06d}": i for i in range(30_000)})  # far more than a pipe holds
    proc = subprocess.Popen(
        [sys.executable, "-m", "jexkv", "--url", "sqlite:///big.db", "kv", "keys"],
        cwd=str(tmp_path),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"key-")
    proc.stdout.close()  # as `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert err == ""


# --- worker pointed at a handler -----------------------------------------------------------------


def test_worker_pointed_at_a_job_handler_says_so(tmp_path: pathlib.Path) -> None:
    _module(
        tmp_path,
        "handlers",
        """
        def handle(job):
            if job.name == "sendWelcomeEmail":
                print("sending to", job.payload["email"])
        """,
    )
    proc = cli(tmp_path, "--url", "sqlite:///w.db", "worker", "handlers:handle", timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "job handler" in lines[0] and "register_worker" in lines[0]
    assert not (tmp_path / "w.db").exists(), "the store was created for nothing"


# --- values that look like JSON ------------------------------------------------------------------


@pytest.mark.parametrize("text", ['{"email": "a@b.c"', "[1, 2", '"unclosed', '{email: "x"}'])
def test_json_looking_values_that_do_not_parse_are_refused(tmp_path: pathlib.Path, text: str):
    proc = cli(tmp_path, "kv", "set", "k", text)
    assert proc.returncode == 2 and "--raw" in proc.stderr, proc.stderr
    proc = cli(tmp_path, "queue", "enqueue", "q", "task", text)
    assert proc.returncode == 2 and "--raw" in proc.stderr, proc.stderr
    assert json.loads(ok(tmp_path, "--json", "kv", "get", "k"))["found"] is False
    assert json.loads(ok(tmp_path, "--json", "queue", "counts", "q"))["waiting"] == 0
    # --raw keeps the text as it is.
    ok(tmp_path, "kv", "set", "k", text, "--raw")
    assert json.loads(ok(tmp_path, "--json", "kv", "get", "k"))["value"] == text
    job = json.loads(ok(tmp_path, "--json", "queue", "enqueue", "q", "task", text, "--raw"))
    assert job["payload"] == text


def test_plain_text_and_json_scalars_still_work(tmp_path: pathlib.Path) -> None:
    for text, value in [("hello", "hello"), ("42", 42), ("true", True), ('{"a": 1}', {"a": 1})]:
        ok(tmp_path, "kv", "set", "k", text)
        assert json.loads(ok(tmp_path, "--json", "kv", "get", "k"))["value"] == value


# --- read-only commands --------------------------------------------------------------------------

READ_ONLY = [
    (["kv", "get", "k"], "(nil)"),
    (["kv", "ttl", "k"], "-2"),
    (["kv", "keys"], ""),
    (["queue", "counts", "q"], "waiting: 0"),
    (["queue", "jobs", "q"], ""),
    (["queue", "dead", "q"], ""),
]


@pytest.mark.parametrize(("args", "answer"), READ_ONLY, ids=[" ".join(a) for a, _ in READ_ONLY])
def test_read_only_commands_create_nothing(tmp_path: pathlib.Path, args, answer) -> None:
    proc = cli(tmp_path, "--url", "sqlite:///sub/missing.db", *args)
    assert proc.returncode == 0, proc.stderr
    assert answer in proc.stdout
    assert "does not exist" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_sqlite_url_with_a_tilde_is_the_home_folder(tmp_path: pathlib.Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = _env(HOME=str(home))
    ok(tmp_path, "--url", "sqlite:///~/app.db", "kv", "set", "k", "1", env=env)
    assert (home / "app.db").is_file()
    assert not (tmp_path / "~").exists()


# --- the runner's log ----------------------------------------------------------------------------


def test_the_runner_says_ready_before_it_takes_a_job(tmp_path: pathlib.Path) -> None:
    url = "sqlite:///r.db"
    with jexkv.open_queue(f"sqlite:///{tmp_path}/r.db") as q:
        for _ in range(3):
            q.enqueue("emails", "waiting-already")
    _module(
        tmp_path,
        "setup_r",
        """
        def setup(queue):
            queue.register_worker("emails", lambda job: None)
        """,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "jexkv", "--url", url, "worker", "setup_r:setup"],
        cwd=str(tmp_path),
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        wait_for(lambda: sum("done in" in line for line in lines) == 3, timeout=30)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    reader.join(timeout=10)
    ready = [i for i, line in enumerate(lines) if "worker ready" in line]
    started = [i for i, line in enumerate(lines) if " started" in line]
    assert ready and started, lines
    assert ready[0] < started[0], lines
    assert not any("jexkv: jexkv" in line or "jexkv.worker: jexkv:" in line for line in lines)
    assert os.path.exists(tmp_path / "r.db")
