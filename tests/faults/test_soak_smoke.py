"""benchmarks/soak.py in a few seconds per backend: it injects faults and loses no job.

The soak script starts its own processes (and, for Redis, its own redis-server on a free port),
so this test only runs it and reads its summary table.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

from tests.redis_server import unavailable

SOAK = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"
TIMEOUT_S = 240  # a hang detector: a run takes about 15 s


def row(output: str, label: str) -> str:
    """The value cell of the summary row whose label starts with ``label``."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith(label):
            return cells[1]
    raise AssertionError(f"no {label!r} row in the soak output:\n{output}")


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_soak_loses_nothing(backend: str) -> None:
    if backend == "redis" and shutil.which("redis-server") is None:
        unavailable("redis-server is not on PATH")
    command = [sys.executable, str(SOAK), "--seconds", "4", "--backend", backend, "--no-write"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert row(output, "**jobs lost**") == "**0**", output
    assert row(output, "jobs left in the queue") == "0", output
    assert row(output, "**KV mismatches**").startswith("**0**"), output
    assert int(row(output, "faults injected")) > 0, output
    assert int(row(output, "- enqueues acknowledged").replace(",", "")) > 0, output
    if backend == "redis":
        assert int(row(output, "- redis-server SIGKILLed")) > 0, output
    assert "BENCHMARKS.md not written" in output
