"""RedisQueueBackend: the queue steps on Redis, in BullMQ v6's data layout.

Rules:
* Every step is one Lua script (jexkv/redis/lua), so it is atomic on the server; steps that
  finish a job check its lock token, so a worker that lost its lease cannot finish it twice.
* The keys, types and fields are BullMQ's (docs/redis-layout.md), so Node BullMQ workers, queues
  and Bull Board share these queues; timestamps come from the caller's clock, as BullMQ's do.
* An idle process never polls: idle workers wait on their queue's wake-ups, and a few watcher
  threads per store block on the markers of every waiting queue (redis/markers.py).
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from jexkv.clock import due_ms, now_ms
from jexkv.codec import check_text
from jexkv.contracts import Claim
from jexkv.errors import ConfigError, InvalidArgument
from jexkv.jobs import STATES, Job, NewJob, added_job, is_job_id
from jexkv.namespaces import check_namespace, qualify
from jexkv.redis.job_hash import claimed_job, compact_json, hash_to_job, keep_opts, new_job_opts
from jexkv.redis.markers import MarkerWatch
from jexkv.redis.scripts import BATCH, KEY_NAMES, load_scripts, queue_keys
from jexkv.resp import ServerError
from jexkv.resp.protocol import as_text
from jexkv.resp.surface import RedisClient
from jexkv.taskqueue import JobQueue
from jexkv.wakeups import Wakeups

__all__ = ["RedisQueueBackend", "open_redis_queue"]

log = logging.getLogger("jexkv")

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


class RedisQueueBackend:
    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = "bull",
        namespace: str = "",
        keep_completed: int = 0,
        keep_dead: int | None = None,
    ) -> None:
        self._client = client
        self._keep_opts = keep_opts(keep_completed, keep_dead)
        # For jobs a fetch fails at once (stalled too often): the dead jobs to keep (-1: all).
        self._keep_dead = -1 if keep_dead is None else keep_dead
        self._plain_opts: dict[int, str] = {}  # attempts -> opts of a job with no other option
        self._prefix = check_text(prefix, "prefix")
        self._ns = check_namespace(namespace)
        self._scripts = load_scripts(client)
        self._keys: dict[str, tuple[list[str], str]] = {}
        self._wakeups = Wakeups()
        self._markers = MarkerWatch(client, self._wakeups)
        self._server_checked = False
        self._worker_name = f"jexkv:{socket.gethostname()}:{os.getpid()}"

    # -- plumbing ----------------------------------------------------------------------

    def _queue(self, queue: str) -> tuple[list[str], str]:
        found = self._keys.get(queue)
        if found is None:
            base = f"{self._prefix}:{qualify(self._ns, queue)}"
            keys = queue_keys(base)
            if len(self._client.slot_groups(keys)) > 1:  # only ever on a cluster
                raise ConfigError(
                    f"on a Redis Cluster every key of a queue must share one slot, and those "
                    f"of {queue!r} ({base}:…) do not: put a hash tag in the prefix "
                    f"(prefix='{{{self._prefix}}}') or in the queue name"
                )
            found = self._keys[queue] = (keys, base + ":")
        return found

    def _run(self, script: str, queue: str, *args: Any, now: int | None = None) -> Any:
        if not self._server_checked:
            self._check_server()
        keys, job_prefix = self._queue(queue)
        now = now_ms() if now is None else now
        return self._scripts[script](keys, (job_prefix, now, BATCH, *args))

    def _check_server(self) -> None:
        """Once per backend, before its first script: refuse a Redis older than MIN_REDIS."""
        try:
            info = as_text(self._client.execute_command("INFO", "server"))
        except ServerError:
            info = ""  # INFO is disabled on this server (ACLs, a managed service): unchecked
        version = server_version(info)
        if version is not None and version < MIN_REDIS:
            need = ".".join(map(str, MIN_REDIS))
            raise ConfigError(
                f"the jexkv queue needs Redis {need} or newer; {self._client!r} runs "
                f"{'.'.join(map(str, version))}; upgrade Redis (the KV store needs only 4.0)"
            )
        self._check_policy()
        self._server_checked = True

    def _check_policy(self) -> None:
        """Warn once when the server may evict keys: an evicting Redis silently loses jobs."""
        try:
            reply = self._client.execute_command("CONFIG", "GET", "maxmemory-policy")
        except ServerError:
            return  # CONFIG is disabled on this server (ACLs, a managed service)
        if isinstance(reply, dict):
            values = list(reply.values())
        else:
            values = list(reply)[1::2]
        policy = as_text(values[0]) if values else "noeviction"
        if policy != "noeviction":
            log.warning(
                "%r has maxmemory-policy %s; set it to noeviction, or Redis may "
                "evict queued jobs when it runs out of memory",
                self._client,
                policy,
            )

    def _claims(self, queue: str, reply: list[Any], token: str, now: int) -> list[Claim]:
        return [(claimed_job(queue, packed, now), token) for packed in reply[1:]]

    def _watch(self, queue: str) -> None:
        """Have a watcher wake ``queue``'s idle workers when its marker gets work."""
        keys, _ = self._queue(queue)
        # As BullMQ names its workers: <prefix>:<base64(queue)>, where a Node process sees a
        # namespaced queue with the prefix <prefix>:<namespace>.
        encoded = base64.b64encode(queue.encode()).decode()
        name = f"{self._prefix}:{qualify(self._ns, encoded)}"
        self._markers.watch(queue, keys[KEY_NAMES.index("marker")], name)

    # -- adding and fetching -----------------------------------------------------------

    def add(self, queue: str, jobs: Sequence[NewJob]) -> list[Job]:
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
            plain = not (new.backoff or new.priority or new.delay_ms or new.job_id)
            opts = self._plain_opts.get(new.attempts) if plain else None
            if opts is None:
                opts = new_job_opts(new, self._keep_opts)
                if plain and len(self._plain_opts) < 64:
                    self._plain_opts[new.attempts] = opts
            rows.append((new.job_id or "", new.name, opts, new.delay_ms, new.priority))
        # One JSON array for the small fields, the payloads (JSON already) as they are.
        payloads = (new.payload for new in jobs)
        first, kept = self._run("add", queue, compact_json(rows), *payloads, now=now)
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

    def fetch(self, queue: str, lease_ms: int, limit: int) -> list[Claim]:
        token, now = uuid.uuid4().hex, now_ms()
        seen = self._wakeups.seen(queue)  # before the look: a wake-up after it is not missed
        name, keep_dead = self._worker_name, self._keep_dead
        reply = self._run("fetch", queue, limit, token, lease_ms, name, keep_dead, now=now)
        if len(reply) == 1:  # nothing claimed
            self._wakeups.found_nothing(queue, seen, int(reply[0]) or None)
        return self._claims(queue, reply, token, now)

    def wait(self, queue: str, timeout_s: float, stop: threading.Event) -> None:
        self._watch(queue)
        self._wakeups.idle(queue, timeout_s, stop, now_ms())

    def notify(self, queue: str) -> None:
        self._wakeups.bump(queue)

    # -- finishing ---------------------------------------------------------------------

    def complete(
        self,
        queue: str,
        done: Sequence[tuple[str, str, str]],
        keep: int,
        next_lease_ms: int,
        next_limit: int,
    ) -> tuple[list[str], list[Claim]]:
        token, now = uuid.uuid4().hex, now_ms()
        args: list[Any] = [keep, len(done)]
        for entry in done:
            args += entry
        args += (next_limit, token, next_lease_ms, self._worker_name, self._keep_dead)
        lost, claimed = self._run("complete", queue, *args, now=now)
        return [as_text(job_id) for job_id in lost], self._claims(queue, claimed, token, now)

    def release(self, queue: str, held: Sequence[tuple[str, str]]) -> None:
        if held:
            self._run("release", queue, *(part for pair in held for part in pair))

    def fail(
        self,
        queue: str,
        job_id: str,
        token: str,
        error: str,
        traceback: str,
        retry_delay_ms: int | None,
        keep_dead: int | None,
    ) -> bool:
        retry = -1 if retry_delay_ms is None else due_ms(retry_delay_ms)
        keep = -1 if keep_dead is None else keep_dead
        return bool(self._run("fail", queue, job_id, token, error, traceback, retry, keep))

    def extend(self, queue: str, held: Sequence[tuple[str, str]], lease_ms: int) -> list[str]:
        args = (part for pair in held for part in pair)
        return [as_text(job_id) for job_id in self._run("extend", queue, lease_ms, *args)]

    def recover_stalled(
        self, queue: str, max_stalls: int, interval_ms: int, keep_dead: int | None
    ) -> int:
        # Jobs past max_stalls are failed by whoever fetches them next (BullMQ's way), and
        # kept by that worker's keep_dead (``keep_dead`` here is this queue's, given to fetch).
        return int(self._run("stalled", queue, interval_ms, max_stalls))

    # -- inspection and repair ---------------------------------------------------------

    def get(self, queue: str, job_id: str) -> Job | None:
        if not is_job_id(job_id):
            return None  # no job has it, and it may name one of the queue's keys
        reply = self._run("get", queue, job_id)
        if reply is None:
            return None
        return hash_to_job(queue, job_id, reply[1], as_text(reply[0]))

    def counts(self, queue: str) -> dict[str, int]:
        wait, prioritized, due, delayed, active, completed, dead, _ = self._run("counts", queue)
        counted = (wait + prioritized + due, delayed - due, active, completed, dead)
        return dict(zip(STATES, counted))

    def list_jobs(self, queue: str, state: str, limit: int) -> list[Job]:
        if limit == 0:
            return []
        reply = self._run("list", queue, state, limit)
        jobs = [
            hash_to_job(queue, as_text(reply[i]), reply[i + 1], state)
            for i in range(0, len(reply), 2)
        ]
        if state == "waiting":  # wait, then prioritized and due delayed jobs by priority
            jobs.sort(key=lambda job: job.priority)
        return jobs[:limit]

    def retry_dead(self, queue: str, job_id: str | None) -> int:
        if job_id is not None:
            if not is_job_id(job_id):
                return 0  # no job has it, and it may name one of the queue's keys
            return int(self._run("retry_dead", queue, job_id))
        now, total = now_ms(), 0
        while True:  # every job dead now; a job that dies again meanwhile waits for next time
            moved = int(self._run("retry_dead", queue, "", now=now))
            total += moved
            if moved < BATCH:
                return total

    def purge_dead(self, queue: str) -> int:
        total = 0
        while True:
            removed = int(self._run("purge_dead", queue))
            total += removed
            if removed < BATCH:
                return total

    def set_paused(self, queue: str, paused: bool) -> None:
        self._run("pause", queue, "paused" if paused else "resumed")

    def is_paused(self, queue: str) -> bool:
        return bool(self._run("counts", queue)[7])

    def close(self) -> None:
        self._markers.close()
        self._client.close()


def open_redis_queue(location: str, options: dict[str, Any]) -> JobQueue:
    """A task queue on Redis in BullMQ's layout; ``location`` is the Redis URL."""
    from jexkv.resp.connect import client_for_url

    prefix = options.pop("prefix", "bull")
    if not prefix or any(c in prefix for c in "\r\n "):
        raise ConfigError(f"option 'prefix' must be a non-empty str without spaces, got {prefix!r}")
    namespace = options.pop("namespace", "")
    queue_options = {
        name: options.pop(name)
        for name in ("lease_ms", "keep_completed", "keep_dead", "max_stalls")
        if name in options
    }
    client = client_for_url(location, options)
    backend = RedisQueueBackend(
        client,
        prefix=prefix,
        namespace=namespace,
        keep_completed=queue_options.get("keep_completed", 0),
        keep_dead=queue_options.get("keep_dead"),
    )
    return JobQueue(backend, description=repr(client), **queue_options)
