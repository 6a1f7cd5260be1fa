"""Large values through jexkv.codec: the memory they take on the way (README, "Values: JSON
as UTF-8, and how large"), measured with tracemalloc, with generous bounds."""

from __future__ import annotations

import tracemalloc

from jexkv import codec

MB = 1_000_000


def peak_of(call) -> tuple[object, int]:
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = call()
        return result, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_json_of_a_non_ascii_str_is_utf8_text_not_escapes():
    value = "é" * (5 * MB)  # 10 MB of UTF-8; as \u escapes it was 30 MB of text
    text, peak = peak_of(lambda: codec.encode(value))
    assert text == '"' + value + '"'
    assert peak < 2 * len(value.encode())


def test_reading_large_utf8_bytes_takes_about_twice_the_text():
    value = "ü€😀a" * (MB // 2)  # 2M characters, 5 MB of UTF-8, 8 MB as a str
    data = ('["' + value + '","\\ud800"]').encode()  # as jexkv and JSON.stringify write it
    got, peak = peak_of(lambda: codec.decode(data))
    assert got == [value, "\ud800"]
    # CPython's one-shot decode of such text peaks near 6x its UTF-8 size.
    assert peak < 4 * len(data)


def test_the_sqlite_queue_keeps_a_large_payload_near_twice_its_size(tmp_path):
    # Measured for a 50 MB value (benchmarks/large_values.py): 8.6x its UTF-8 size before
    # the payload was read back after the insert and through sqlite3's own text decoding;
    # 4.2x now (2.6x its size as a str, which is 1.6x the UTF-8 here).
    import jexkv

    value = "ü€😀a" * (MB // 2)  # 5 MB of UTF-8, 8 MB as a str
    utf8 = len(value.encode())
    with jexkv.open_queue(f"sqlite:///{tmp_path}/big.db") as queue:
        job, added = peak_of(lambda: queue.enqueue("big", "task", value))
        assert job.payload == value
        got, read = peak_of(lambda: queue.get_job("big", job.id))
        assert got is not None and got.payload == value
    assert added < 6 * utf8
    assert read < 6 * utf8
