"""The cron matcher: known firing times, Vixie day semantics, KFP conversion, errors."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from retrain.errors import ValidationError
from retrain.settings.cron import parse_cron, to_kfp_cron


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("*/15 * * * *", utc(2024, 1, 1, 10, 7), utc(2024, 1, 1, 10, 15)),
        ("0 3 * * 1", utc(2024, 1, 1, 3, 0), utc(2024, 1, 8, 3, 0)),  # Monday -> next Monday
        ("0 3 * * mon", utc(2023, 12, 31, 12), utc(2024, 1, 1, 3, 0)),
        ("30 2 29 2 *", utc(2024, 3, 1), utc(2028, 2, 29, 2, 30)),  # leap days only
        ("0 0 1 jan-mar *", utc(2024, 3, 5), utc(2025, 1, 1)),
        ("@daily", utc(2024, 5, 5, 23, 59, 59), utc(2024, 5, 6)),
        ("@hourly", utc(2024, 5, 5, 10, 0), utc(2024, 5, 5, 11, 0)),
        ("0 12 * * 7", utc(2024, 1, 1), utc(2024, 1, 7, 12)),  # 7 is Sunday
        ("5-10/5 1 * * *", utc(2024, 1, 1, 1, 5), utc(2024, 1, 1, 1, 10)),
    ],
)
def test_next_after_known_times(expr: str, after: datetime, expected: datetime) -> None:
    assert parse_cron(expr).next_after(after) == expected


def test_day_of_month_or_day_of_week_when_both_restricted() -> None:
    cron = parse_cron("0 0 13 * fri")  # the 13th OR any Friday (Vixie cron, robfig/cron)
    assert cron.matches(utc(2024, 1, 13))  # a Saturday, but the 13th
    assert cron.matches(utc(2024, 1, 5))  # a Friday, not the 13th
    assert not cron.matches(utc(2024, 1, 6))
    only_fridays = parse_cron("0 0 * * fri")
    assert not only_fridays.matches(utc(2024, 1, 13))


def test_next_after_agrees_with_a_minute_by_minute_scan() -> None:
    rng = random.Random(7)
    fields = [
        ["*", "*/7", "0", "5,35", "10-20/5"],
        ["*", "3", "*/6", "1-2"],
        ["*", "1", "15", "1-7"],
        ["*", "*/3", "2,8"],
        ["*", "1-5", "0", "sat,sun"],
    ]
    for _ in range(40):
        expr = " ".join(rng.choice(options) for options in fields)
        cron = parse_cron(expr)
        start = utc(2024, 1, 1) + timedelta(minutes=rng.randrange(0, 60 * 24 * 400))
        t = start.replace(second=0) + timedelta(minutes=1)
        while not cron.matches(t):
            t += timedelta(minutes=1)
        assert cron.next_after(start) == t, expr


def test_first_between_is_half_open() -> None:
    cron = parse_cron("0 * * * *")
    assert cron.first_between(utc(2024, 1, 1, 10, 0), utc(2024, 1, 1, 10, 59)) is None
    assert cron.first_between(utc(2024, 1, 1, 10, 0), utc(2024, 1, 1, 11, 0)) == utc(2024, 1, 1, 11)
    assert cron.first_between(utc(2024, 1, 1, 9, 59), utc(2024, 1, 1, 10, 0)) == utc(2024, 1, 1, 10)


@pytest.mark.parametrize(
    ("expr", "kfp"),
    [
        ("0 3 * * 1", "0 0 3 * * 1"),
        ("*/10 * * * *", "0 */10 * * * *"),
        ("@weekly", "0 0 0 * * 0"),
        ("0 6 * * 5-7", "0 0 6 * * 0,5,6"),  # robfig/cron has no 7
        ("0 6 * * MON-FRI", "0 0 6 * * mon-fri"),
    ],
)
def test_to_kfp_cron_adds_seconds(expr: str, kfp: str) -> None:
    assert to_kfp_cron(expr) == kfp


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("0 0 3 * * 1", "6 fields"),
        ("61 * * * *", "minute: 61 is outside 0-59"),
        ("0 24 * * *", "hour"),
        ("0 0 * foo *", "month"),
        ("0 0 * * 1-x", "day of week"),
        ("0 0 5-1 * *", "runs backwards"),
        ("*/0 * * * *", "step"),
    ],
)
def test_bad_expressions_name_the_field(expr: str, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        parse_cron(expr)


def test_never_firing_expression_is_an_error() -> None:
    with pytest.raises(ValidationError, match="never fires"):
        parse_cron("0 0 30 2 *").next_after(utc(2024, 1, 1))


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        parse_cron("* * * * *").matches(datetime(2024, 1, 1))
