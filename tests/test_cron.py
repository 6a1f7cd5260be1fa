"""jexkv.cron: cron expressions and zones -> next run times.

Expected instants are written out by hand as ISO times (UTC, or local with their offset);
the property test checks next_after against an oracle of its own, which reads the fields
from how it generated them and walks UTC hours (so it serves zones whose offsets are whole
hours and change on whole UTC hours: UTC, Europe/Berlin, America/New_York)."""

from __future__ import annotations

import calendar
import dataclasses
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jexkv.cron import Cron, validate_tz
from jexkv.errors import ConfigError, InvalidArgument, InvalidArgumentType


def ms(iso: str) -> int:
    """Epoch ms of an ISO time with an offset (``Z`` for UTC)."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    assert moment.tzinfo is not None, iso
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def utc(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def runs(expression: str, tz: str | None, after: str, count: int) -> list[str]:
    """The first ``count`` runs after ``after``, each found from the one before, in UTC."""
    cron = Cron.parse(expression, tz)
    found: list[str] = []
    at = ms(after)
    for _ in range(count):
        nxt = cron.next_after(at)
        assert nxt > at and nxt % 1000 == 0
        found.append(utc(nxt))
        at = nxt
    return found


# (expression, tz, after, the runs that follow, in UTC)
SYNTAX = [
    ("* * * * *", None, "2026-01-01T00:00:00Z", ["2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"]),
    ("* * * * *", None, "2026-01-01T00:00:30.500Z", ["2026-01-01T00:01:00Z"]),
    ("5 * * * *", None, "2026-01-01T00:05:00Z", ["2026-01-01T01:05:00Z", "2026-01-01T02:05:00Z"]),
    ("10-12 * * * *", None, "2026-01-01T00:11:00Z",
     ["2026-01-01T00:12:00Z", "2026-01-01T01:10:00Z", "2026-01-01T01:11:00Z"]),
    ("*/20 * * * *", None, "2026-01-01T00:00:00Z",
     ["2026-01-01T00:20:00Z", "2026-01-01T00:40:00Z", "2026-01-01T01:00:00Z"]),
    ("10-30/10 * * * *", None, "2026-01-01T00:00:00Z",
     ["2026-01-01T00:10:00Z", "2026-01-01T00:20:00Z", "2026-01-01T00:30:00Z",
      "2026-01-01T01:10:00Z"]),
    ("50/5 * * * *", None, "2026-01-01T00:00:00Z",
     ["2026-01-01T00:50:00Z", "2026-01-01T00:55:00Z", "2026-01-01T01:50:00Z"]),
    ("1,2,40-41,*/59 * * * *", None, "2026-01-01T00:00:00Z",
     ["2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z", "2026-01-01T00:40:00Z",
      "2026-01-01T00:41:00Z", "2026-01-01T00:59:00Z", "2026-01-01T01:00:00Z"]),
    ("0 22-23,0-1 * * *", None, "2026-01-01T01:30:00Z",
     ["2026-01-01T22:00:00Z", "2026-01-01T23:00:00Z", "2026-01-02T00:00:00Z",
      "2026-01-02T01:00:00Z", "2026-01-02T22:00:00Z"]),
    ("0 0 */90 * *", None, "2026-01-01T00:00:00Z", ["2026-02-01T00:00:00Z"]),  # a big step
    ("  0\t9   * *  * ", None, "2026-01-01T09:00:00Z", ["2026-01-02T09:00:00Z"]),
    # 2026-01-01 is a Thursday.
    ("0 9 * * MON-FRI", None, "2026-01-02T10:00:00Z",
     ["2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z"]),
    ("0 9 * * mon-Fri", None, "2026-01-02T10:00:00Z", ["2026-01-05T09:00:00Z"]),
    ("0 0 * * 0", None, "2026-01-01T00:00:00Z", ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"]),
    ("0 0 * * 7", None, "2026-01-01T00:00:00Z", ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"]),
    ("0 0 * * sun", None, "2026-01-01T00:00:00Z", ["2026-01-04T00:00:00Z"]),
    ("0 0 * * 5-7", None, "2026-01-01T00:00:00Z",
     ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z",
      "2026-01-09T00:00:00Z"]),
    ("0 0 * * 1/2", None, "2026-01-04T00:00:00Z",  # Monday, Wednesday, Friday
     ["2026-01-05T00:00:00Z", "2026-01-07T00:00:00Z", "2026-01-09T00:00:00Z",
      "2026-01-12T00:00:00Z"]),
    ("0 0 * * */2", None, "2026-01-01T00:00:00Z",  # Sunday, Tuesday, Thursday, Saturday
     ["2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-06T00:00:00Z"]),
    ("0 0 1 JAN,jul *", None, "2026-01-01T00:00:00Z",
     ["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"]),
    ("0 0 1 FEB-apr *", None, "2026-01-01T00:00:00Z",
     ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z",
      "2027-02-01T00:00:00Z"]),
    ("0 0 1 */5 *", None, "2026-01-01T00:00:00Z",
     ["2026-06-01T00:00:00Z", "2026-11-01T00:00:00Z", "2027-01-01T00:00:00Z"]),
    ("0 0 ? * 1", None, "2026-01-01T00:00:00Z", ["2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z"]),
    ("0 0 1 * ?", None, "2026-01-01T00:00:00Z", ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"]),
    ("0 0 31 * *", None, "2026-01-31T00:00:00Z",
     ["2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z",
      "2026-08-31T00:00:00Z"]),
    # Six fields: the second first.
    ("*/10 * * * * *", None, "2026-01-01T00:00:00Z",
     ["2026-01-01T00:00:10Z", "2026-01-01T00:00:20Z", "2026-01-01T00:00:30Z"]),
    ("30 0 12 * * *", None, "2026-01-01T00:00:00Z",
     ["2026-01-01T12:00:30Z", "2026-01-02T12:00:30Z"]),
    ("* * * * * *", None, "2026-01-01T00:00:00.999Z",
     ["2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"]),
    ("0 0 0 * * SAT", None, "2026-01-01T00:00:00Z", ["2026-01-03T00:00:00Z"]),
    # Macros.
    ("@yearly", None, "2026-03-01T00:00:00Z", ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
    ("@annually", None, "2026-03-01T00:00:00Z", ["2027-01-01T00:00:00Z"]),
    ("@monthly", None, "2026-01-31T12:00:00Z", ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"]),
    ("@weekly", None, "2026-01-01T00:00:00Z", ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"]),
    ("@daily", None, "2026-01-01T00:00:00Z", ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]),
    ("@midnight", None, "2026-01-01T00:00:00Z", ["2026-01-02T00:00:00Z"]),
    ("@hourly", None, "2026-01-01T00:00:00Z", ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]),
    (" @DAILY ", None, "2026-01-01T00:00:00Z", ["2026-01-02T00:00:00Z"]),
    ("@daily", "Europe/Berlin", "2026-01-01T00:00:00Z", ["2026-01-01T23:00:00Z"]),
    # A leap day, years away.
    ("0 0 29 2 *", None, "2025-03-01T00:00:00Z",
     ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z", "2036-02-29T00:00:00Z"]),
    ("0 0 29 2 *", None, "2096-03-01T00:00:00Z", ["2104-02-29T00:00:00Z"]),  # 2100 is no leap year
    # Both day fields restricted: either one. The 13th or any Friday.
    ("0 0 13 * 5", None, "2026-01-01T00:00:00Z",
     ["2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z",
      "2026-01-16T00:00:00Z"]),
    ("0 0 1,15 * MON", None, "2026-01-01T00:00:00Z",
     ["2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z", "2026-01-15T00:00:00Z",
      "2026-01-19T00:00:00Z", "2026-01-26T00:00:00Z", "2026-02-01T00:00:00Z"]),
    # A stepped star covers only some values: restricted, as cron-parser (BullMQ) reads it.
    # The 13th or a Sunday, Tuesday, Thursday or Saturday (2026-01-01 is a Thursday).
    ("0 0 13 * */2", None, "2026-01-01T00:00:00Z",
     ["2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-06T00:00:00Z"]),
    # The 1st, 11th, 21st or 31st, or a Monday.
    ("0 0 */10 * 1", None, "2026-01-01T00:00:00Z",
     ["2026-01-05T00:00:00Z", "2026-01-11T00:00:00Z", "2026-01-12T00:00:00Z"]),
    # A field that covers every value is unrestricted however it is written.
    ("0 0 13 * 0-6", None, "2026-01-01T00:00:00Z", ["2026-01-13T00:00:00Z"]),
    ("0 0 1-31 * MON", None, "2026-01-01T00:00:00Z", ["2026-01-05T00:00:00Z"]),
    # The last second of the year, and past it.
    ("59 59 23 31 12 *", None, "2026-12-31T23:59:58Z",
     ["2026-12-31T23:59:59Z", "2027-12-31T23:59:59Z"]),
    ("* * * * * *", None, "2026-12-31T23:59:59Z", ["2027-01-01T00:00:00Z"]),
    ("0 0 1 1 *", None, "2026-12-31T23:59:59.999Z", ["2027-01-01T00:00:00Z"]),
    ("59 23 31 DEC *", None, "2026-12-31T23:59:00Z", ["2027-12-31T23:59:00Z"]),
    # Zones whose offsets are not whole hours.
    ("30 2 * * *", "Asia/Kolkata", "2026-01-01T00:00:00Z",
     ["2026-01-01T21:00:00Z", "2026-01-02T21:00:00Z"]),
    ("0 0 * * *", "Asia/Kathmandu", "2026-01-01T00:00:00Z",
     ["2026-01-01T18:15:00Z", "2026-01-02T18:15:00Z"]),
    ("45 5 * * *", "Asia/Kathmandu", "2026-01-01T05:45:00+05:45", ["2026-01-02T00:00:00Z"]),
    ("0 9 * * *", "Asia/Kolkata", "2026-06-30T09:00:00+05:30", ["2026-07-01T03:30:00Z"]),
]  # fmt: skip


@pytest.mark.parametrize("expression,tz,after,expected", SYNTAX)
def test_next_runs(expression: str, tz: str | None, after: str, expected: list[str]) -> None:
    assert runs(expression, tz, after, len(expected)) == expected


# Daylight saving. Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST (01:00 UTC),
# 2026-10-25 03:00 CEST -> 02:00 CET (01:00 UTC). America/New_York: 2026-03-08 02:00 EST ->
# 03:00 EDT (07:00 UTC), 2026-11-01 02:00 EDT -> 01:00 EST (06:00 UTC).
DST = [
    # Berlin, spring forward: 02:30 does not exist on the 29th, it runs at 03:00 CEST.
    ("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z",
     ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]),
    # 03:00 CEST is the gap's end and a match itself: one run.
    ("*/15 * * * *", "Europe/Berlin", "2026-03-29T01:30:00+01:00",
     ["2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:15:00Z"]),
    ("0 * * * *", "Europe/Berlin", "2026-03-28T23:30:00+01:00",
     ["2026-03-28T23:00:00Z", "2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z",
      "2026-03-29T02:00:00Z"]),
    ("0 0 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z",
     ["2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"]),
    # Four matches in the gap: one run, at its end.
    ("*/15 2 * * *", "Europe/Berlin", "2026-03-29T00:00:00+01:00",
     ["2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z", "2026-03-30T00:15:00Z"]),
    ("* * * * * *", "Europe/Berlin", "2026-03-29T01:59:58+01:00",
     ["2026-03-29T00:59:59Z", "2026-03-29T01:00:00Z", "2026-03-29T01:00:01Z"]),
    # Berlin, fall back: 02:30 happens twice on 10-25, it runs at the first (CEST).
    ("30 2 * * *", "Europe/Berlin", "2026-10-23T12:00:00Z",
     ["2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]),
    # Nothing runs while the repeated hour (01:00-02:00 UTC) passes the second time.
    ("*/15 * * * *", "Europe/Berlin", "2026-10-25T02:20:00+02:00",
     ["2026-10-25T00:30:00Z", "2026-10-25T00:45:00Z", "2026-10-25T02:00:00Z",
      "2026-10-25T02:15:00Z"]),
    ("0 * * * *", "Europe/Berlin", "2026-10-25T00:30:00+02:00",
     ["2026-10-24T23:00:00Z", "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z",
      "2026-10-25T03:00:00Z"]),
    ("0 0 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z",
     ["2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"]),
    # New York, spring forward.
    ("30 2 * * *", "America/New_York", "2026-03-07T00:00:00Z",
     ["2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]),
    ("*/15 * * * *", "America/New_York", "2026-03-08T01:30:00-05:00",
     ["2026-03-08T06:45:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:15:00Z"]),
    ("0 * * * *", "America/New_York", "2026-03-07T23:30:00-05:00",
     ["2026-03-08T05:00:00Z", "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z",
      "2026-03-08T08:00:00Z"]),
    ("0 0 * * *", "America/New_York", "2026-03-07T06:00:00Z",
     ["2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"]),
    # New York, fall back: 01:00-02:00 repeats; 02:30 happens once.
    ("30 2 * * *", "America/New_York", "2026-10-31T00:00:00Z",
     ["2026-10-31T06:30:00Z", "2026-11-01T07:30:00Z", "2026-11-02T07:30:00Z"]),
    ("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z",
     ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]),
    ("*/15 * * * *", "America/New_York", "2026-11-01T01:30:00-04:00",
     ["2026-11-01T05:45:00Z", "2026-11-01T07:00:00Z", "2026-11-01T07:15:00Z"]),
    ("0 * * * *", "America/New_York", "2026-10-31T23:30:00-04:00",
     ["2026-11-01T04:00:00Z", "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z",
      "2026-11-01T08:00:00Z"]),
    ("0 0 * * *", "America/New_York", "2026-10-31T05:00:00Z",
     ["2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"]),
    # Australia/Lord_Howe moves by half an hour: 2026-04-05 02:00 +11 -> 01:30 +10:30,
    # 2026-10-04 02:00 +10:30 -> 02:30 +11.
    ("45 1 * * *", "Australia/Lord_Howe", "2026-04-04T12:00:00+11:00",
     ["2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"]),
    ("15 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00+10:30",
     ["2026-10-02T15:45:00Z", "2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"]),
]  # fmt: skip


@pytest.mark.parametrize("expression,tz,after,expected", DST)
def test_runs_across_daylight_saving_changes(
    expression: str, tz: str, after: str, expected: list[str]
) -> None:
    assert runs(expression, tz, after, len(expected)) == expected
    assert expected == sorted(set(expected))


# after, in the second pass of the repeated hour or at the edges of a gap -> next run
EDGES = [
    ("*/15 * * * *", "Europe/Berlin", "2026-10-25T02:20:00+01:00", "2026-10-25T03:00:00+01:00"),
    ("*/15 * * * *", "Europe/Berlin", "2026-10-25T02:20:00+02:00", "2026-10-25T02:30:00+02:00"),
    ("*/15 * * * *", "Europe/Berlin", "2026-10-25T02:59:59+02:00", "2026-10-25T03:00:00+01:00"),
    ("30 2 * * *", "Europe/Berlin", "2026-10-25T02:20:00+01:00", "2026-10-26T02:30:00+01:00"),
    ("0 3 * * *", "Europe/Berlin", "2026-10-25T02:59:59.999+01:00", "2026-10-25T03:00:00+01:00"),
    ("* * * * * *", "Europe/Berlin", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"),
    ("* * * * * *", "Europe/Berlin", "2026-10-25T02:59:59+02:00", "2026-10-25T03:00:00+01:00"),
    ("30 1 * * *", "America/New_York", "2026-11-01T01:00:00-05:00", "2026-11-02T01:30:00-05:00"),
    ("45 1 * * *", "America/New_York", "2026-11-01T01:50:00-05:00", "2026-11-02T01:45:00-05:00"),
    ("30 2 * * *", "Europe/Berlin", "2026-03-29T01:59:59.999+01:00", "2026-03-29T03:00:00+02:00"),
    ("30 2 * * *", "Europe/Berlin", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"),
    ("0 2 * * *", "America/New_York", "2026-03-08T01:59:59-05:00", "2026-03-08T03:00:00-04:00"),
    ("0 2 * * *", "America/New_York", "2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"),
]  # fmt: skip


@pytest.mark.parametrize("expression,tz,after,expected", EDGES)
def test_next_run_from_inside_a_change(expression: str, tz: str, after: str, expected: str) -> None:
    assert Cron.parse(expression, tz).next_after(ms(after)) == ms(expected)


def test_a_day_of_spring_forward_runs_once_for_the_whole_gap() -> None:
    cron = Cron.parse("*/15 2 * * *", "Europe/Berlin")
    day = _walk(cron, ms("2026-03-29T00:00:00+01:00"), 5)
    on_the_day = [r for r in day if r < ms("2026-03-30T00:00:00+02:00")]
    assert on_the_day == [ms("2026-03-29T03:00:00+02:00")]


def test_every_minute_across_both_changes_of_a_year() -> None:
    """* * * * * in Berlin through 2026's two changes: one run per instant, none twice, a
    minute apart but where the clocks jump (none in the repeated hour's second pass)."""
    cron = Cron.parse("* * * * *", "Europe/Berlin")
    for start, gaps in (
        ("2026-03-29T01:00:00+01:00", {}),  # 01:59 CET -> 03:00 CEST is one minute
        ("2026-10-25T02:00:00+02:00", {ms("2026-10-25T02:00:00Z"): 3660_000}),
    ):
        found = _walk(cron, ms(start), 240)
        steps = {b: b - a for a, b in zip(found, found[1:]) if b - a != 60_000}
        assert steps == gaps
        for at in found:
            local = datetime.fromtimestamp(at / 1000, ZoneInfo("Europe/Berlin"))
            assert local.fold == 0


def _walk(cron: Cron, after_ms: int, count: int) -> list[int]:
    found: list[int] = []
    for _ in range(count):
        after_ms = cron.next_after(after_ms)
        found.append(after_ms)
    return found


BAD = [
    ("x * * * *", None, "cron 'x * * * *': minute field 'x' is not a number, range, list or step"),
    ("0 25 * * *", None, "cron '0 25 * * *': hour 25 is out of range 0-23"),
    ("* * *", None, "cron '* * *': expected 5 fields (minute hour day-of-month month "
     "day-of-week) or 6 with seconds first, got 3"),
    ("* * * * * * *", None, "got 7"),
    ("", None, "got 0"),
    ("   ", None, "cron '': expected 5 fields"),
    ("*/0 * * * *", None, "cron '*/0 * * * *': minute step 0 must be a positive integer"),
    ("*/x * * * *", None, "minute step 'x' must be a positive integer"),
    ("*/ * * * *", None, "minute step '' must be a positive integer"),
    ("1/2/3 * * * *", None, "minute step '2/3' must be a positive integer"),
    ("0 0 30 2 *", None, "cron '0 0 30 2 *': never matches"),
    ("0 0 31 4 *", None, "cron '0 0 31 4 *': never matches"),
    ("0 0 31 2,4,6,9,11 *", None, "never matches"),
    ("60 * * * * *", None, "second 60 is out of range 0-59"),
    ("60 * * * *", None, "minute 60 is out of range 0-59"),
    ("0 0 0 * *", None, "day-of-month 0 is out of range 1-31"),
    ("0 0 32 * *", None, "day-of-month 32 is out of range 1-31"),
    ("0 0 * 13 *", None, "month 13 is out of range 1-12"),
    ("0 0 * 0 *", None, "month 0 is out of range 1-12"),
    ("0 0 * * 8", None, "day-of-week 8 is out of range 0-7"),
    ("5-2 * * * *", None, "minute range 5-2 goes backwards"),
    ("0 0 * * FRI-MON", None, "day-of-week range FRI-MON goes backwards"),
    ("0 0 * DEC-JAN *", None, "month range DEC-JAN goes backwards"),
    ("0 0 * FOO *", None, "month name 'FOO' is unknown (use JAN-DEC)"),
    ("0 0 * * funday", None, "day-of-week name 'funday' is unknown (use SUN-SAT)"),
    ("0 MON * * *", None, "hour field 'MON' is not a number, range, list or step"),
    ("0 0 * JANUARY *", None, "month name 'JANUARY' is unknown"),
    ("? * * * *", None, "minute field '?': '?' is allowed only in day-of-month and day-of-week"),
    ("0 0 * ? *", None, "month field '?': '?' is allowed only"),
    ("1,,2 * * * *", None, "minute field '1,,2' has an empty list item"),
    ("1, * * * *", None, "minute field '1,' has an empty list item"),
    ("1,x * * * *", None, "minute field '1,x': item 'x' is not a number, range or step"),
    ("-1 * * * *", None, "minute field '-1' is not a number"),
    ("1-2-3 * * * *", None, "minute field '1-2-3' is not a number"),
    ("1.5 * * * *", None, "minute field '1.5' is not a number"),
    ("\u0661 * * * *", None, "is not a number"),  # an Arabic-Indic digit one
    ("@reboot", None, "cron '@reboot': unknown macro '@reboot' (known: @yearly"),
    ("@daily 5", None, "unknown macro '@daily 5'"),
    ("* * * * *", "Mars/Olympus",
     "unknown time zone 'Mars/Olympus' (tz must be an IANA name such as 'Europe/Berlin')"),
    ("* * * * *", "", "unknown time zone ''"),
    ("* * * * *", "europe/berlin", "unknown time zone 'europe/berlin'"),
    ("* * * * *", "../etc/passwd", "unknown time zone '../etc/passwd'"),
    ("* * * * *", "/etc/localtime", "unknown time zone '/etc/localtime'"),
    ("* * * * *", 1, "tz must be a str"),
    (5, None, "cron expression must be a str"),
    (None, None, "cron expression must be a str"),
]  # fmt: skip


@pytest.mark.parametrize("expression,tz,fragment", BAD)
def test_a_bad_expression_or_zone_is_refused_by_name(
    expression: Any, tz: Any, fragment: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Cron.parse(expression, tz)
    assert fragment in str(caught.value)


def test_validate_tz() -> None:
    assert validate_tz(None) == "UTC"
    assert validate_tz("Europe/Berlin") == "Europe/Berlin"
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        validate_tz("Mars/Olympus")


def test_cron_is_an_immutable_hashable_value() -> None:
    a = Cron.parse(" 0 9 * * MON-FRI ", "Europe/Berlin")
    assert a.expression == "0 9 * * MON-FRI" and a.tz == "Europe/Berlin"
    assert a == Cron("0 9 * * MON-FRI", "Europe/Berlin")
    assert a == Cron.parse("0 9 * * MON-FRI\n", "Europe/Berlin")
    assert hash(a) == hash(Cron("0 9 * * MON-FRI", "Europe/Berlin"))
    assert a != Cron.parse("0 9 * * MON-FRI")  # another zone
    assert a != Cron.parse("0 9 * * 1-5", "Europe/Berlin")  # another text, same runs
    assert Cron.parse("@daily").tz == "UTC" and Cron("@daily") == Cron.parse("@daily", None)
    assert len({a, Cron("0 9 * * MON-FRI", "Europe/Berlin")}) == 1
    assert repr(a) == "Cron(expression='0 9 * * MON-FRI', tz='Europe/Berlin')"
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.tz = "UTC"  # type: ignore[misc]
    with pytest.raises(ConfigError, match="unknown time zone"):
        dataclasses.replace(a, tz="Nowhere/Else")


@pytest.mark.parametrize("bad", [1.5, "1000", None, True])
def test_after_ms_must_be_an_int(bad: Any) -> None:
    with pytest.raises(InvalidArgumentType, match="after_ms must be an int"):
        Cron.parse("* * * * *").next_after(bad)


def test_a_negative_or_odd_millisecond_start() -> None:
    cron = Cron.parse("* * * * * *")
    assert cron.next_after(-1) == 0
    assert cron.next_after(-1000) == 0
    assert cron.next_after(-1001) == -1000
    assert cron.next_after(0) == 1000
    assert cron.next_after(999) == 1000


def test_a_start_beyond_the_calendar_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="no run within 30 years"):
        Cron.parse("0 0 1 1 *").next_after(ms("9999-06-01T00:00:00Z"))
    for far in (ms("9999-12-31T23:59:59Z"), 10**20, -(10**20)):
        with pytest.raises(InvalidArgument, match="out of the supported range"):
            Cron.parse("* * * * *").next_after(far)
    assert Cron.parse("0 0 1 * *").next_after(ms("9999-06-01T00:00:00Z")) == ms(
        "9999-07-01T00:00:00Z"
    )


def test_the_search_jumps_instead_of_scanning() -> None:
    leap = Cron.parse("0 0 29 2 *")
    every = Cron.parse("* * * * * *", "Europe/Berlin")
    after = ms("2025-03-01T00:00:00Z")
    began = time.perf_counter()
    for _ in range(200):
        assert leap.next_after(after) == ms("2028-02-29T00:00:00Z")
        assert every.next_after(after) == after + 1000
    per_call = (time.perf_counter() - began) / 400
    assert per_call < 0.002  # some microseconds in fact; a minute-by-minute scan takes seconds


# The property test: expressions generated with the values each field stands for, checked
# against an oracle that walks UTC hours.

NAMES = {
    "month": ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
    "dow": ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
}
# name -> (lowest, highest, where * and a/n end, lowest value a name stands for)
FIELDS = {
    "second": (0, 59, 59, 0),
    "minute": (0, 59, 59, 0),
    "hour": (0, 23, 23, 0),
    "dom": (1, 31, 31, 0),
    "month": (1, 12, 12, 1),
    "dow": (0, 7, 6, 0),
}


@dataclasses.dataclass(frozen=True)
class Fields:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    doms: frozenset[int]
    months: frozenset[int]
    dows: frozenset[int]
    either_day: bool

    def day_ok(self, year: int, month: int, day: int) -> bool:
        if month not in self.months:
            return False
        dom_ok = day in self.doms
        dow_ok = (calendar.weekday(year, month, day) + 1) % 7 in self.dows
        return (dom_ok or dow_ok) if self.either_day else (dom_ok and dow_ok)


@st.composite
def field_text(draw: st.DrawFn, name: str) -> tuple[str, set[int]]:
    low, high, open_high, name_base = FIELDS[name]
    names = NAMES.get(name)

    def number(value: int) -> str:
        index = value - name_base
        if names and 0 <= index < len(names) and draw(st.booleans()):
            shown = names[index]
            return draw(st.sampled_from([shown, shown.lower(), shown.title()]))
        return str(value)

    stars = ["*", "?"] if name in ("dom", "dow") else ["*"]
    if draw(st.integers(0, 9)) < {"month": 7, "dom": 6}.get(name, 4):
        star = draw(st.sampled_from(stars))
        return star, set(range(low, open_high + 1))
    items: list[str] = []
    values: set[int] = set()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["number", "range", "star-step", "range-step", "open-step"]))
        a = draw(st.integers(low, high))
        b = draw(st.integers(a, high))
        step = draw(st.integers(1, high - low + 2))
        if kind == "number":
            items.append(number(a))
            values.add(a)
        elif kind == "range":
            items.append(f"{number(a)}-{number(b)}")
            values.update(range(a, b + 1))
        elif kind == "star-step":
            items.append(f"{draw(st.sampled_from(stars))}/{step}")
            values.update(range(low, open_high + 1, step))
        elif kind == "range-step":
            items.append(f"{number(a)}-{number(b)}/{step}")
            values.update(range(a, b + 1, step))
        else:
            items.append(f"{number(a)}/{step}")
            values.update(range(a, max(a, open_high) + 1, step))
    return ",".join(items), values


@st.composite
def expressions(draw: st.DrawFn) -> tuple[str, Fields]:
    texts: dict[str, str] = {}
    sets: dict[str, set[int]] = {}
    for name in FIELDS:
        texts[name], sets[name] = draw(field_text(name))
    dows = {0 if v == 7 else v for v in sets["dow"]}
    with_seconds = draw(st.booleans())
    order = ["minute", "hour", "dom", "month", "dow"]
    if with_seconds:
        order.insert(0, "second")
    fields = Fields(
        seconds=frozenset(sets["second"]) if with_seconds else frozenset({0}),
        minutes=frozenset(sets["minute"]),
        hours=frozenset(sets["hour"]),
        doms=frozenset(sets["dom"]),
        months=frozenset(sets["month"]),
        dows=frozenset(dows),
        either_day=len(set(sets["dom"])) < 31 and len(set(dows)) < 7,
    )
    separator = draw(st.sampled_from([" ", "  ", "\t"]))
    return separator.join(texts[name] for name in order), fields


def oracle_next(fields: Fields, zone: ZoneInfo, floor: int, span: int) -> int | None:
    """The first run after instant ``floor`` (epoch seconds), looking ``span`` seconds on;
    None if there is none in that span. Walks UTC hours: in each, the wall clock reads one
    local hour (offsets are whole hours); the hour's wall-clock matches run unless the hour
    is the second pass of a repeated hour, and an hour that begins right after the clocks
    sprang forward first runs once if any wall-clock time in the gap matches."""
    minutes, seconds = sorted(fields.minutes), sorted(fields.seconds)
    hour = floor - floor % 3600
    while hour <= floor + span:
        local = datetime.fromtimestamp(hour, zone)
        before = datetime.fromtimestamp(hour - 1, zone)
        candidates: list[int] = []
        assert local.utcoffset() is not None and before.utcoffset() is not None
        if local.utcoffset() > before.utcoffset():  # type: ignore[operator]
            wall = before.replace(tzinfo=None) + timedelta(seconds=1)
            while wall < local.replace(tzinfo=None):
                if fields.day_ok(wall.year, wall.month, wall.day) and wall.hour in fields.hours:
                    candidates.append(hour)
                wall += timedelta(hours=1)
        if not local.fold and local.hour in fields.hours:
            if fields.day_ok(local.year, local.month, local.day):
                candidates += [hour + m * 60 + s for m in minutes for s in seconds]
        later = [c for c in candidates if c > floor]
        if later:
            return min(later)
        hour += 3600
    return None


def _transitions(tz: str) -> list[int]:
    """2020-2035's daylight-saving changes, as epoch seconds (the EU and US rules)."""
    found = []
    for year in range(2020, 2036):
        if tz == "Europe/Berlin":  # last Sundays of March and October, 01:00 UTC
            for month in (3, 10):
                last = max(w[6] for w in calendar.monthcalendar(year, month))
                found.append(int(datetime(year, month, last, 1, tzinfo=timezone.utc).timestamp()))
        else:  # second Sunday of March 07:00 UTC, first Sunday of November 06:00 UTC
            march = [w[6] for w in calendar.monthcalendar(year, 3) if w[6]][1]
            november = [w[6] for w in calendar.monthcalendar(year, 11) if w[6]][0]
            found.append(int(datetime(year, 3, march, 7, tzinfo=timezone.utc).timestamp()))
            found.append(int(datetime(year, 11, november, 6, tzinfo=timezone.utc).timestamp()))
    return found


LOW_MS, HIGH_MS = ms("2020-01-01T00:00:00Z"), ms("2035-12-31T00:00:00Z")
SPAN = 4 * 86400  # the oracle looks four days on


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/New_York"])
def test_next_after_agrees_with_the_oracle(tz: str) -> None:
    zone = ZoneInfo(tz)
    near = [t * 1000 for t in _transitions(tz)] if tz != "UTC" else [LOW_MS]
    instants = st.one_of(
        st.integers(LOW_MS, HIGH_MS),
        st.builds(
            lambda base, shift: base + shift,
            st.sampled_from(near),
            st.integers(-3 * 3600_000, 3 * 3600_000),
        ),
    )

    @settings(max_examples=200, deadline=None)
    @given(expressions(), instants)
    def check(generated: tuple[str, Fields], after_ms: int) -> None:
        text, fields = generated
        try:
            cron = Cron.parse(text, tz)
        except ConfigError as error:
            assert "never matches" in str(error)
            assert not any(  # 28 years: every date falls on every weekday
                fields.day_ok(year, month, day)
                for year in range(2000, 2028)
                for month in fields.months
                for day in range(1, calendar.monthrange(year, month)[1] + 1)
            )
            return
        found = cron.next_after(after_ms)
        assert found > after_ms and found % 1000 == 0
        expected = oracle_next(fields, zone, after_ms // 1000, SPAN)
        if expected is None:
            assert found // 1000 > after_ms // 1000 + SPAN
        else:
            assert found == expected * 1000
        assert cron.next_after(found) > found

    check()
