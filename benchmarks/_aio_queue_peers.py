"""The asyncio peers of benchmarks/aio.py's queue table: arq, saq, taskiq-redis and bullmq (the
Python port). Each one imports its package when it runs, so a missing peer is only skipped.

Every contender has ``name``, ``requires`` (the module it needs), ``package`` (what to pip
install) and ``async run(url, n, concurrency, job) -> {"enqueue": jobs/s, "process": jobs/s}``:
enqueue ``n`` jobs one ``await`` at a time, then start the peer's own worker in this process
with ``concurrency`` jobs at once and time it until the handler has run ``n`` times. ``job`` is
``"noop"`` or ``"sleep10"`` (``await asyncio.sleep(0.01)``). Settings are each peer's defaults
except where a default would only measure a sleep: arq polls every 0.5 s by default, here every
5 ms, and keeps no results (jexkv's no-op jobs keep theirs).
"""

import asyncio
import contextlib
import time


class Done:
    """Counts handler runs; ``wait()`` returns when ``n`` have run."""

    def __init__(self, n, job):
        self.n, self.job, self.ran, self.event = n, job, 0, asyncio.Event()

    async def hit(self):
        if self.job == "sleep10":
            await asyncio.sleep(0.01)
        self.ran += 1
        if self.ran >= self.n:
            self.event.set()

    async def wait(self, name):
        try:
            await asyncio.wait_for(self.event.wait(), 120)
        except asyncio.TimeoutError:
            raise RuntimeError(f"{name}: {self.ran:,} of {self.n:,} jobs ran in 120 s") from None


async def _timed_enqueue(n, add):
    started = time.perf_counter()
    for i in range(n):
        await add(i)
    return n / (time.perf_counter() - started)


class Arq:
    name = "arq"
    requires = package = "arq"

    async def run(self, url, n, concurrency, job):
        from arq import create_pool
        from arq.connections import RedisSettings
        from arq.worker import Worker, func

        done = Done(n, job)

        async def bench_job(ctx, i):
            await done.hit()

        pool = await create_pool(RedisSettings.from_dsn(url))
        worker = None
        try:
            enqueue = await _timed_enqueue(n, lambda i: pool.enqueue_job("bench_job", i))
            started = time.perf_counter()
            worker = Worker(
                [func(bench_job, name="bench_job")],
                redis_pool=pool,
                max_jobs=concurrency,
                handle_signals=False,
                poll_delay=0.005,
                keep_result=0,
                log_results=False,
            )
            running = asyncio.ensure_future(worker.main())
            await done.wait(self.name)
            process = n / (time.perf_counter() - started)
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        finally:
            if worker is not None:
                with contextlib.suppress(asyncio.CancelledError):  # its jobs' tasks, cancelled
                    await worker.close()
            await pool.aclose()
        return {"enqueue": enqueue, "process": process}


class Saq:
    name = "saq"
    requires = package = "saq"

    async def run(self, url, n, concurrency, job):
        from saq import Queue, Worker

        done = Done(n, job)

        async def bench_job(ctx, *, i):
            await done.hit()

        queue = Queue.from_url(url, name="bench")
        await queue.connect()
        worker = None
        try:
            enqueue = await _timed_enqueue(n, lambda i: queue.enqueue("bench_job", i=i))
            started = time.perf_counter()
            worker = Worker(queue, [("bench_job", bench_job)], concurrency=concurrency)
            running = asyncio.ensure_future(worker.start())
            await done.wait(self.name)
            process = n / (time.perf_counter() - started)
        finally:
            if worker is not None:
                await worker.stop()
                running.cancel()
            await queue.disconnect()
        return {"enqueue": enqueue, "process": process}


class TaskiqRedis:
    """taskiq's ``ListQueueBroker`` (a Redis list, BRPOP: the broker taskiq-redis documents
    first) with taskiq's own receiver, ``max_async_tasks`` at once."""

    name = "taskiq-redis (ListQueueBroker)"
    requires = "taskiq_redis"
    package = "taskiq-redis"

    async def run(self, url, n, concurrency, job):
        from taskiq.receiver import Receiver
        from taskiq_redis import ListQueueBroker

        done = Done(n, job)
        broker = ListQueueBroker(url, queue_name="bench")

        @broker.task(task_name="bench_job")
        async def bench_job(i):
            await done.hit()

        await broker.startup()
        finish = asyncio.Event()
        try:
            enqueue = await _timed_enqueue(n, bench_job.kiq)
            started = time.perf_counter()
            receiver = Receiver(broker, max_async_tasks=concurrency, run_startup=False)
            running = asyncio.ensure_future(receiver.listen(finish))
            await done.wait(self.name)
            process = n / (time.perf_counter() - started)
            finish.set()
            running.cancel()
        finally:
            await broker.shutdown()
        return {"enqueue": enqueue, "process": process}


class BullmqPython:
    name = "bullmq (Python port)"
    requires = package = "bullmq"

    async def run(self, url, n, concurrency, job):
        from bullmq import Queue, Worker

        done = Done(n, job)

        async def process_job(job_, token):
            await done.hit()

        queue = Queue("bench", {"connection": url})
        worker = None
        try:
            enqueue = await _timed_enqueue(n, lambda i: queue.add("bench_job", {"i": i}))
            started = time.perf_counter()
            worker = Worker("bench", process_job, {"connection": url, "concurrency": concurrency})
            await done.wait(self.name)
            process = n / (time.perf_counter() - started)
        finally:
            if worker is not None:
                await worker.close()
            await queue.close()
        return {"enqueue": enqueue, "process": process}


PEERS = [Arq, Saq, TaskiqRedis, BullmqPython]
