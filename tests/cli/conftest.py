"""The command line's fixtures: ``worker`` starts ``python -m jexkv ... worker ...``."""

from __future__ import annotations

import itertools
import subprocess

import pytest

from tests.cli.test_cli import Worker, _env
from tests.helpers import StartProcess


@pytest.fixture
def worker(start_process: StartProcess) -> Worker:
    """Start ``python -m jexkv ... worker ...`` processes; any still running at the end is killed.

    Each one's stderr goes to tmp_path/worker-N.err (see ``_err``).
    """
    numbers = itertools.count()

    def start(*args: str) -> subprocess.Popen[bytes]:
        return start_process(
            ["-m", "jexkv", *args],
            err=f"worker-{next(numbers)}.err",
            env=_env(),
            stdin=subprocess.DEVNULL,
        )

    return start
