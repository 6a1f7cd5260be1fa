"""The harness itself, with no jexkv in the loop: Node adds, a Node worker runs, Node reads.

When this fails the Node scripts or the npm cache are at fault, not jexkv's queue.
"""

from __future__ import annotations

import json

from tests.interop.npm_cache import NODE_DIR


def test_the_cache_holds_the_pinned_versions(bullmq_node_modules):
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    for name, version in (("bullmq", "6.7.0"), ("ioredis", "5.9.3")):
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
        manifest = bullmq_node_modules / name / "package.json"
        assert json.loads(manifest.read_text())["version"] == version


def test_a_node_only_round_trip(side):
    events = side.start("events.js")
    events.wait_ready()
    ok, retried, failing = side.add(
        {"name": "ok", "data": {"n": 1}},
        {"name": "retried", "data": {"failTimes": 1}, "opts": {"attempts": 2}},
        {"name": "failing", "data": {"fail": "no luck"}, "opts": {"jobId": "node-only-fail"}},
    )
    assert failing == "node-only-fail"
    worker = side.start("worker.js")
    worker.wait_for(lambda line: line.get("event") in ("completed", "failed"), count=4)
    done = events.wait_event("completed", count=2)
    assert {line["jobId"]: line["returnvalue"]["name"] for line in done} == {
        ok: "ok",
        retried: "retried",
    }
    failed = events.wait_event("retries-exhausted")
    assert failed[0]["jobId"] == failing

    counts, jobs = side.inspect(ok, retried, failing)
    assert counts["completed"] == 2 and counts["failed"] == 1
    assert jobs[ok]["returnvalue"] == {"by": "node", "name": "ok", "data": {"n": 1}}
    assert jobs[retried]["attemptsMade"] == 2
    assert jobs[failing]["state"] == "failed"
    assert jobs[failing]["failedReason"] == "no luck"
