"""The Redis queue's steps, once, as generators of script calls: no I/O here.

Rules:
* Every step is one Lua script (jexkv/redis/lua), so it is atomic on the server; steps that
  finish a job check its lock token, so a worker that lost its lease cannot finish it twice.
* The keys, types and fields are BullMQ's (docs/redis-layout.md), so Node BullMQ workers,
  queues and Bull Board share these queues; timestamps come from the caller's clock, as
  BullMQ's do.
* Each step yields ``(SCRIPT, name, keys, args)`` or a command, and gets back the reply (or
  the error thrown in). ``RedisQueueBackend`` (redis/queue.py) runs them over the sync
  client, ``AsyncRedisQueueBackend`` (redis/aio_queue.py) over the asyncio one.
* The server is checked once per backend, before its first script: a Redis older than
  ``MIN_REDIS`` is refused, and an evicting one logged.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Callable

from jexkv.clock import due_ms, now_ms
from jexkv.codec import check_text
from jexkv.contracts import Claim
from jexkv.errors import ConfigError, InvalidArgument
from jexkv.jobs import STATES, Job, NewJob, added_job, is_job_id, scheduled_tick
from jexkv.namespaces import check_namespace, qualify
from jexkv.redis.job_hash import (
    claimed_job,
    compact_json,
    finished_from_event,
    hash_to_job,
    keep_opts,
    new_job_opts,
)
from jexkv.redis.programs import SCRIPT, TRANSACTION, Program
from jexkv.redis.schedule_hash import (
    beat_offset,
    hash_fields,
    number,
    schedule_fields,
    spec_from_hash,
    template_opts,
    tick_job_row,
)
from jexkv.redis.scripts import BATCH, KEY_NAMES, queue_keys
from jexkv.resp.errors import ServerError
from jexkv.resp.protocol import as_text
from jexkv.schedules import Schedule, ScheduleSpec, first_tick, next_tick
from jexkv.waiting import FINISHED, Deadline, not_found
from jexkv.wakeups import Wakeups

__all__ = ["MAX_PRIORITY", "MIN_REDIS", "QueueOps", "server_version"]

log = logging.getLogger("jexkv")

_ENDS = ("completed", "failed")  # the events of a job's end (BullMQ's "failed" is final)


def stream_entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """The (id, fields) entries of an XREAD reply for one stream (RESP3 map or RESP2 list);
    none when it timed out."""
    if not reply:
        return []
    streams = list(reply.values()) if isinstance(reply, dict) else [item[1] for item in reply]
    entries = []
    for entry_id, flat in streams[0]:
        pairs = [as_text(part) for part in flat]
        entries.append((as_text(entry_id), dict(zip(pairs[::2], pairs[1::2]))))
    return entries


MAX_PRIORITY = 2**21  # BullMQ's limit: priority * 2**32 + counter must stay exact in a double
_MAX_DUE_MS = 2**53 // 4096 - 1  # delayed scores are due * 4096 + seq, exact in a double
# The oldest Redis the scripts and the idle wait work on (LPOS, BZPOPMIN with a fractional
# timeout); README "The Redis queue and Node BullMQ".
MIN_REDIS = (6, 0, 6)


def server_version(info: str) -> tuple[int, ...] | None:
    """The ``redis_version`` in an ``INFO server`` reply, or None when it has none."""
    for line in info.splitlines():
        if line.startswith("redis_version:"):
            try:
                return tuple(int(part) for part in line.split(":", 1)[1].strip().split("."))
            except ValueError:
                return None
    return None


class QueueOps:
    """The steps of one Redis queue backend (a prefix and namespace on one server)."""

    def __init__(
        self,
        groups: Callable[[Iterable[str]], list[list[str]]],
        description: str,
        *,
        prefix: str,
        namespace: str,
        keep_completed: int,
        keep_dead: int | None,
    ) -> None:
        self.groups = groups
        self.description = description
        self.prefix = check_text(prefix, "prefix")
        self.namespace = check_namespace(namespace)
        self.keep_opts = keep_opts(keep_completed, keep_dead)
        # For jobs a fetch fails at once (stalled too often): the dead jobs to keep (-1: all).
        self.keep_dead = -1 if keep_dead is None else keep_dead
        self.plain_opts: dict[int, str] = {}  # attempts -> opts of a job with no other option
        self.keys: dict[str, tuple[list[str], str]] = {}
        self.wakeups = Wakeups()
        self.server_checked = False
        self.worker_name = f"jexkv:{socket.gethostname()}:{os.getpid()}"

    # -- plumbing ----------------------------------------------------------------------

    def queue(self, queue: str) -> tuple[list[str], str]:
        """The queue's fourteen keys and its job key prefix."""
        found = self.keys.get(queue)
        if found is None:
            base = f"{self.prefix}:{qualify(self.namespace, queue)}"
            keys = queue_keys(base)
            if len(self.groups(keys)) > 1:  # only ever on a cluster
                raise ConfigError(
                    f"on a Redis Cluster every key of a queue must share one slot, and those "
                    f"of {queue!r} ({base}:…) do not: put a hash tag in the prefix "
                    f"(prefix='{{{self.prefix}}}') or in the queue name"
                )
            found = self.keys[queue] = (keys, base + ":")
        return found

    def marker(self, queue: str) -> tuple[str, str]:
        """The queue's marker key, and the name of a connection that waits on it alone: as
        BullMQ names its workers, <prefix>:<base64(queue)>, where a Node process sees a
        namespaced queue with the prefix <prefix>:<namespace>."""
        import base64

        keys, _ = self.queue(queue)
        encoded = base64.b64encode(queue.encode()).decode()
        return keys[KEY_NAMES.index("marker")], f"{self.prefix}:{qualify(self.namespace, encoded)}"

    def script(self, name: str, queue: str, *args: Any, now: int | None = None) -> Program[Any]:
        if not self.server_checked:
            yield from self.check_server()
        keys, job_prefix = self.queue(queue)
        now = now_ms() if now is None else now
        return (yield (SCRIPT, name, keys, (job_prefix, now, BATCH, *args)))

    def check_server(self) -> Program[None]:
        """Refuse a Redis older than MIN_REDIS; warn when it may evict keys."""
        try:
            info = as_text((yield ("INFO", "server")))
        except ServerError:
            info = ""  # INFO is disabled on this server (ACLs, a managed service): unchecked
        version = server_version(info)
        if version is not None and version < MIN_REDIS:
            need = ".".join(map(str, MIN_REDIS))
            raise ConfigError(
                f"the jexkv queue needs Redis {need} or newer; {self.description} runs "
                f"{'.'.join(map(str, version))}; upgrade Redis (the KV store needs only 4.0)"
            )
        try:
            reply = yield ("CONFIG", "GET", "maxmemory-policy")
        except ServerError:
            reply = None  # CONFIG is disabled on this server (ACLs, a managed service)
        if reply is not None:
            values = list(reply.values()) if isinstance(reply, dict) else list(reply)[1::2]
            policy = as_text(values[0]) if values else "noeviction"
            if policy != "noeviction":
                log.warning(
                    "%s has maxmemory-policy %s; set it to noeviction, or Redis may evict "
                    "queued jobs when it runs out of memory",
                    self.description,
                    policy,
                )
        self.server_checked = True

    def _claims(self, queue: str, reply: list[Any], token: str, now: int) -> list[Claim]:
        return [(claimed_job(queue, packed, now), token) for packed in reply[1:]]

    # -- the steps ---------------------------------------------------------------------

    def add(self, queue: str, jobs: Sequence[NewJob]) -> Program[list[Job]]:
        now = now_ms()
        rows: list[tuple[str, str, str, int, int]] = []
        for new in jobs:
            if new.priority > MAX_PRIORITY:
                raise InvalidArgument(
                    f"priority must be <= {MAX_PRIORITY} on Redis (BullMQ's limit), "
                    f"got {new.priority}"
                )
            if now + new.delay_ms > _MAX_DUE_MS:
                raise InvalidArgument(
                    f"delay_ms {new.delay_ms} is too far ahead for BullMQ's layout"
                )
            plain = not (
                new.backoff or new.priority or new.delay_ms or new.job_id or new.timeout_ms
            )
            opts = self.plain_opts.get(new.attempts) if plain else None
            if opts is None:
                opts = new_job_opts(new, self.keep_opts)
                if plain and len(self.plain_opts) < 64:
                    self.plain_opts[new.attempts] = opts
            rows.append((new.job_id or "", new.name, opts, new.delay_ms, new.priority))
        # One JSON array for the small fields, the payloads (JSON already) as they are.
        payloads = (new.payload for new in jobs)
        first, kept = yield from self.script("add", queue, compact_json(rows), *payloads, now=now)
        added = [
            added_job(
                queue,
                new,
                new.job_id or str(first + i),
                "delayed" if new.delay_ms else "waiting",
                now + new.delay_ms,
                now,
            )
            for i, new in enumerate(jobs)
        ]
        for i in range(0, len(kept), 3):  # kept already: that job, as it is
            index = int(kept[i]) - 1
            added[index] = hash_to_job(queue, added[index].id, kept[i + 2], as_text(kept[i + 1]))
        return added

    def fetch(self, queue: str, lease_ms: int, limit: int) -> Program[list[Claim]]:
        token, now = uuid.uuid4().hex, now_ms()
        reply = yield from self.script(
            "fetch", queue, limit, token, lease_ms, self.worker_name, self.keep_dead, now=now
        )
        if len(reply) == 1:  # nothing claimed
            self.wakeups.found_nothing(queue, int(reply[0]) or None)
        claims = self._claims(queue, reply, token, now)
        yield from self.next_ticks(queue, claims)
        return claims

    def complete(
        self,
        queue: str,
        done: Sequence[tuple[str, str, str]],
        keep: int,
        next_lease_ms: int,
        next_limit: int,
    ) -> Program[tuple[list[str], list[Claim]]]:
        token, now = uuid.uuid4().hex, now_ms()
        args: list[Any] = [keep, len(done)]
        for entry in done:
            args += entry
        args += (next_limit, token, next_lease_ms, self.worker_name, self.keep_dead)
        lost, claimed = yield from self.script("complete", queue, *args, now=now)
        claims = self._claims(queue, claimed, token, now)
        yield from self.next_ticks(queue, claims)
        return [as_text(job_id) for job_id in lost], claims

    def release(self, queue: str, held: Sequence[tuple[str, str]]) -> Program[None]:
        if held:
            yield from self.script("release", queue, *(part for pair in held for part in pair))

    def fail(
        self,
        queue: str,
        job_id: str,
        token: str,
        error: str,
        traceback: str,
        retry_delay_ms: int | None,
        keep_dead: int | None,
    ) -> Program[bool]:
        retry = -1 if retry_delay_ms is None else due_ms(retry_delay_ms)
        keep = -1 if keep_dead is None else keep_dead
        return bool(
            (yield from self.script("fail", queue, job_id, token, error, traceback, retry, keep))
        )

    def extend(
        self, queue: str, held: Sequence[tuple[str, str]], lease_ms: int
    ) -> Program[list[str]]:
        args = (part for pair in held for part in pair)
        lost = yield from self.script("extend", queue, lease_ms, *args)
        return [as_text(job_id) for job_id in lost]

    def recover_stalled(
        self, queue: str, max_stalls: int, interval_ms: int, keep_dead: int | None
    ) -> Program[int]:
        # Jobs past max_stalls are failed by whoever fetches them next (BullMQ's way), and
        # kept by that worker's keep_dead (``keep_dead`` here is this queue's, given to fetch).
        return int((yield from self.script("stalled", queue, interval_ms, max_stalls)))

    def get(self, queue: str, job_id: str) -> Program[Job | None]:
        if not is_job_id(job_id):
            return None  # no job has it, and it may name one of the queue's keys
        reply = yield from self.script("get", queue, job_id)
        if reply is None:
            return None
        return hash_to_job(queue, job_id, reply[1], as_text(reply[0]))

    def wait_for(self, queue: str, job_id: str, timeout_ms: int | None) -> Program[Job]:
        """The job once it has finished (jexkv/waiting.py's rules): its events are read from
        the queue's events stream, from the entry before the first look at the job on, so
        a finish after that look is never missed, whoever finished it (Node workers too).
        A job whose hash stays (keep rules) is read again; one removed is built from its
        ``completed`` or ``failed`` event."""
        deadline = Deadline(queue, job_id, timeout_ms)
        keys, _ = self.queue(queue)
        events = keys[KEY_NAMES.index("events")]
        newest = yield ("XREVRANGE", events, "+", "-", "COUNT", 1)
        cursor = as_text(newest[0][0]) if newest else "0-0"
        job = yield from self.get(queue, job_id)
        if job is None:
            raise not_found(queue, job_id)
        while job.state not in FINISHED:
            block_ms = max(1, int(deadline.left_s() * 1000))
            reply = yield ("XREAD", "COUNT", 1000, "BLOCK", block_ms, "STREAMS", events, cursor)
            for entry_id, fields in stream_entries(reply):
                cursor = entry_id
                if fields.get("jobId") != job_id or fields.get("event") not in _ENDS:
                    continue
                found = yield from self.get(queue, job_id)
                if found is not None and found.state in FINISHED:
                    return found
                return finished_from_event(job, fields, int(entry_id.split("-")[0]))
        return job

    # -- schedules (jexkv/schedules.py, redis/schedule_hash.py) ----------------------------

    def schedule(self, queue: str, spec: ScheduleSpec) -> Program[Schedule]:
        now = now_ms()
        first = first_tick(spec, now)
        opts = template_opts(spec, self.keep_opts)
        fields = schedule_fields(spec, opts, first)
        offset = beat_offset(spec, first)
        row = "" if first is None else tick_job_row(spec, opts, first, now, 1, offset)
        yield from self.script(
            "schedule", queue, spec.id, compact_json(fields), "" if first is None else first,
            row, spec.payload, now=now,
        )  # fmt: skip
        return spec.schedule(queue, first, 0 if first is None else 1)

    def unschedule(self, queue: str, schedule_id: str) -> Program[bool]:
        return bool((yield from self.script("unschedule", queue, schedule_id)))

    def schedules(self, queue: str) -> Program[list[Schedule]]:
        found: list[Schedule] = []
        after = ""
        while True:
            page = yield from self.script("schedules", queue, after, 500)
            for sid, tick, flat, state in page:
                fields = hash_fields(flat)
                read = spec_from_hash(as_text(sid), fields)
                if read is not None:
                    pending = as_text(state) in ("waiting", "delayed")
                    next_run = number(as_text(tick)) if pending else None
                    found.append(read[0].schedule(queue, next_run, number(fields.get("ic")) or 0))
                after = as_text(sid)
            if len(page) < 500:
                return found

    def next_ticks(self, queue: str, claims: list[Claim]) -> Program[None]:
        """Claimed jobs of schedules: make each one's next tick job (schedule_next.lua
        decides whether this claim may). As BullMQ's workers do it, after the claim."""
        for job, _ in claims:
            tick = scheduled_tick(job.id)
            if tick is not None:
                yield from self._next_tick(queue, *tick)

    def _next_tick(self, queue: str, schedule_id: str, tick: int) -> Program[None]:
        _, job_prefix = self.queue(queue)
        repeat_key = job_prefix + "repeat"
        current, flat = yield (
            TRANSACTION,
            [("ZSCORE", repeat_key, schedule_id), ("HGETALL", f"{repeat_key}:{schedule_id}")],
        )
        if current is None or number(as_text(current)) != tick:
            return  # not the schedule's current tick (any more): another claim made the next
        fields = hash_fields(flat)
        read = spec_from_hash(schedule_id, fields)
        if read is None:
            return
        spec, opts = read
        now = now_ms()
        runs = number(fields.get("ic")) or 0
        following = next_tick(spec, tick, now, runs)
        offset = number(fields.get("offset")) if spec.every_ms else None
        row = (
            "" if following is None else tick_job_row(spec, opts, following, now, runs + 1, offset)
        )
        yield from self.script(
            "schedule_next", queue, schedule_id, tick, "" if following is None else following,
            row, fields.get("data") or "{}", now=now,
        )  # fmt: skip

    def counts(self, queue: str) -> Program[dict[str, int]]:
        wait, prioritized, due, delayed, active, completed, dead, _ = yield from self.script(
            "counts", queue
        )
        counted = (wait + prioritized + due, delayed - due, active, completed, dead)
        return dict(zip(STATES, counted))

    def list_jobs(self, queue: str, state: str, limit: int) -> Program[list[Job]]:
        if limit == 0:
            return []
        reply = yield from self.script("list", queue, state, limit)
        jobs = [
            hash_to_job(queue, as_text(reply[i]), reply[i + 1], state)
            for i in range(0, len(reply), 2)
        ]
        if state == "waiting":  # wait, then prioritized and due delayed jobs by priority
            jobs.sort(key=lambda job: job.priority)
        return jobs[:limit]

    def retry_dead(self, queue: str, job_id: str | None) -> Program[int]:
        if job_id is not None:
            if not is_job_id(job_id):
                return 0  # no job has it, and it may name one of the queue's keys
            return int((yield from self.script("retry_dead", queue, job_id)))
        now, total = now_ms(), 0
        while True:  # every job dead now; a job that dies again meanwhile waits for next time
            moved = int((yield from self.script("retry_dead", queue, "", now=now)))
            total += moved
            if moved < BATCH:
                return total

    def purge_dead(self, queue: str) -> Program[int]:
        total = 0
        while True:
            removed = int((yield from self.script("purge_dead", queue)))
            total += removed
            if removed < BATCH:
                return total

    def set_paused(self, queue: str, paused: bool) -> Program[None]:
        yield from self.script("pause", queue, "paused" if paused else "resumed")

    def is_paused(self, queue: str) -> Program[bool]:
        return bool((yield from self.script("counts", queue))[7])
