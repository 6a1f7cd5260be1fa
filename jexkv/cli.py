"""The ``jexkv`` command line: demo, worker runner, queue and kv inspection.

Rule: a user error (bad URL or option, missing module, unreadable store) prints
one line, ``jexkv: error: …``, on stderr and exits 2: never a traceback. Every
command takes ``--url`` (default ``$JEXKV_URL``, else ``sqlite:///jexkv.db``)
and ``--json`` for machine-readable output, before or after the command name.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, Callable

import jexkv
from jexkv.jobs import STATES, Job
from jexkv.runner import UserError
from jexkv.schedules import Schedule

__all__ = ["main"]

DEFAULT_URL = "sqlite:///jexkv.db"


def parse_value(text: str, raw: bool = False) -> Any:
    """A command-line value: JSON when it parses as JSON, else the text itself.

    Text that looks like JSON (it starts with ``{``, ``[`` or ``"``) but does not parse
    is an error, not a string: a typo in a payload must not be stored as text. ``raw``
    (``--raw``) takes the text as it is, whatever it looks like.
    """
    if raw:
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        if text.lstrip()[:1] in ("{", "[", '"'):
            raise UserError(
                f"{text!r} looks like JSON but does not parse ({exc}); "
                "pass --raw to store it as a string"
            ) from None
        return text


# Commands that only read: they never create the store (a SQLite file) they look into.
_READ_ONLY = {("kv", "get"), ("kv", "ttl"), ("kv", "keys"),
              ("queue", "counts"), ("queue", "jobs"), ("queue", "dead"),
              ("queue", "schedules")}  # fmt: skip


def _missing_store(args: argparse.Namespace) -> bool:
    """A read-only command on a SQLite file that does not exist: it answers as an empty
    store would (with a note on stderr) and creates nothing."""
    from jexkv.urls import parse_url

    url = _url(args)
    scheme, location, _ = parse_url(url, {}, args.command)
    if scheme == "sqlite" and not os.path.exists(location):
        print(f"jexkv: note: no store at {url} ({location} does not exist; nothing was "
              "created): the answer is an empty store's", file=sys.stderr)  # fmt: skip
        return True
    return False


def _url(args: argparse.Namespace) -> str:
    if getattr(args, "empty", False):
        return "memory://"  # a read-only look at a store that does not exist
    return args.url or os.environ.get("JEXKV_URL") or DEFAULT_URL


def _emit(args: argparse.Namespace, data: Any, human: Callable[[], str]) -> None:
    print(json.dumps(data, default=str) if args.json else human())


def _job_dict(job: Job) -> dict[str, Any]:
    data = dataclasses.asdict(job)
    data["backoff"] = None if job.backoff is None else job.backoff.to_dict()
    return data


def _job_line(job: Job) -> str:
    line = f"{job.id}  {job.name}  {job.state}  attempts {job.attempts_made}/{job.attempts}"
    return f"{line}  {job.error}" if job.error else line


# -- kv ------------------------------------------------------------------------------


def _kv(args: argparse.Namespace) -> None:
    with jexkv.open_kv(_url(args)) as kv:
        if args.action == "get":
            missing = object()
            value = kv.get(args.key, missing)
            found = value is not missing
            data = {"key": args.key, "found": found, "value": value if found else None}
            _emit(args, data, lambda: json.dumps(value) if found else "(nil)")
        elif args.action == "set":
            written = kv.set(
                args.key,
                parse_value(args.value, args.raw),
                ttl_ms=args.ttl_ms,
                nx=args.nx,
                xx=args.xx,
            )
            _emit(
                args,
                {"key": args.key, "written": written},
                lambda: "OK" if written else "(not set)",
            )
        elif args.action == "del":
            deleted = kv.delete(*args.keys)
            _emit(args, {"deleted": deleted}, lambda: str(deleted))
        elif args.action == "ttl":
            ttl = kv.ttl_ms(args.key)
            _emit(args, {"key": args.key, "ttl_ms": ttl}, lambda: str(ttl))
        else:  # keys
            keys: list[str] = []
            for key in kv.keys(args.prefix):
                if args.limit is not None and len(keys) >= args.limit:
                    break
                keys.append(key)
            _emit(args, keys, lambda: "\n".join(keys))


# -- queue ---------------------------------------------------------------------------


def _queue(args: argparse.Namespace) -> None:
    with jexkv.open_queue(_url(args)) as q:
        name = args.queue
        if args.action == "counts":
            counts = q.counts(name)
            _emit(args, counts, lambda: "\n".join(f"{k}: {v}" for k, v in counts.items()))
        elif args.action in ("pause", "resume"):
            if args.action == "pause":
                q.pause(name)
            else:
                q.resume(name)
            _emit(args, {"paused": q.is_paused(name)}, lambda: f"{name}: {args.action}d")
        elif args.action in ("jobs", "dead"):
            state = "dead" if args.action == "dead" else args.state
            jobs = q.jobs(name, state, limit=args.limit)
            _emit(args, [_job_dict(j) for j in jobs], lambda: "\n".join(map(_job_line, jobs)))
        elif args.action == "retry":
            retried = q.retry_dead(name, args.job_id)
            _emit(args, {"retried": retried}, lambda: f"retried {retried}")
        elif args.action == "purge":
            purged = q.purge_dead(name)
            _emit(args, {"purged": purged}, lambda: f"purged {purged}")
        elif args.action == "schedules":
            found = q.schedules(name)
            listed = [_schedule_dict(s) for s in found]
            _emit(args, listed, lambda: "\n".join(map(_schedule_line, found)))
        elif args.action == "unschedule":
            if not q.unschedule(name, args.schedule_id):
                raise UserError(f"no schedule {args.schedule_id!r} on queue {name!r}")
            _emit(
                args, {"unscheduled": args.schedule_id}, lambda: f"unscheduled {args.schedule_id}"
            )
        else:  # enqueue
            job = q.enqueue(
                name,
                args.name,
                None if args.payload is None else parse_value(args.payload, args.raw),
                delay_ms=args.delay_ms,
                attempts=args.attempts,
                priority=args.priority,
                job_id=args.job_id,
                backoff=args.backoff_ms,
            )
            _emit(args, _job_dict(job), lambda: job.id)


def _schedule_dict(schedule: Schedule) -> dict[str, Any]:
    listed = dataclasses.asdict(schedule)
    listed["backoff"] = None if schedule.backoff is None else schedule.backoff.to_dict()
    return listed


def _schedule_line(schedule: Schedule) -> str:
    when = (
        f"cron {schedule.cron!r} {schedule.tz}"
        if schedule.cron
        else f"every {schedule.every_ms} ms"
    )
    if schedule.next_run_at_ms is None:
        next_run = "ended"
    else:
        at = datetime.datetime.fromtimestamp(schedule.next_run_at_ms / 1000, datetime.timezone.utc)
        next_run = "next " + at.isoformat(timespec="seconds").replace("+00:00", "Z")
    return f"{schedule.id}  {schedule.name}  {when}  {next_run}  runs {schedule.runs}"


# -- parser --------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, top: bool) -> None:
    # On the top parser they set the defaults; on each command they may repeat them.
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--url", default=default, help=f"store URL (default: $JEXKV_URL, else {DEFAULT_URL})"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="machine-readable output",
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jexkv", description="A key-value store with TTL and a task queue."
    )
    _common(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser("demo", help="show jexkv at work (a SQLite file in a temp folder)")
    _common(demo, top=False)

    worker = commands.add_parser("worker", help="run the workers that MODULE:FUNCTION registers")
    worker.add_argument("target", metavar="MODULE:FUNCTION", help="calls FUNCTION(queue)")
    worker.add_argument("--concurrency", type=int, default=1, help="default threads per queue")
    worker.add_argument(
        "--processes",
        type=int,
        default=None,
        metavar="N",
        help="run each queue's jobs in N child processes (handlers importable by name)",
    )
    _common(worker, top=False)

    queue = commands.add_parser("queue", help="look into and repair a queue")
    _common(queue, top=False)
    actions = queue.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, text in (
        ("counts", "jobs per state"),
        ("jobs", "list jobs in a state"),
        ("dead", "list dead jobs, newest first"),
        ("retry", "retry one dead job, or all"),
        ("purge", "delete the dead jobs"),
        ("pause", "stop every worker from fetching (running jobs finish)"),
        ("resume", "let workers fetch again"),
        ("enqueue", "add a job"),
        ("schedules", "list the queue's schedules"),
        ("unschedule", "remove a schedule (and its job for the next tick)"),
    ):
        sub = actions.add_parser(action, help=text)
        sub.add_argument("queue", metavar="QUEUE")
        _common(sub, top=False)
        if action in ("jobs", "dead"):
            sub.add_argument("--limit", type=int, default=100)
        if action == "jobs":
            sub.add_argument("--state", choices=STATES, default="waiting")
        if action == "retry":
            sub.add_argument("job_id", metavar="JOB_ID", nargs="?")
        if action == "unschedule":
            sub.add_argument("schedule_id", metavar="ID")
        if action == "enqueue":
            sub.add_argument("name", metavar="NAME")
            sub.add_argument("payload", metavar="PAYLOAD", nargs="?", help="JSON, else text")
            sub.add_argument("--delay-ms", type=int, default=0)
            sub.add_argument("--attempts", type=int, default=1)
            sub.add_argument("--priority", type=int, default=0)
            sub.add_argument("--backoff-ms", type=int, default=None)
            sub.add_argument("--job-id", default=None)
            sub.add_argument("--raw", action="store_true", help="PAYLOAD is a string as is")

    kv = commands.add_parser("kv", help="read and write keys")
    _common(kv, top=False)
    kv_actions = kv.add_subparsers(dest="action", metavar="ACTION", required=True)
    get = kv_actions.add_parser("get", help="print a value")
    get.add_argument("key", metavar="KEY")
    put = kv_actions.add_parser("set", help="write a value (JSON, else text)")
    put.add_argument("key", metavar="KEY")
    put.add_argument("value", metavar="VALUE")
    put.add_argument("--ttl-ms", type=int, default=None)
    put.add_argument("--raw", action="store_true", help="VALUE is a string as is, not JSON")
    only = put.add_mutually_exclusive_group()
    only.add_argument("--nx", action="store_true", help="only if the key is absent")
    only.add_argument("--xx", action="store_true", help="only if the key is present")
    delete = kv_actions.add_parser("del", help="delete keys")
    delete.add_argument("keys", metavar="KEY", nargs="+")
    ttl = kv_actions.add_parser("ttl", help="remaining ms (-1 no expiry, -2 missing)")
    ttl.add_argument("key", metavar="KEY")
    keys = kv_actions.add_parser("keys", help="list keys")
    keys.add_argument("prefix", metavar="PREFIX", nargs="?", default="")
    keys.add_argument("--limit", type=int, default=None)
    for sub in (get, put, delete, ttl, keys):
        _common(sub, top=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from jexkv.demo import run_demo

            run_demo(args.url)
        elif args.command == "worker":
            from jexkv.runner import run_worker

            return run_worker(_url(args), args.target, args.concurrency, args.processes)
        else:
            if (args.command, args.action) in _READ_ONLY:
                args.empty = _missing_store(args)
            (_kv if args.command == "kv" else _queue)(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
    except BrokenPipeError:
        # `jexkv ... | head -1`: the reader has gone; quietly, as a Unix tool does. Later
        # writes (the interpreter's own flush at exit) go nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (jexkv.JexkvError, UserError) as exc:  # bad input, a backend down: one line
        print(f"jexkv: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text
