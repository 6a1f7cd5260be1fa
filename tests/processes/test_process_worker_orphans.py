"""A worker process with process slots (``processes=True``) that is SIGKILLed leaves no
orphan children behind, and the job its child was running is recovered as stalled."""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys
import textwrap

import jexkv
from tests.helpers import REPO_ROOT, pid_alive, python_env, wait_for

PARENT = textwrap.dedent(
    """
    import sys, time, jexkv
    from tests.contract import process_handlers
    q = jexkv.open_queue(sys.argv[1], lease_ms=500)
    q.register_worker("jobs", process_handlers.work, processes=True)
    time.sleep(120)
    """
)


def test_a_killed_parent_leaves_no_orphans_and_its_job_runs_again(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    pidfile = tmp_path / "child.pid"
    with jexkv.open_queue(url, lease_ms=500, keep_completed=10) as q:
        job = q.enqueue("jobs", "task", {"op": "pidfile", "path": str(pidfile)})
        parent = subprocess.Popen(
            [sys.executable, "-c", PARENT, url], cwd=str(REPO_ROOT), env=python_env()
        )
        try:
            assert wait_for(pidfile.exists, timeout=20)
            child = int(pidfile.read_text() or 0) or int(
                wait_for(pidfile.read_text) and pidfile.read_text()
            )
            assert child != parent.pid and pid_alive(child)
            parent.send_signal(signal.SIGKILL)
            parent.wait(10)
            assert wait_for(lambda: not pid_alive(child), timeout=5), (
                "the child outlived its parent"
            )
        finally:
            if parent.poll() is None:
                parent.kill()
        # The job was active under the dead worker's lease: another worker takes it over.
        q.register_worker("jobs", lambda job: "recovered")
        done = q.wait_for("jobs", job.id, timeout_ms=15_000)
        assert (done.state, done.result) == ("completed", "recovered")
        assert done.stall_count == 1
