"""Rules of the house that the contract suites do not reach: jobs are built by field name
(a field added, dropped or renamed can never shift the others), and the Redis client's
options are one table, taken alike by open_kv/open_queue and by Redis.from_url."""

from __future__ import annotations

import dataclasses

import pytest

import jexkv
from jexkv.jobs import Job, job_from
from jexkv.resp import Redis
from jexkv.resp.url import OPTIONS

FIELDS = {
    "id": "7", "queue": "q", "name": "n", "payload": {"a": 1}, "attempts": 3,
    "attempts_made": 1, "priority": 0, "created_at_ms": 5, "state": "waiting", "error": None,
    "result": None, "due_at_ms": 5, "traceback": None, "stall_count": 0, "backoff": None,
    "processed_at_ms": None, "finished_at_ms": None, "timeout_ms": None,
}  # fmt: skip


def test_job_from_is_the_same_job_as_the_dataclass_builds() -> None:
    assert job_from(dict(FIELDS)) == Job(**FIELDS)
    assert set(FIELDS) == {f.name for f in dataclasses.fields(Job)}


@pytest.mark.parametrize(
    "fields",
    [
        {k: v for k, v in FIELDS.items() if k != "state"},
        {**FIELDS, "status": "waiting"},
        # Renamed, the count right: a defaulted field (error) would fall back to None.
        {**{k: v for k, v in FIELDS.items() if k != "error"}, "errors": "boom"},
    ],
    ids=["missing", "unknown", "renamed"],
)
def test_job_from_refuses_a_missing_or_unknown_field(fields) -> None:
    with pytest.raises(TypeError, match="job_from: missing fields"):
        job_from(fields)


def test_the_redis_options_of_the_stores_are_the_clients(redis_server) -> None:
    url = redis_server.url(db=11)
    for name, (kind, _) in OPTIONS.items():
        value = {int: 7, str: "x", bool: False}[kind]
        if name == "db":
            continue  # in the URL's path
        if name.startswith("ssl_"):
            continue  # for rediss:// URLs only (and files that must exist): below
        Redis.from_url(url, **{name: value}).close()
        jexkv.open_kv(url, **{name: value}).close()
        jexkv.open_queue(url, **{name: value}).close()


def test_ssl_check_hostname_false_is_taken_by_open_kv_as_by_the_client() -> None:
    url = "rediss://127.0.0.1:1/0"  # nothing is connected at open
    client = Redis.from_url(url, ssl_check_hostname=False)
    client.close()
    jexkv.open_kv(url, ssl_check_hostname=False).close()
    jexkv.open_kv(url + "?ssl_check_hostname=no").close()
    for bad in ("maybe", 1, None):
        with pytest.raises(jexkv.ConfigError, match="ssl_check_hostname"):
            jexkv.open_kv(url, ssl_check_hostname=bad)
        with pytest.raises(jexkv.ConfigError, match="ssl_check_hostname"):
            Redis.from_url(url, ssl_check_hostname=bad)


BAD_OPTIONS = [("retries", -1), ("max_connections", 0), ("retries", True),
               ("socket_timeout_ms", "1.5"), ("client_name", 3)]  # fmt: skip


@pytest.mark.parametrize("name,bad", BAD_OPTIONS)
def test_a_bad_client_option_is_refused_alike(name, bad) -> None:
    url = "redis://127.0.0.1:1/0"
    with pytest.raises(jexkv.ConfigError, match=name):
        Redis.from_url(url, **{name: bad})
    with pytest.raises(jexkv.ConfigError, match=name):
        jexkv.open_kv(url, **{name: bad})
