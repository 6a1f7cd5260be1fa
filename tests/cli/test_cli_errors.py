"""What the command line reports in one line, and what it leaves as a traceback.

Bad input (a refused key, job id or value; a bad URL) and a backend that fails are the
user's to fix: one line, ``jexkv: error: …``, exit code 2. A bug (a ValueError raised by the
user's own setup function, or by jexkv itself) is not turned into such a line: it keeps its
traceback, so it can be found.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import jexkv

REPO_ROOT = pathlib.Path(jexkv.__file__).resolve().parent.parent


def _jexkv(tmp_path: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jexkv", "--url", f"sqlite:///{tmp_path / 'cli.db'}", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
        timeout=60,
    )


def test_a_refused_job_id_is_one_line(tmp_path: pathlib.Path) -> None:
    done = _jexkv(tmp_path, "queue", "enqueue", "emails", "send", "--job-id", "42")
    assert done.returncode == 2
    assert done.stderr.startswith("jexkv: error: job_id '42' looks like an integer")
    assert "Traceback" not in done.stderr


def test_a_refused_queue_name_is_one_line(tmp_path: pathlib.Path) -> None:
    done = _jexkv(tmp_path, "queue", "counts", "a:b")
    assert done.returncode == 2
    assert "holds ':'" in done.stderr and "Traceback" not in done.stderr


def test_a_bug_in_the_setup_function_keeps_its_traceback(tmp_path: pathlib.Path) -> None:
    (tmp_path / "broken_tasks.py").write_text(
        "def setup(queue):\n    raise ValueError('a bug in the setup function')\n"
    )
    done = _jexkv(tmp_path, "worker", "broken_tasks:setup")
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert "ValueError: a bug in the setup function" in done.stderr
    assert "jexkv: error:" not in done.stderr
