"""GroupCommit: COMPLETE steps of slots that finish together go to the backend as one call, and
each slot gets back what it would have got alone."""

import asyncio
from types import SimpleNamespace

import pytest

from jexkv.group_commit import GroupCommit


class Backend:
    """Records each complete() call; hands out ``ready`` claims in order; some ids are lost."""

    def __init__(self, ready=0, lost=(), fail=None):
        self.calls, self.released = [], []
        self.ready, self.lost, self.fail = ready, set(lost), fail
        self.next_id = 0

    async def complete(self, queue, acks, keep, lease_ms, claim_next):
        self.calls.append((queue, list(acks), keep, lease_ms, claim_next))
        await asyncio.sleep(0.01)  # a round trip: the others arrive meanwhile
        if self.fail is not None:
            raise self.fail
        claims = []
        while len(claims) < claim_next and self.ready:
            self.ready -= 1
            self.next_id += 1
            job = SimpleNamespace(id=f"job-{self.next_id}")
            claims.append((job, f"token-{self.next_id}"))
        return [job_id for job_id, _, _ in acks if job_id in self.lost], claims

    async def release(self, queue, held):
        self.released.append((queue, list(held)))


def ack(job_id):
    return (job_id, "token", "result")


def test_fifty_slots_finishing_together_cost_two_calls_and_get_their_own_share():
    backend = Backend(ready=60, lost={"done-7"})
    commits = GroupCommit("q", backend.complete, backend.release)

    async def main():
        first = asyncio.ensure_future(commits.complete([ack("done-0")], 5, 30_000, 2))
        await asyncio.sleep(0.001)  # its call is on its way when the others finish
        rest = [commits.complete([ack(f"done-{i}")], 5, 30_000, 2) for i in range(1, 50)]
        return await asyncio.gather(first, *rest)

    results = asyncio.run(main())
    # The first goes alone; the 49 that arrived while it was on its way go as one.
    assert [len(call[1]) for call in backend.calls] == [1, 49]
    assert backend.calls[1][2:] == (5, 30_000, 98)
    assert [len(share) for _, share in results] == [2] * 30 + [0] * 20  # 60 jobs, in order
    assert [job.id for _, share in results for job, _ in share] == [
        f"job-{i}" for i in range(1, 61)
    ]
    assert [lost for lost, _ in results if lost] == [["done-7"]]  # only the slot it was
    assert backend.released == []


def test_a_backend_error_fails_every_step_of_that_call():
    backend = Backend(fail=ConnectionError("down"))
    commits = GroupCommit("q", backend.complete, backend.release)

    async def main():
        return await asyncio.gather(
            *[commits.complete([ack(f"d{i}")], 0, 1000, 1) for i in range(5)],
            return_exceptions=True,
        )

    results = asyncio.run(main())
    assert all(isinstance(r, ConnectionError) for r in results)
    assert [len(call[1]) for call in backend.calls] == [5]  # all arrived before it was sent


def test_claims_for_a_slot_cancelled_meanwhile_are_handed_back():
    backend = Backend(ready=10)
    commits = GroupCommit("q", backend.complete, backend.release)

    async def main():
        first = asyncio.ensure_future(commits.complete([ack("a")], 0, 1000, 1))
        await asyncio.sleep(0.001)  # the first call is on its way
        waiting = [
            asyncio.ensure_future(commits.complete([ack(f"b{i}")], 0, 1000, 2)) for i in range(3)
        ]
        await asyncio.sleep(0)
        waiting[1].cancel()
        results = await asyncio.gather(first, *waiting, return_exceptions=True)
        return results

    results = asyncio.run(main())
    assert isinstance(results[2], asyncio.CancelledError)
    assert [job.id for job, _ in results[0][1]] == ["job-1"]
    assert [job.id for job, _ in results[1][1]] == ["job-2", "job-3"]
    assert [job.id for job, _ in results[3][1]] == ["job-6", "job-7"]
    assert backend.released == [("q", [("job-4", "token-4"), ("job-5", "token-5")])]


@pytest.mark.parametrize("claim_next", [0, 3])
def test_one_slot_alone_is_one_call_as_before(claim_next):
    backend = Backend(ready=3)
    commits = GroupCommit("q", backend.complete, backend.release)
    lost, claims = asyncio.run(commits.complete([ack("x")], 1, 500, claim_next))
    assert backend.calls == [("q", [ack("x")], 1, 500, claim_next)]
    assert (lost, len(claims)) == ([], claim_next)


def test_a_fault_after_the_call_fails_the_steps_instead_of_leaving_them_waiting():
    async def garbled(queue, acks, keep, lease_ms, claim_next):
        return 5  # a broken reply: unpacking it fails

    commits = GroupCommit("q", garbled, None)

    async def main():
        return await asyncio.wait_for(
            asyncio.gather(
                *[commits.complete([ack(f"d{i}")], 0, 1000, 1) for i in range(3)],
                return_exceptions=True,
            ),
            5,
        )

    assert all(isinstance(r, Exception) for r in asyncio.run(main()))
