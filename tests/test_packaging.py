"""setup.cfg ships every file jexkv needs, in the shape setuptools wants (no warnings).

New setuptools warn when a folder that Python can import (jexkv/redis/lua, a folder of
Lua scripts) is shipped through package data without being listed as a package, and
when the license is given as a classifier. Checked here offline from setup.cfg itself,
with the same package finder setuptools runs.
"""

from __future__ import annotations

import configparser
import fnmatch
from pathlib import Path

import setuptools

ROOT = Path(__file__).resolve().parent.parent


def _config() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def _packages(config: configparser.ConfigParser) -> list[str]:
    kind = config["options"]["packages"].strip()
    find = config["options.packages.find"]
    include = find.get("include", "*").replace(",", " ").split()
    exclude = find.get("exclude", "").replace(",", " ").split()
    finder = {
        "find:": setuptools.find_packages,
        "find_namespace:": setuptools.find_namespace_packages,
    }[kind]
    return finder(str(ROOT), include=include, exclude=exclude)


def test_every_folder_with_shipped_files_is_a_listed_package():
    config = _config()
    packages = set(_packages(config))
    data = {
        package: value.replace(",", " ").split()
        for package, value in config["options.package_data"].items()
    }
    for package, patterns in data.items():
        assert package in packages, f"package data of {package!r}, which is not a package"
        for pattern in patterns:
            assert "/" not in pattern, (
                f"{pattern!r} reaches into a sub-folder: list it as a package"
            )
    lua = sorted(p.name for p in (ROOT / "jexkv" / "redis" / "lua").glob("*.lua"))
    assert lua, "no Lua scripts found"
    shipped = [
        name for name in lua if any(fnmatch.fnmatch(name, p) for p in data["jexkv.redis.lua"])
    ]
    assert shipped == lua
    assert not any("__pycache__" in package for package in packages)
    python_folders = {
        ".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "jexkv").rglob("*.py")
    }
    assert python_folders <= packages


def test_license_is_a_license_expression_not_a_classifier():
    metadata = _config()["metadata"]
    assert metadata["license"].strip() == "MIT"
    assert "License ::" not in metadata.get("classifiers", "")
