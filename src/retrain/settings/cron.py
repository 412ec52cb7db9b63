"""A small 5-field cron matcher (UTC), and the conversion to KFP's 6-field cron.

Fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or jan-dec), day of week
(0-7 or sun-sat; 0 and 7 are Sunday). Each field takes ``*``, numbers, names, ranges ``a-b``,
steps ``*/n`` and ``a-b/n``, and comma lists. ``@hourly``, ``@daily``/``@midnight``,
``@weekly``, ``@monthly`` and ``@yearly``/``@annually`` are accepted too.

As in Vixie cron (and robfig/cron, which KFP's scheduler uses), when both day of month and day
of week are restricted a time matches if *either* does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from retrain.errors import ValidationError

__all__ = ["CronSchedule", "parse_cron", "to_kfp_cron"]

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_NAMES = {
    "month": {name: i + 1 for i, name in enumerate(_MONTHS)},
    "day of week": {name: i for i, name in enumerate(_DAYS)},
}
# (name, low, high) of each field; day of week allows 7 (Sunday) on input.
_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_ITEM = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d+))?$")
# A year and a day: every valid expression fires within this span (e.g. 29 February runs once
# in four years, which the leap year in any 5-year span covers).
_SEARCH_LIMIT = timedelta(days=366 * 5)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression: the set of allowed values of each field."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday .. 6 = Saturday
    days_restricted: bool
    weekdays_restricted: bool

    def matches(self, when: datetime) -> bool:
        """Whether the minute holding `when` (taken in UTC) is a firing time."""
        t = _utc(when)
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        return self._day_matches(t)

    def next_after(self, when: datetime) -> datetime:
        """The first firing time strictly after `when` (UTC, whole minutes)."""
        t = _utc(when).replace(second=0, microsecond=0) + timedelta(minutes=1)
        end = t + _SEARCH_LIMIT
        while t < end:
            if t.month not in self.months:
                # Jump to the first day of the next month.
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t += timedelta(minutes=1)
                continue
            return t
        raise ValidationError(f"cron {self.expression!r} never fires (e.g. 30 February)")

    def first_between(self, start: datetime, end: datetime) -> datetime | None:
        """The first firing time in ``(start, end]``, or None if it does not fire there."""
        t = self.next_after(start)
        return t if t <= _utc(end) else None

    def _day_matches(self, t: datetime) -> bool:
        day_ok = t.day in self.days
        weekday_ok = (t.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValidationError("cron times must be timezone-aware (UTC)")
    return when.astimezone(timezone.utc)


def _value(text: str, field: str, low: int, high: int) -> int:
    names = _NAMES.get(field, {})
    if text in names:
        return names[text]
    if not text.isdigit():
        raise ValueError(f"{field}: {text!r} is not a number" + (" or name" if names else ""))
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{field}: {value} is outside {low}-{high}")
    return value


def _parse_field(text: str, field: str, low: int, high: int) -> tuple[frozenset[int], bool]:
    """The allowed values of one field, and whether it restricts anything (not '*' or '?')."""
    if text in ("*", "?"):
        values = set(range(low, high + 1))
        restricted = False
    else:
        values = set()
        restricted = True
        for item in text.split(","):
            m = _ITEM.match(item)
            if not m:
                raise ValueError(f"{field}: cannot read {item!r}")
            span, step_text = m.group(1), m.group(2)
            step = int(step_text) if step_text else 1
            if step < 1:
                raise ValueError(f"{field}: step must be at least 1 in {item!r}")
            if span == "*":
                first, last = low, high
            elif "-" in span:
                a, b = span.split("-", 1)
                first, last = _value(a, field, low, high), _value(b, field, low, high)
                if first > last:
                    raise ValueError(f"{field}: range {item!r} runs backwards")
            else:
                first = _value(span, field, low, high)
                last = high if step_text else first
            values.update(range(first, last + 1, step))
        # '*/1' style items cover the whole field: that restricts nothing.
        if text.startswith("*") and values == set(range(low, high + 1)):
            restricted = False
    if field == "day of week" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values), restricted


def parse_cron(expression: str) -> CronSchedule:
    """Parse a 5-field cron expression (or a macro such as ``@daily``).

    Raises:
        ValidationError: naming the field that cannot be read.
    """
    if not isinstance(expression, str):
        raise ValidationError(f"cron expression must be a string, got {expression!r}")
    text = " ".join(expression.strip().lower().split())
    text = _MACROS.get(text, text)
    parts = text.split(" ")
    if len(parts) != 5:
        hint = " (KFP's 6-field form starts with seconds; write 5 fields here)"
        raise ValidationError(
            f"cron {expression!r} has {len(parts)} fields, expected 5: "
            "minute hour day-of-month month day-of-week" + (hint if len(parts) == 6 else "")
        )
    parsed = []
    try:
        for part, (field, low, high) in zip(parts, _FIELDS, strict=True):
            parsed.append(_parse_field(part, field, low, high))
    except ValueError as err:
        raise ValidationError(f"cron {expression!r}: {err}") from None
    return CronSchedule(
        expression=expression,
        minutes=parsed[0][0],
        hours=parsed[1][0],
        days=parsed[2][0],
        months=parsed[3][0],
        weekdays=parsed[4][0],
        days_restricted=parsed[2][1],
        weekdays_restricted=parsed[4][1],
    )


def to_kfp_cron(expression: str) -> str:
    """KFP's 6-field form (seconds first) of a 5-field expression: ``0 <the five fields>``.

    Macros are expanded and a day of week written as 7 becomes 0, which robfig/cron (KFP's
    scheduler) does not accept; everything else is kept as written so the UI shows it.
    """
    parse_cron(expression)  # validate first: a bad schedule never reaches the cluster
    text = " ".join(expression.strip().lower().split())
    fields = _MACROS.get(text, text).split(" ")
    weekday = fields[4]
    if re.search(r"(?<![0-9])7(?![0-9])", weekday):
        values, _ = _parse_field(weekday, "day of week", 0, 7)
        weekday = ",".join(str(v) for v in sorted(values))
    return " ".join(["0", *fields[:4], weekday])
