"""The pinned BullMQ and ioredis from npm, installed once into a cache folder and reused.

``node_modules_dir()`` copies tests/interop/node/package.json and package-lock.json into
``$XDG_CACHE_HOME/jexkv/interop-<hash>`` (``~/.cache`` without XDG_CACHE_HOME; the folder
``$JEXKV_NPM_CACHE`` instead of ``…/jexkv`` when set, as CI sets it), the hash
being of those two files, and runs ``npm ci --ignore-scripts`` there (msgpackr then uses its
pure-JS code instead of building a native addon); later calls and later runs reuse the folder.
A lock file keeps two processes from installing into it at once. When node or npm is missing,
or npm fails, it raises NodeUnavailable: conftest.py skips the test with that reason (a failure
under ``JEXKV_REQUIRE_REDIS=1``, as in CI).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parent / "node"
MANIFESTS = ("package.json", "package-lock.json")
PINNED = ("bullmq", "ioredis")
NPM_TIMEOUT = 600.0
DONE_MARK = ".jexkv-installed"


def cache_root() -> Path:
    chosen = os.environ.get("JEXKV_NPM_CACHE")  # CI points this at a fresh folder per run
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jexkv"


def lock_hash() -> str:
    digest = hashlib.sha256()
    for name in MANIFESTS:
        digest.update((NODE_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


class NodeUnavailable(Exception):
    """node or npm is missing, or the install failed; the message says which."""


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise NodeUnavailable(f"{name} is not on PATH: BullMQ needs node and npm")
    return path


def _pinned_versions() -> dict:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    return {name: lock["packages"][f"node_modules/{name}"]["version"] for name in PINNED}


def _installed_versions(folder: Path) -> dict:
    versions = {}
    for name in PINNED:
        manifest = folder / "node_modules" / name / "package.json"
        try:
            versions[name] = json.loads(manifest.read_text())["version"]
        except (OSError, ValueError, KeyError):
            versions[name] = None
    return versions


def _install(npm: str, folder: Path) -> None:
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in MANIFESTS:
        shutil.copyfile(NODE_DIR / name, staging / name)
    command = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        done = subprocess.run(
            command, cwd=staging, capture_output=True, text=True, timeout=NPM_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        shutil.rmtree(staging, ignore_errors=True)
        raise NodeUnavailable(
            f"`npm ci` of the pinned BullMQ took more than {NPM_TIMEOUT:.0f} s"
        ) from None
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        output = (done.stdout + done.stderr)[-2000:]
        raise NodeUnavailable(f"`npm ci` of the pinned BullMQ failed:\n{output}")
    (staging / DONE_MARK).write_text(json.dumps(_installed_versions(staging)))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def pinned_versions() -> dict:
    """{"bullmq": …, "ioredis": …}: the versions package-lock.json pins."""
    return _pinned_versions()


def node_modules_dir() -> Path:
    """The cache's node_modules folder holding the pinned bullmq and ioredis (installed on
    first use); raises NodeUnavailable. The benchmarks use it too (benchmarks/_node.py)."""
    tool("node")
    npm = tool("npm")
    folder = cache_root() / f"interop-{lock_hash()}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    pinned = _pinned_versions()
    with open(folder.with_name(folder.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / DONE_MARK).exists() or _installed_versions(folder) != pinned:
            _install(npm, folder)
    installed = _installed_versions(folder)
    assert installed == pinned, f"{folder} holds {installed}, the lock file pins {pinned}"
    return folder / "node_modules"
