"""The public API, pinned: exported names, the error tree, and a stdlib-only package."""

from __future__ import annotations

import ast
import builtins
import importlib.util
import pathlib
import sys
import sysconfig

import pytest

import jexkv

EXPECTED_ALL = [
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "Backoff",
    "ClosedError",
    "ConfigError",
    "InvalidArgument",
    "InvalidArgumentType",
    "JexkvError",
    "Job",
    "JobNotFound",
    "JobTimeout",
    "KVStore",
    "ProtocolError",
    "Schedule",
    "SerializationError",
    "TaskQueue",
    "Unrecoverable",
    "WaitTimeout",
    "WorkerCrashed",
    "WrongTypeError",
    "open_kv",
    "open_queue",
]

ERROR_TREE = [
    ("JexkvError", ("Exception",)),
    ("ConfigError", ("JexkvError", "ValueError")),
    ("InvalidArgument", ("JexkvError", "ValueError")),
    ("InvalidArgumentType", ("JexkvError", "TypeError")),
    ("SerializationError", ("JexkvError", "TypeError")),
    ("ClosedError", ("JexkvError",)),
    ("WrongTypeError", ("JexkvError", "TypeError")),
    ("Unrecoverable", ("JexkvError",)),
    ("WaitTimeout", ("JexkvError", "TimeoutError")),
    ("JobNotFound", ("JexkvError", "LookupError")),
    ("JobTimeout", ("JexkvError", "TimeoutError")),
    ("WorkerCrashed", ("JexkvError",)),
    ("BackendError", ("JexkvError",)),
    ("BackendUnavailable", ("BackendError", "JexkvError")),
    ("BackendTimeout", ("BackendError", "JexkvError")),
    ("ProtocolError", ("BackendError", "JexkvError")),
]

PACKAGE_DIR = pathlib.Path(jexkv.__file__).resolve().parent


def _cls(name: str) -> type:
    owner = jexkv if hasattr(jexkv, name) else builtins
    return getattr(owner, name)  # type: ignore[no-any-return]


def test_all_is_pinned() -> None:
    assert sorted(jexkv.__all__) == EXPECTED_ALL
    assert len(set(jexkv.__all__)) == len(jexkv.__all__)


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_every_exported_name_is_importable(name: str) -> None:
    module = __import__("jexkv", fromlist=[name])  # what `from jexkv import name` does
    assert getattr(module, name) is getattr(jexkv, name)


def test_version_is_an_attribute_but_not_exported() -> None:
    assert jexkv.__version__ == "0.1.0"
    assert "__version__" not in jexkv.__all__


@pytest.mark.parametrize(("name", "bases"), ERROR_TREE)
def test_error_tree(name: str, bases: tuple[str, ...]) -> None:
    cls = _cls(name)
    assert isinstance(cls, type)
    for base in bases:
        assert issubclass(cls, _cls(base)), f"{name} should subclass {base}"


def test_errors_are_distinct_classes() -> None:
    classes = [_cls(name) for name, _ in ERROR_TREE]
    assert len(set(classes)) == len(classes)
    assert not issubclass(jexkv.ClosedError, ValueError)
    assert not issubclass(jexkv.BackendError, (ValueError, TypeError))


def _is_stdlib(top: str) -> bool:
    names = getattr(sys, "stdlib_module_names", None)  # Python 3.10+
    if names is not None:
        return top in names
    # Python 3.9: decide by where the module lives.
    if top in sys.builtin_module_names:
        return True
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin is None or spec.origin in ("built-in", "frozen"):
        return spec is not None
    origin = str(pathlib.Path(spec.origin).resolve())
    stdlib = str(pathlib.Path(sysconfig.get_paths()["stdlib"]).resolve())
    return origin.startswith(stdlib) and "site-packages" not in origin


def _imported_top_modules(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    tops: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops.add(node.module.split(".")[0])
    return tops


def test_package_imports_only_the_standard_library() -> None:
    files = sorted(PACKAGE_DIR.rglob("*.py"))
    assert files, "no source files found"
    offenders = []
    for path in files:
        for top in _imported_top_modules(path):
            if top != "jexkv" and not _is_stdlib(top):
                offenders.append(f"{path.relative_to(PACKAGE_DIR)}: {top}")
    assert offenders == []


def test_stdlib_check_catches_a_third_party_import(tmp_path: pathlib.Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom collections import abc\nfrom . import x\nimport redis\n")
    tops = _imported_top_modules(sample)
    assert tops == {"os", "collections", "redis"}
    assert [t for t in sorted(tops) if not _is_stdlib(t)] == ["redis"]
