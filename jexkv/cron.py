"""Cron expressions and time zones -> next run times.

This module is jexkv's reference for what a cron expression means. It is pure: no I/O, no
clock reads; :meth:`Cron.next_after` takes the instant to start from and returns the next
run as epoch milliseconds (UTC-based, always a whole second).

Syntax
------
* Five fields separated by any amount of whitespace: ``minute hour day-of-month month
  day-of-week``. They run at second 0. Six fields put the second first: ``second minute
  hour day-of-month month day-of-week`` (the order BullMQ's repeat options use).
* Ranges: second 0-59, minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 (or JAN-DEC),
  day-of-week 0-7 (or SUN-SAT), where both 0 and 7 mean Sunday. Names are three letters,
  any case, and may stand anywhere a number may, ranges included (``MON-FRI``, ``jan-mar``).
* Each field is a list of one or more items joined by commas (``1,15,30``); an item is

  - ``*``: every value of the field;
  - ``?``: the same as ``*``, allowed in day-of-month and day-of-week only;
  - ``n``: that value;
  - ``a-b``: a to b inclusive. ``a`` greater than ``b`` is an error: nothing wraps around
    (write ``22-23,0-2``, not ``22-2``);
  - ``*/n``, ``a-b/n``, ``a/n``: every n-th value from the start of the field, from a to b,
    or from a to the end of the field. n must be a positive integer; a step larger than the
    span just gives the first value. In day-of-week, ``*`` and ``a/n`` end at 6 (Saturday),
    so Sunday is counted once; ``*/2`` there is Sunday, Tuesday, Thursday, Saturday.

* Macros stand alone for the whole expression: ``@yearly`` and ``@annually`` (``0 0 1 1 *``),
  ``@monthly`` (``0 0 1 * *``), ``@weekly`` (``0 0 * * 0``), ``@daily`` and ``@midnight``
  (``0 0 * * *``), ``@hourly`` (``0 * * * *``). Any other word after ``@`` is an error
  (``@reboot`` too: a schedule has no boot).

Day-of-month and day-of-week
----------------------------
A day field is *unrestricted* when it covers every value it can take (``*``, ``?``, ``*/1``,
``1-31``, ``0-6``, ``SUN-SAT``) and *restricted* otherwise. This is how BullMQ's cron library
(cron-parser) reads them, so a schedule shared with Node workers makes the same ticks on
both sides; Vixie cron differs only for a stepped star (``*/2``), which it counts as
unrestricted.

* Both restricted: a day matches if EITHER field matches it. ``0 0 13 * 5`` runs on the 13th
  of every month and on every Friday; ``0 0 13 * */2`` on the 13th and on every Sunday,
  Tuesday, Thursday and Saturday.
* Otherwise only the restricted one counts (``0 0 13 * *`` is the 13th; ``0 0 * * 5`` is
  every Friday), and with neither restricted every day matches.

An expression no calendar date can satisfy (``0 0 30 2 *``, ``0 0 31 4 *``) is refused at
parse with "never matches". Every other expression runs at least once in any span of
``SEARCH_YEARS`` (30) years; a leap day waits at most eight.

Time zones and daylight saving
------------------------------
``tz`` is an IANA zone name (``"UTC"`` by default). The fields are read on the local wall
clock of that zone; each matching wall-clock time becomes one instant, and a run happens at
each such instant, once:

* A wall-clock time that does not exist (the clocks spring forward over it, e.g. 02:30 on
  2026-03-29 in Europe/Berlin, where 02:00 CET becomes 03:00 CEST) runs at the instant the
  gap ends (03:00 CEST, 01:00 UTC). All matching times in one gap share that instant, and
  a match at the gap's end (03:00) is that instant too: one run, not several.
* A wall-clock time that happens twice (the clocks fall back over it, e.g. 02:30 on
  2026-10-25 in Europe/Berlin, first CEST then CET) runs once, at its first occurrence
  (02:30 CEST, 00:30 UTC). While the repeated hour passes the second time, nothing runs: its
  wall-clock times have run already. ``0 * * * *`` in Berlin that night runs at 02:00 CEST
  and next at 03:00 CET, two hours later.
* ``next_after(t)`` is the earliest of these run instants strictly after ``t``, so calling it
  again with its own result walks the runs in order, never returning an instant twice. A
  ``t`` inside the repeated hour's second pass gets the next wall-clock match after it that
  has not run yet, which is at or after the end of the repeated hour.

Zones whose offsets are not whole hours (Asia/Kolkata +05:30, Asia/Kathmandu +05:45,
Australia/Lord_Howe's half-hour daylight saving) follow the same rules.

Search
------
``next_after`` jumps field by field (the next allowed month, then day, hour, minute and
second), so sparse expressions (``0 0 29 2 *``) and dense ones (``* * * * * *``) both cost a
few steps. The search looks at most ``SEARCH_YEARS`` ahead, so no loop runs unbounded.
"""

from __future__ import annotations

import bisect
import calendar
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jexkv.errors import ConfigError, InvalidArgument, InvalidArgumentType

__all__ = ["SEARCH_YEARS", "Cron", "validate_tz"]

SEARCH_YEARS = 30
"""How many years ahead a search looks before it gives up."""

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_NAME = re.compile(r"[A-Za-z]+", re.ASCII)
_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)
_FIELDS_HELP = "5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first"


@dataclass(frozen=True)
class _Kind:
    """One field's rules: its name, its values, its names, where ``*`` and ``a/n`` end."""

    name: str
    low: int
    high: int
    names: dict[str, int]
    open_high: int


_SECONDS = _Kind("second", 0, 59, {}, 59)
_MINUTES = _Kind("minute", 0, 59, {}, 59)
_HOURS = _Kind("hour", 0, 23, {}, 23)
_DOM = _Kind("day-of-month", 1, 31, {}, 31)
_MONTHS = _Kind("month", 1, 12, {n: i for i, n in enumerate(_MONTH_NAMES, start=1)}, 12)
_DOW = _Kind("day-of-week", 0, 7, {n: i for i, n in enumerate(_DAY_NAMES)}, 6)


@dataclass(frozen=True)
class _Spec:
    """A parsed expression: the allowed values of each field (the tuples sorted)."""

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    days: frozenset[int]  # day-of-month
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    either_day: bool  # both day fields restricted: a day matches if either field does


class _NotAValue(Exception):
    """A list item's text that is neither a number nor a name of the field."""


def _fail(expression: str, message: str) -> NoReturn:
    raise ConfigError(f"cron {expression!r}: {message}")


def _value(expression: str, kind: _Kind, text: str) -> int:
    if _DIGITS.fullmatch(text):
        number = int(text)
        if not kind.low <= number <= kind.high:
            _fail(expression, f"{kind.name} {number} is out of range {kind.low}-{kind.high}")
        return number
    if kind.names and _NAME.fullmatch(text):
        found = kind.names.get(text.upper())
        if found is None:
            first, last = next(iter(kind.names)), list(kind.names)[-1]
            _fail(expression, f"{kind.name} name {text!r} is unknown (use {first}-{last})")
        return found
    raise _NotAValue  # the caller names the whole item


def _item(expression: str, kind: _Kind, item: str, field_text: str) -> set[int]:
    """The values of one list item: ``*``, ``?``, ``n``, ``a-b``, each with an optional ``/n``."""
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not _DIGITS.fullmatch(step_text) or int(step_text) == 0:
            shown = step_text if _DIGITS.fullmatch(step_text) else repr(step_text)
            _fail(expression, f"{kind.name} step {shown} must be a positive integer")
        step = int(step_text)
    if base in ("*", "?"):
        if base == "?" and kind is not _DOM and kind is not _DOW:
            _fail(
                expression,
                f"{kind.name} field {field_text!r}: '?' is allowed only in day-of-month "
                "and day-of-week",
            )
        return set(range(kind.low, kind.open_high + 1, step))
    start_text, dash, end_text = base.partition("-")
    try:
        start = _value(expression, kind, start_text)
        end = _value(expression, kind, end_text) if dash else None
    except _NotAValue:
        if item == field_text:
            message = f"{kind.name} field {field_text!r} is not a number, range, list or step"
        else:
            message = (
                f"{kind.name} field {field_text!r}: item {item!r} is not a number, range or step"
            )
        _fail(expression, message)
    if end is None:
        if not slash:
            return {start}
        end = max(start, kind.open_high)  # a/n: from a to the end of the field
    elif start > end:
        _fail(
            expression,
            f"{kind.name} range {base} goes backwards ({start} > {end}; ranges do not wrap "
            "around, write two ranges joined by a comma)",
        )
    return set(range(start, end + 1, step))


def _field(expression: str, kind: _Kind, field_text: str) -> tuple[int, ...]:
    values: set[int] = set()
    for item in field_text.split(","):
        if not item:
            _fail(expression, f"{kind.name} field {field_text!r} has an empty list item")
        values |= _item(expression, kind, item, field_text)
    if kind is _DOW and 7 in values:
        values.discard(7)
        values.add(0)
    return tuple(sorted(values))


def _compile(expression: str) -> _Spec:
    text = MACROS.get(expression.lower(), expression) if expression.startswith("@") else expression
    if text.startswith("@"):
        known = ", ".join(MACROS)
        _fail(expression, f"unknown macro {expression!r} (known: {known})")
    parts = text.split()
    if len(parts) == 5:
        parts.insert(0, "0")
    elif len(parts) != 6:
        _fail(expression, f"expected {_FIELDS_HELP}, got {len(parts)}")
    second, minute, hour, dom, month, dow = parts
    days = frozenset(_field(expression, _DOM, dom))
    weekdays = frozenset(_field(expression, _DOW, dow))
    return _Spec(
        seconds=_field(expression, _SECONDS, second),
        minutes=_field(expression, _MINUTES, minute),
        hours=_field(expression, _HOURS, hour),
        days=days,
        months=_field(expression, _MONTHS, month),
        weekdays=weekdays,
        # Restricted: not every value (cron-parser's reading, see the module docstring).
        either_day=len(days) < 31 and len(weekdays) < 7,
    )


def _next_in(values: tuple[int, ...], at_least: int) -> int | None:
    i = bisect.bisect_left(values, at_least)
    return values[i] if i < len(values) else None


def _next_day(spec: _Spec, year: int, month: int, day: int) -> int | None:
    """The first day >= ``day`` of that month that the day fields allow, or None."""
    last = calendar.monthrange(year, month)[1]
    if day > last:
        return None
    weekday = (calendar.weekday(year, month, day) + 1) % 7  # 0 = Sunday
    days, weekdays = spec.days, spec.weekdays
    for d in range(day, last + 1):
        if spec.either_day:
            if d in days or weekday in weekdays:
                return d
        elif d in days and weekday in weekdays:
            return d
        weekday = (weekday + 1) % 7
    return None


def _first_match(spec: _Spec, start: datetime, last_year: int) -> datetime | None:
    """The first wall-clock time at or after ``start`` (naive, whole seconds) that the fields
    allow, looking no further than the end of ``last_year``; None if there is none."""
    last_year = min(last_year, 9999)
    y, mo, d, h, mi, s = start.year, start.month, start.day, start.hour, start.minute, start.second
    while y <= last_year:
        month = _next_in(spec.months, mo)
        if month is None:
            y, mo, d, h, mi, s = y + 1, 1, 1, 0, 0, 0
            continue
        if month != mo:
            mo, d, h, mi, s = month, 1, 0, 0, 0
        day = _next_day(spec, y, mo, d)
        if day is None:
            mo, d, h, mi, s = mo + 1, 1, 0, 0, 0
            continue
        if day != d:
            d, h, mi, s = day, 0, 0, 0
        hour = _next_in(spec.hours, h)
        if hour is None:
            d, h, mi, s = d + 1, 0, 0, 0
            continue
        if hour != h:
            h, mi, s = hour, 0, 0
        minute = _next_in(spec.minutes, mi)
        if minute is None:
            h, mi, s = h + 1, 0, 0
            continue
        if minute != mi:
            mi, s = minute, 0
        second = _next_in(spec.seconds, s)
        if second is None:
            mi, s = mi + 1, 0
            continue
        return datetime(y, mo, d, h, mi, second)
    return None


def _seconds(wall: datetime) -> int:
    """A naive datetime's seconds since 1970-01-01 00:00 on the same clock."""
    return (wall - _EPOCH) // _SECOND


def _offset(zone: ZoneInfo, instant: int) -> timedelta | None:
    return datetime.fromtimestamp(instant, zone).utcoffset()


def _change(zone: ZoneInfo, before: int, after: int) -> int:
    """The first instant in (before, after] whose UTC offset differs from ``before``'s: the
    offset change between them (the two must have different offsets)."""
    first = _offset(zone, before)
    while after - before > 1:
        middle = (before + after) // 2
        if _offset(zone, middle) == first:
            before = middle
        else:
            after = middle
    return after


def validate_tz(tz: str | None) -> str:
    """The zone name to use: ``"UTC"`` for None, else ``tz`` if it names an IANA zone."""
    if tz is None:
        return "UTC"
    if not isinstance(tz, str):
        raise ConfigError(
            f"tz must be a str (an IANA name such as 'Europe/Berlin'), got {type(tz).__name__}"
        )
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(
            f"unknown time zone {tz!r} (tz must be an IANA name such as 'Europe/Berlin')"
        ) from None
    return tz


@dataclass(frozen=True)
class Cron:
    """A cron expression read in a time zone (see the module's rules).

    Immutable and hashable; two are equal when their expressions (stripped) and zones are.
    ``Cron(expression, tz)`` checks both, as :meth:`parse` does.
    """

    expression: str
    tz: str = "UTC"
    _spec: _Spec = field(init=False, repr=False, compare=False)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        expression: object = self.expression
        if not isinstance(expression, str):
            raise ConfigError(
                f"cron expression must be a str such as '0 * * * *', "
                f"got {type(expression).__name__}"
            )
        expression = expression.strip()
        tz = validate_tz(self.tz)
        spec = _compile(expression)
        if _first_match(spec, datetime(2000, 1, 1), 2000 + SEARCH_YEARS) is None:
            _fail(
                expression,
                "never matches (no month it allows has a day that its day-of-month and "
                "day-of-week fields allow)",
            )
        object.__setattr__(self, "expression", expression)
        object.__setattr__(self, "tz", tz)
        object.__setattr__(self, "_spec", spec)
        object.__setattr__(self, "_zone", ZoneInfo(tz))

    @classmethod
    def parse(cls, expression: str, tz: str | None = None) -> Cron:
        """``expression`` read in ``tz`` (UTC when None); ConfigError names what is wrong."""
        return cls(expression, validate_tz(tz))

    def next_after(self, after_ms: int) -> int:
        """The first run strictly after ``after_ms`` (epoch milliseconds), as epoch
        milliseconds on a whole second."""
        if not isinstance(after_ms, int) or isinstance(after_ms, bool):
            raise InvalidArgumentType(
                f"after_ms must be an int (epoch milliseconds), got {type(after_ms).__name__}"
            )
        zone = self._zone
        floor = after_ms // 1000  # runs are whole seconds: the first one > floor
        try:
            start = self._first_unrun(floor, datetime.fromtimestamp(floor, zone))
        except (OverflowError, OSError, ValueError):
            raise InvalidArgument(f"after_ms {after_ms} is out of the supported range") from None
        wall = _first_match(self._spec, start, start.year + SEARCH_YEARS)
        while wall is not None:
            run = self._instant(wall)
            if run > floor:  # true by construction; the loop guards against stranger zones
                return run * 1000
            wall = _first_match(self._spec, wall + _SECOND, start.year + SEARCH_YEARS)
        raise InvalidArgument(
            f"cron {self.expression!r} in {self.tz}: no run within {SEARCH_YEARS} years after "
            f"{after_ms} ms (the search stops at year 9999)"
        )

    def _first_unrun(self, floor: int, local: datetime) -> datetime:
        """The earliest wall-clock time whose run comes after instant ``floor`` (its wall
        clock reading is ``local``)."""
        if not local.fold:
            return local.replace(tzinfo=None) + _SECOND
        # Second pass of a repeated hour: its wall-clock times ran in the first pass, so the
        # next run is at or after the wall-clock time where the repeat ends.
        later = local.utcoffset()
        earlier = local.replace(fold=0).utcoffset()
        assert later is not None and earlier is not None
        shift = (earlier - later) // _SECOND
        change = _change(self._zone, floor - shift, floor)
        return datetime.fromtimestamp(change, self._zone).replace(tzinfo=None) + (earlier - later)

    def _instant(self, wall: datetime) -> int:
        """The run instant (epoch seconds) of wall-clock time ``wall``: its only or first
        occurrence, or the end of the gap it falls in."""
        zone = self._zone
        seconds = _seconds(wall)
        first = wall.replace(tzinfo=zone).utcoffset()
        assert first is not None
        instant = seconds - first // _SECOND
        if datetime.fromtimestamp(instant, zone).replace(tzinfo=None) == wall:
            return instant
        # No such wall-clock time: the clocks jumped over it. Read with the offsets from
        # before and after the jump, it gives one instant on each side of the jump.
        other = wall.replace(tzinfo=zone, fold=1).utcoffset()
        assert other is not None
        elsewhere = seconds - other // _SECOND
        if elsewhere == instant:
            return instant
        return _change(zone, min(instant, elsewhere), max(instant, elsewhere))
