from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from retrain.config import DataSource
from retrain.data.windows import (
    Window,
    event_times,
    next_window_id,
    parse_window,
    window_ids_in,
    window_mask,
    window_sort_key,
)
from retrain.errors import ValidationError


def source(time_kind: str, window_size: str | int) -> DataSource:
    return DataSource(
        uri="events",
        id_column="id",
        time_column="t",
        time_kind=time_kind,
        window_size=window_size,
        features={"x": "numeric"},
    )


UTC = "UTC"


def test_period_window_is_half_open_range_of_periods() -> None:
    w = parse_window(source("period", 2), " +3 ")
    assert w == Window(id="3", start=3, end=5)
    t = pd.Series([1, 2, 3, 4, 5, np.nan], name="t")
    assert window_mask(t, w, "period").tolist() == [False, False, True, True, False, False]


@pytest.mark.parametrize("bad", ["abc", "2024-01-01", "3.5", ""])
def test_period_window_rejects_non_integer_ids(bad: str) -> None:
    with pytest.raises(ValidationError, match="integer period"):
        parse_window(source("period", 1), bad)


def test_timestamp_window_parses_iso_dates_and_offsets_to_utc() -> None:
    week = source("timestamp", "7d")
    w = parse_window(week, "2024-01-01")
    assert w.id == "2024-01-01"
    assert w.start == pd.Timestamp("2024-01-01", tz=UTC)
    assert w.end == pd.Timestamp("2024-01-08", tz=UTC)

    w = parse_window(source("timestamp", "12h"), "2024-01-01T12:00:00+02:00")
    assert w.id == "2024-01-01T10:00:00Z"
    assert w.start == pd.Timestamp("2024-01-01T10:00", tz=UTC)
    assert w.end == pd.Timestamp("2024-01-01T22:00", tz=UTC)
    assert parse_window(week, "2024-01-01T00:00:00Z").id == "2024-01-01"


@pytest.mark.parametrize("bad", ["yesterday", "2024-13-01", "2024-01-01 garbage", "17", "now"])
def test_timestamp_window_rejects_non_iso_ids(bad: str) -> None:
    with pytest.raises(ValidationError, match="window id"):
        parse_window(source("timestamp", "7d"), bad)


def test_date_windows_need_whole_days_and_midnight_starts() -> None:
    assert parse_window(source("date", "1d"), "2024-03-05").end == pd.Timestamp(
        "2024-03-06", tz=UTC
    )
    with pytest.raises(ValidationError, match="midnight"):
        parse_window(source("date", "1d"), "2024-03-05T06:00:00")
    # The config itself refuses a date window that is not whole days.
    with pytest.raises(ValueError, match="whole days"):
        source("date", "12h")


def test_timestamp_mask_reads_strings_naive_and_zoned_times() -> None:
    w = parse_window(source("timestamp", "7d"), "2024-01-01")
    as_text = pd.Series(
        [
            "2023-12-31T23:59:59Z",
            "2024-01-01T00:00:00Z",  # start: inside
            "2024-01-07T23:59:59Z",
            "2024-01-08T00:00:00Z",  # end: outside
            "2024-01-08T00:30:00+01:00",  # 23:30 UTC the day before: inside
            None,
        ],
        name="t",
    )
    assert window_mask(as_text, w, "timestamp").tolist() == [False, True, True, False, True, False]
    naive = pd.Series(pd.to_datetime(["2024-01-01 00:00", "2024-01-08 00:00"]), name="t")
    assert window_mask(naive, w, "timestamp").tolist() == [True, False]
    zoned = naive.dt.tz_localize("America/New_York")  # 05:00 UTC both
    assert window_mask(zoned, w, "timestamp").tolist() == [True, False]


def test_unreadable_times_are_an_error_naming_the_column() -> None:
    w = parse_window(source("timestamp", "7d"), "2024-01-01")
    with pytest.raises(ValidationError, match=r"'event_time'.*1 values.*'not a time'"):
        window_mask(pd.Series(["2024-01-02", "not a time"], name="event_time"), w, "timestamp")
    with pytest.raises(ValidationError, match="holds numbers"):
        event_times(pd.Series([1, 2], name="t"), "timestamp")
    with pytest.raises(ValidationError, match="needs integers"):
        event_times(pd.Series(pd.to_datetime(["2024-01-01"]), name="t"), "period")
    with pytest.raises(ValidationError, match="'week'"):
        event_times(pd.Series(["3", "three"], name="week"), "period")


def test_infinite_periods_are_unreadable_times_not_rows_of_no_window() -> None:
    times = pd.Series([1.0, np.inf, -np.inf, np.nan], name="week")
    with pytest.raises(ValidationError, match=r"'week' has 2 values that are not valid"):
        event_times(times, "period")
    coerced = event_times(times, "period", errors="coerce")
    assert coerced.iloc[0] == 1.0 and coerced.iloc[1:].isna().all()


def test_next_window_id_chains_windows() -> None:
    assert next_window_id(source("period", 2), "3") == "5"
    assert next_window_id(source("timestamp", "7d"), "2024-01-01") == "2024-01-08"
    assert next_window_id(source("timestamp", "12h"), "2024-01-01") == "2024-01-01T12:00:00Z"
    assert next_window_id(source("timestamp", "12h"), "2024-01-01T12:00:00Z") == "2024-01-02"


def test_window_ids_in_periods_are_on_a_grid_and_numerically_sorted() -> None:
    times = pd.Series([5, 1, 2, 10, 11, np.nan], name="t")
    assert window_ids_in(source("period", 2), times) == ["0", "2", "4", "10"]
    assert window_ids_in(source("period", 1), times) == ["1", "2", "5", "10", "11"]
    assert window_ids_in(source("period", 1), pd.Series([], dtype="float64", name="t")) == []


def test_weekly_window_ids_start_on_mondays_and_cover_every_event_once() -> None:
    data = source("timestamp", "7d")
    rng = np.random.default_rng(3)
    seconds = rng.integers(0, 40 * 86400, size=300)
    times = pd.Series(
        pd.Timestamp("2024-01-03", tz=UTC) + pd.to_timedelta(seconds, unit="s"), name="t"
    )
    ids = window_ids_in(data, times)
    assert ids[0] == "2024-01-01"  # the Monday of the first event's week
    assert all(pd.Timestamp(i).day_of_week == 0 for i in ids)
    assert ids == sorted(ids)
    hits = np.sum([window_mask(times, parse_window(data, i), "timestamp") for i in ids], axis=0)
    assert hits.tolist() == [1] * len(times)


def test_window_as_dict_is_json() -> None:
    w = parse_window(source("timestamp", "1d"), "2024-02-29")
    assert json.loads(json.dumps(w.as_dict())) == {
        "id": "2024-02-29",
        "start": "2024-02-29",
        "end": "2024-03-01",
    }
    assert parse_window(source("period", 1), "7").as_dict() == {"id": "7", "start": 7, "end": 8}


def test_window_sort_key_orders_by_time_not_text() -> None:
    periods = ["10", "9", "-1"]
    assert sorted(periods, key=lambda w: window_sort_key(source("period", 1), w)) == [
        "-1",
        "9",
        "10",
    ]
    hours = source("timestamp", "6h")
    ids = ["2024-01-01T06:00:00Z", "2024-01-01", "2023-12-31T18:00:00Z"]
    assert sorted(ids, key=lambda w: window_sort_key(hours, w)) == [
        "2023-12-31T18:00:00Z",
        "2024-01-01",
        "2024-01-01T06:00:00Z",
    ]
