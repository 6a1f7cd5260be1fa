"""Shared helpers for the benchmark scripts: the machine lines, a markdown table, a ratio line
against its target, and the one writer of BENCHMARKS.md.

BENCHMARKS.md is shared by every script: each owns one section between
``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` and replaces only that, so ``kv.py`` and
``queue.py`` can be rerun in any order without clobbering each other.

Importing this module fixes sys.path for the script (see repo_root_first), so a script run as
``python benchmarks/NAME.py`` imports it before jexkv::

    import _report  # puts the repo root first on sys.path

    import jexkv
"""

import argparse
import os
import platform
import sqlite3
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
BENCHMARKS_MD = os.path.join(REPO_ROOT, "BENCHMARKS.md")

HEADER = """# Benchmarks

Side-by-side runs of jexkv against its peers, on one machine, single process. Each section is
written by the script it names and replaced only by that script; rerun it to refresh the numbers.
"""


def repo_root_first():
    """Import jexkv from this checkout, and keep the stdlib ahead of benchmarks/.

    ``python benchmarks/x.py`` puts benchmarks/ first on sys.path, where the sibling queue.py
    would shadow the stdlib ``queue`` module for every later import (jexkv's worker threads,
    concurrent.futures...). Move benchmarks/ to the end (its helpers stay importable) and put
    the repository root first (jexkv runs from the checkout without being installed).
    """
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) not in (BENCH_DIR, REPO_ROOT)]
    sys.path[:] = [REPO_ROOT, *rest, BENCH_DIR]


repo_root_first()


def machine_lines(command):
    """Markdown bullet lines saying when, where and how the numbers were taken."""
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return [
        f"- Date: {now}",
        f"- Python: {platform.python_version()} ({platform.python_implementation()})",
        f"- SQLite: {sqlite3.sqlite_version}",
        f"- Machine: {platform.platform()}, {os.cpu_count()} CPUs",
        f"- Command: `{command}`",
    ]


def command_line(script):
    """The command that produced this run, as typed from the repository root."""
    return " ".join(["python", f"benchmarks/{script}", *sys.argv[1:]])


def markdown_table(headers, rows):
    """A markdown table; the first column is left-aligned, the others right-aligned."""
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells):
        padded = [
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * widths[0]] + ["-" * (w - 1) + ":" for w in widths[1:]]
    return "\n".join([line(headers), "| " + " | ".join(rule) + " |", *map(line, rows)])


def ratio_line(label, value, target, higher_is_better=True, missing=None):
    """``- label: 1.83x (target >= 1.5): met``; ``missing`` explains a ratio that has no value."""
    sign = ">=" if higher_is_better else "<="
    if value is None:
        return f"- {label}: n/a (target {sign} {target}): {missing or 'not measured'}"
    met = value >= target if higher_is_better else value <= target
    return f"- {label}: {value:.2f}x (target {sign} {target}): {'met' if met else 'MISSED'}"


def write_section(name, body, path=BENCHMARKS_MD):
    """Replace the ``name`` section of BENCHMARKS.md with ``body``, leaving the others intact.

    The file is created with a short header when missing, and a new section is appended at its
    end. Markers that are not paired raise ValueError instead of overwriting the file.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = HEADER
    i, j = text.find(start), text.find(end)
    if i == -1 and j == -1:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    elif i == -1 or j < i or text.count(start) > 1 or text.count(end) > 1:
        raise ValueError(f"{path}: unpaired or repeated {start} / {end} markers")
    else:
        text = text[:i] + block + text[j + len(end) :]
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def arguments(description, n_help):
    """The flags every benchmark takes: --quick, --no-write and --n."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small smoke run; never writes")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    parser.add_argument("--n", type=int, default=None, help=n_help)
    return parser


def publish(name, body, args):
    """Print the section, and write it to BENCHMARKS.md unless --quick or --no-write."""
    print()
    print(body)
    if args.quick or args.no_write:
        print("BENCHMARKS.md not written (--quick or --no-write)")
    else:
        print(f"wrote the {name} section of {write_section(name, body)}")


def missing_module(contender):
    """Why a contender cannot run here (its ``requires`` module is not installed), or None."""
    module = getattr(contender, "requires", None)
    if module is None:
        return None
    try:
        __import__(module)
    except ImportError:
        package = getattr(contender, "package", module)
        return f"{module} is not installed (pip install {package})"
    return None


def split_runnable(contenders, missing=missing_module):
    """(the contenders that can run, {name: why not} for the others)."""
    runnable, skipped = [], {}
    for contender in contenders:
        note = missing(contender)
        if note:
            skipped[contender.name] = note
        else:
            runnable.append(contender)
    return runnable, skipped
