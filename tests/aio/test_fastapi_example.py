"""examples/fastapi/app.py, the README's asyncio story, runs as its docstring says, on each
adapter (JEXKV_URL). FastAPI and httpx are test extras (``pip install -e ".[test]"``); where
they are missing the test is skipped, except in CI, where that is a failure."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT, python_env

EXAMPLE = REPO_ROOT / "examples" / "fastapi" / "app.py"


@pytest.fixture(params=["memory", "sqlite", "redis"])
def url(request, tmp_path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    return request.getfixturevalue("redis_server").url(db=11)


def test_the_fastapi_example_tells_the_story(url):
    missing = [m for m in ("fastapi", "httpx") if importlib.util.find_spec(m) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs the test extras, yet {missing} are missing")
        pytest.skip(f"{', '.join(missing)} not installed (pip install -e '.[test]')")
    assert "python examples/fastapi/app.py" in EXAMPLE.read_text()
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=str(REPO_ROOT),
        env=python_env(JEXKV_URL=url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    out = proc.stdout
    assert "('ada@example.com', 'Welcome!')" in out and "Reset your password" in out, out
    assert "clicked twice: 200 410" in out, out
