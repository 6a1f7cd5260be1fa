"""What the clients know of commands: which block and how long, which slot they go to."""

from __future__ import annotations

import pytest

from jexkv.resp.commands import FOREVER_S, blocking_timeout
from jexkv.resp.slots import command_slot, key_slot


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("GET", "k"), None),
        (("BLPOP", "a", "b", 2), 3.0),
        (("BZPOPMIN", "m", 0), 1.0 + FOREVER_S),
        (("XREAD", "COUNT", 10, "BLOCK", 1500, "STREAMS", "s", "0-0"), 2.5),
        (("XREAD", "BLOCK", 0, "STREAMS", "s", "$"), 1.0 + FOREVER_S),
        (("xreadgroup", "GROUP", "g", "c", "block", "250", "STREAMS", "s", ">"), 1.25),
        (("XREAD", "COUNT", 10, "STREAMS", "s", "0-0"), None),  # no BLOCK: an ordinary read
        (("XREAD", "STREAMS", "BLOCK", "0-0"), None),  # a stream named BLOCK
    ],
)
def test_blocking_timeout(args, expected):
    assert blocking_timeout(str(args[0]).upper(), args, 1.0) == expected


def test_stream_reads_go_to_their_streams_slot():
    args = ("XREAD", "COUNT", 1, "BLOCK", 10, "STREAMS", "{q}:events", "0-0")
    assert command_slot(args) == key_slot("{q}:events")
    assert command_slot(("XREADGROUP", "GROUP", "g", "c", "STREAMS", "b:s", ">")) == key_slot("b:s")
    assert command_slot(("XREAD", "COUNT", 1)) is None
    assert command_slot(("GET", "k")) == key_slot("k")
