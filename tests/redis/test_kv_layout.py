"""Where RedisKV keeps its keys on the server, and values other clients wrote there.

A store opened without a namespace keeps its keys under ``jexkv:`` (README, "Sharing one
Redis"), so its keys() and clear() see only what jexkv's KV stores wrote; only an
explicit ``namespace=""`` reaches the whole database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import jexkv

REPO_ROOT = Path(jexkv.__file__).resolve().parent.parent
DB = 14  # contract suites: 9, processes: 10, queue layout: 11, job options: 12, interop: 13


def test_default_store_keeps_its_keys_under_jexkv(url, redis):
    with jexkv.open_kv(url) as kv:
        kv.set("reset:abc", {"user_id": 42})
        assert redis.execute_command("GET", "jexkv:reset:abc") == b'{"user_id":42}'
        assert redis.execute_command("EXISTS", "reset:abc") == 0


def test_other_applications_keys_are_not_listed_or_cleared(url, redis):
    redis.execute_command("SET", "session:9", "theirs")
    redis.execute_command("HSET", "bull:emails:1", "name", "send")
    with jexkv.open_kv(url) as kv:
        kv.set("mine", 1)
        assert list(kv.keys()) == ["mine"]
        assert kv.clear() == 1
    assert redis.execute_command("GET", "session:9") == b"theirs"
    assert redis.execute_command("EXISTS", "bull:emails:1") == 1


def test_an_empty_namespace_reaches_the_whole_database(url, redis):
    redis.execute_command("SET", "plain", "1")
    with jexkv.open_kv(url, namespace="") as kv:
        assert kv.get("plain") == 1
        assert sorted(kv.keys()) == ["plain"]


def test_cli_kv_keys_lists_only_kv_keys(url, redis):
    redis.execute_command("SET", "other-app", "1")
    with jexkv.open_queue(url) as queue:
        queue.enqueue("emails", "send")
    with jexkv.open_kv(url) as kv:
        kv.set("visible", 1)
    out = subprocess.run(
        [sys.executable, "-m", "jexkv", "--url", url, "kv", "keys"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["visible"]


@pytest.mark.parametrize("junk", [b"not json", b"{'a': 1}", b"\xff\xfe binary"])
def test_a_value_another_client_wrote_that_is_not_json(url, redis, junk):
    redis.execute_command("SET", "jexkv:foreign", junk)
    redis.execute_command("SET", "jexkv:fine", b"1")
    with jexkv.open_kv(url) as kv:
        for read in (kv.get, kv.pop, lambda key: kv.get_many([key, "fine"])):
            with pytest.raises(jexkv.SerializationError, match="'foreign'"):
                read("foreign")
        assert kv.get("fine") == 1


def test_pop_of_a_foreign_value_keeps_it(url, redis):
    redis.execute_command("SET", "jexkv:foreign", b"<xml/>")
    with jexkv.open_kv(url) as kv:
        with pytest.raises(jexkv.SerializationError, match="'foreign'"):
            kv.pop("foreign")
    assert redis.execute_command("GET", "jexkv:foreign") == b"<xml/>"


def test_values_are_utf8_json_and_ascii_escaped_ones_still_read(url, redis):
    with jexkv.open_kv(url) as kv:
        kv.set("k", {"t": "ünï € 😀", "lone": "\udfff"})
        stored = redis.execute_command("GET", "jexkv:k")
        assert stored == '{"t":"ünï € 😀","lone":"\\udfff"}'.encode()
        # as jexkv wrote values before: every non-ASCII character as a \u escape
        redis.execute_command("SET", "jexkv:old", '{"t":"\\u00fcn\\u00ef \\ud83d\\ude00"}')
        assert kv.get("old") == {"t": "ünï 😀"}
