"""Resolving "auto" run parameters: the rules with a fixed clock, and the recorded step."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import yaml

from retrain import steps
from retrain.config import DataSource
from retrain.errors import EXIT_VALIDATION, ValidationError
from retrain.steps.resolve_rules import (
    PERIOD_DELAY_RULE,
    PERIOD_RULE,
    TIME_DELAY_RULE,
    TIME_RULE,
    auto_run_id,
    check_keyword,
    newest_complete_window,
)
from retrain.storage import open_storage

UTC = timezone.utc
# A Monday: weekly windows on the grid start on Mondays.
MON = datetime(2024, 1, 15, tzinfo=UTC)


def data(time_kind: str, window_size: str | int) -> DataSource:
    return DataSource(
        uri="events",
        id_column="id",
        time_column="t",
        time_kind=time_kind,
        window_size=window_size,
        features={"x": "numeric"},
    )


def weekly_times() -> pd.Series:
    """Events through the weeks of Jan 1, Jan 8 and Jan 15 2024 (the last one still open)."""
    days = pd.date_range("2024-01-01", "2024-01-16 12:00", freq="6h", tz="UTC")
    return pd.Series(days, name="t")


# --- time windows ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (MON, "2024-01-08"),  # the boundary itself: the week of Jan 8 ended exactly now
        (MON - timedelta(seconds=1), "2024-01-01"),  # a second before: Jan 8 still open
        (MON + timedelta(seconds=1), "2024-01-08"),
        (MON + timedelta(days=6, hours=23), "2024-01-08"),  # the week of Jan 15 still open
        (datetime(2024, 1, 15, 3, 0), "2024-01-08"),  # naive: read as UTC
        (datetime(2024, 1, 15, 1, 0, tzinfo=timezone(timedelta(hours=2))), "2024-01-01"),
    ],
)
def test_time_windows_pick_the_newest_window_over_at_now(now: datetime, expected: str) -> None:
    choice = newest_complete_window(data("timestamp", "7d"), weekly_times(), now)
    assert choice.window.id == expected
    assert choice.window.end <= pd.Timestamp(now if now.tzinfo else now.replace(tzinfo=UTC))
    assert choice.rule == TIME_RULE
    assert choice.rows == 28  # 7 days x 4 events
    assert f"window {expected}" in choice.reason


def test_date_windows_of_one_day() -> None:
    times = pd.Series(["2024-01-01", "2024-01-02", "2024-01-02", "2024-01-03"], name="t")
    choice = newest_complete_window(data("date", "1d"), times, datetime(2024, 1, 3, 10, tzinfo=UTC))
    assert (choice.window.id, choice.rows) == ("2024-01-02", 2)


def test_hourly_windows_off_midnight() -> None:
    times = pd.Series(pd.date_range("2024-01-01", periods=48, freq="30min", tz="UTC"), name="t")
    now = datetime(2024, 1, 1, 6, 59, tzinfo=UTC)
    choice = newest_complete_window(data("timestamp", "1h"), times, now)
    assert choice.window.id == "2024-01-01T05:00:00Z"


def test_an_empty_resolved_window_is_an_error_naming_it_and_the_rule() -> None:
    # The source stopped on Jan 16; at Feb 1 (a Thursday) the newest complete week is Jan 22.
    with pytest.raises(ValidationError) as err:
        newest_complete_window(
            data("timestamp", "7d"), weekly_times(), datetime(2024, 2, 1, tzinfo=UTC), source="s3"
        )
    message = str(err.value)
    assert "window 2024-01-22 [2024-01-22T00:00:00Z, 2024-01-29T00:00:00Z)" in message
    assert TIME_RULE in message
    assert "newest event is at 2024-01-16T12:00:00Z" in message
    assert "'t'" in message and "s3" in message


def test_a_stale_source_is_never_stepped_back_over() -> None:
    # Even though older windows have data, the clock decides: no silent retraining on old data.
    # At Jan 29 03:00 the week of Jan 22 is the newest complete one and it is empty.
    with pytest.raises(ValidationError, match="window 2024-01-22 "):
        newest_complete_window(
            data("timestamp", "7d"), weekly_times(), MON + timedelta(days=14, hours=3)
        )


# --- period windows ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("periods", "size", "expected"),
    [
        ([0, 1, 2, 3, 4], 1, "3"),  # 4 may still be filling
        ([0, 1, 2, 5], 1, "2"),  # periods 3 and 4 closed without events
        ([4, 4, 3, 3, 3, 2], 1, "3"),  # order in the source does not matter
        ([0, 1, 2, 3, 4, 5], 2, "2"),  # windows [0,2) [2,4) [4,6)
    ],
)
def test_period_windows_pick_the_newest_before_the_last(
    periods: list[int], size: int, expected: str
) -> None:
    times = pd.Series(periods, name="t")
    # Periods have no clock: the run's time plays no part.
    for now in (MON, datetime(1999, 1, 1, tzinfo=UTC)):
        choice = newest_complete_window(data("period", size), times, now)
        assert choice.window.id == expected
        assert choice.rule == PERIOD_RULE
        assert choice.rows == sum(choice.window.start <= p < choice.window.end for p in periods)


@pytest.mark.parametrize(("periods", "held"), [([7, 7, 7], "only window 7"), ([], "no window")])
def test_period_source_without_a_complete_window(periods: list[int], held: str) -> None:
    with pytest.raises(ValidationError, match=held) as err:
        newest_complete_window(data("period", 1), pd.Series(periods, name="t", dtype="int64"), MON)
    assert PERIOD_RULE in str(err.value)


# --- unreadable event times ------------------------------------------------------------------


def test_an_unreadable_time_is_ignored_by_the_time_rule_and_counted() -> None:
    times = pd.concat([weekly_times().astype(object), pd.Series(["not a time", None])])
    choice = newest_complete_window(data("timestamp", "7d"), times.rename("t"), MON)
    assert (choice.window.id, choice.rows) == ("2024-01-08", 28)
    assert choice.reason.endswith(
        "; 1 unreadable event time(s) in column 't' ignored (they belong to no window), "
        "e.g. 'not a time'"
    )


def test_an_unreadable_time_is_ignored_by_the_period_rule_and_counted() -> None:
    times = pd.Series(["0", "0", "1", "1", "2", "x"], name="t", dtype=object)
    choice = newest_complete_window(data("period", 1), times, MON)
    assert (choice.window.id, choice.rows) == ("1", 2)
    assert "; 1 unreadable event time(s) in column 't' ignored" in choice.reason


def test_unreadable_times_are_named_when_no_window_qualifies() -> None:
    with pytest.raises(ValidationError, match="only window 4 has events") as err:
        newest_complete_window(data("period", 1), pd.Series(["4", "4", "?"], name="t"), MON)
    assert "1 unreadable event time(s) in column 't' ignored" in str(err.value)


def test_a_time_column_of_the_wrong_type_still_fails() -> None:
    with pytest.raises(ValidationError, match="holds numbers"):
        newest_complete_window(data("timestamp", "7d"), pd.Series([1, 2], name="t"), MON)


def test_a_scheduled_run_resolves_over_a_bad_row_in_the_source(tmp_path: Path) -> None:
    config = write_case(tmp_path, [0, 0, 1, 1, 1, 2])
    source = tmp_path / "events" / "events.parquet"
    weeks = ["0", "0", "1", "1", "1", "2", "week seven"]  # times as text: one unreadable
    pd.DataFrame({"id": range(7), "week": weeks, "x": [0.5] * 7}).to_parquet(source)
    out = steps.resolve_run(config, "auto", "auto", "48213077", now=MON)
    assert (out.window_id, out.run_id) == ("1", "w1-48213077")
    assert "1 unreadable event time(s) in column 'week' ignored" in out.summary


# --- labels.delay ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # At Jan 22 the week of Jan 15 has just ended, but its labels need 3 more days.
        (MON + timedelta(days=7), "2024-01-08"),
        (MON + timedelta(days=10) - timedelta(seconds=1), "2024-01-08"),
        # Jan 25 00:00 minus 3d is Jan 22 00:00: the week of Jan 15 ended exactly then.
        (MON + timedelta(days=10), "2024-01-15"),
    ],
)
def test_a_label_delay_picks_the_newest_window_ended_by_now_minus_delay(
    now: datetime, expected: str
) -> None:
    times = pd.Series(pd.date_range("2024-01-01", "2024-01-28", freq="6h", tz="UTC"), name="t")
    choice = newest_complete_window(data("timestamp", "7d"), times, now, delay="3d")
    assert choice.window.id == expected
    assert choice.window.end <= pd.Timestamp(now) - pd.Timedelta(days=3)
    assert choice.rule == TIME_DELAY_RULE
    assert f"the run's time {now:%Y-%m-%dT%H:%M:%S}Z minus labels.delay 3d" in choice.reason
    assert "labels have had time to arrive" in choice.reason


def test_a_zero_delay_keeps_the_rule_and_its_words() -> None:
    for delay in (0, "0d"):
        choice = newest_complete_window(data("timestamp", "7d"), weekly_times(), MON, delay=delay)
        assert (choice.window.id, choice.rule) == ("2024-01-08", TIME_RULE)
        assert "labels.delay" not in choice.reason


def test_a_label_delay_on_days() -> None:
    times = pd.Series(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"], name="t")
    at = datetime(2024, 1, 4, 10, tzinfo=UTC)
    choice = newest_complete_window(data("date", "1d"), times, at, delay="2d")
    assert choice.window.id == "2024-01-01"  # Jan 2 ended Jan 3 00:00, after Jan 2 10:00


@pytest.mark.parametrize(
    ("periods", "size", "delay", "expected"),
    [
        ([0, 1, 2, 3, 4], 1, 1, "2"),  # 4 filling, 3 waits one period for its labels
        ([0, 1, 2, 3, 4], 1, 2, "1"),
        ([0, 1, 2, 5], 1, 1, "2"),  # periods 3 and 4 passed meanwhile: 2's labels are in
        ([0, 1, 2, 5], 1, 3, "1"),  # 2 ends at 3, later than 5 - 3 = 2
        ([0, 1, 2, 3, 4, 5, 6, 7], 2, 1, "2"),  # [6,8) filling; [4,6) ends after 6 - 1
        ([0, 1, 2, 3, 4, 5, 6, 7], 2, 2, "2"),  # boundary: [2,4) ends exactly at 6 - 2
        ([0, 1, 2, 3, 4, 5, 6, 7], 2, 3, "0"),
    ],
)
def test_a_period_delay_skips_the_windows_whose_labels_are_not_in(
    periods: list[int], size: int, delay: int, expected: str
) -> None:
    times = pd.Series(periods, name="t")
    choice = newest_complete_window(data("period", size), times, MON, delay=delay)
    assert choice.window.id == expected
    assert choice.rule == PERIOD_DELAY_RULE
    assert f"labels.delay {delay} period(s)" in choice.reason


def test_a_period_delay_too_long_for_the_source_names_it() -> None:
    with pytest.raises(ValidationError, match=r"labels\.delay is 3 period") as err:
        newest_complete_window(data("period", 1), pd.Series([0, 1, 2, 3], name="t"), MON, delay=3)
    assert "windows with events: 0, 1, 2, 3" in str(err.value)
    assert PERIOD_DELAY_RULE in str(err.value)


@pytest.mark.parametrize(
    ("time_kind", "size", "delay", "message"),
    [
        ("period", 1, "2d", "whole number of periods"),
        ("timestamp", "7d", 3, "needs a unit"),
    ],
)
def test_a_delay_that_does_not_fit_the_time_kind(
    time_kind: str, size: str | int, delay: str | int, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        newest_complete_window(data(time_kind, size), pd.Series([0, 1], name="t"), MON, delay=delay)


def test_resolve_uses_the_configured_label_delay(tmp_path: Path) -> None:
    config = yaml.safe_load(write_case(tmp_path, [0, 1, 2, 3, 4]))
    config["labels"]["delay"] = 2
    out = steps.resolve_run(yaml.safe_dump(config), "auto", "auto", "5", now=MON)
    assert out.window_id == "1"
    assert out.details["window"]["rule"] == PERIOD_DELAY_RULE


# --- keyword and run ids -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("window_id", "autox"),
        ("window_id", "AUTO"),
        ("window_id", " auto"),
        ("window_id", "Auto-2024"),
        ("run_id", "AUTO"),
        ("run_id", "auto "),
    ],
)
def test_near_misses_of_the_keyword_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match=f"{name} {value!r} is neither an id nor"):
        check_keyword(name, value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("window_id", "auto"), ("window_id", "7"), ("run_id", "auto"), ("run_id", "automl-7")],
)
def test_the_keyword_and_ordinary_ids_pass(name: str, value: str) -> None:
    check_keyword(name, value)


@pytest.mark.parametrize(
    "job_id",
    [
        "8f0c1b0e-8f4b-4f57-9b37-0a5c3f1f7d21",  # Kubeflow: the run's UUID
        "48213077",  # kfp.local: a random 8-digit number
        "x" * 300,
        "a/b c",
    ],
)
def test_auto_run_ids_come_from_the_job_id_and_are_valid(job_id: str) -> None:
    rid, how = auto_run_id("2024-01-08", job_id)
    assert steps.check_run_id(rid) == rid
    assert rid.startswith("w2024-01-08-")
    assert rid.endswith(re.sub(r"[^A-Za-z0-9]+", "-", job_id)[:40])
    assert job_id in how


def test_auto_run_ids_are_unique_per_job_and_repeatable() -> None:
    # Repeatable for a job and window (a retried resolve also keeps the window: its job's lease).
    a = auto_run_id("3", "11111111")[0]
    assert a == auto_run_id("3", "11111111")[0] == "w3-11111111"
    assert a != auto_run_id("3", "22222222")[0]
    assert auto_run_id(None, "11111111")[0] == "auto-11111111"


@pytest.mark.parametrize("job_id", [None, "", "{{$.pipeline_job_uuid}}"])
def test_without_a_job_id_the_suffix_is_random(job_id: str | None) -> None:
    a, how = auto_run_id("3", job_id)
    b, _ = auto_run_id("3", job_id)
    assert a != b and steps.check_run_id(a) == a
    assert "no job id" in how


# --- the recorded step -------------------------------------------------------------------------


def write_case(tmp_path: Path, weeks: list[int], *, uri: str = "events") -> str:
    """A period use case whose source holds `weeks`; returns the normalised config text."""
    (tmp_path / "events").mkdir()
    frame = pd.DataFrame({"id": range(len(weeks)), "week": weeks, "x": [0.5] * len(weeks)})
    frame.to_parquet(tmp_path / "events" / "events.parquet")
    cfg = {
        "name": "loans",
        "task": "classification",
        "target": "y",
        "storage_root": str(tmp_path / "store"),
        "data": {
            "uri": str(tmp_path / uri),
            "id_column": "id",
            "time_column": "week",
            "time_kind": "period",
            "features": {"x": "numeric"},
        },
        "labels": {"uri": str(tmp_path / "labels"), "id_column": "id", "label_column": "y"},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {"deployment_name": "loans"},
    }
    return yaml.safe_dump(cfg)


def store_files(tmp_path: Path) -> list[str]:
    return open_storage(str(tmp_path / "store")).list("")


def test_explicit_ids_pass_through_without_reading_or_writing(tmp_path: Path) -> None:
    # The source does not even exist: explicit ids must not touch it, nor the store.
    config = write_case(tmp_path, [0, 1], uri="missing")
    report = tmp_path / "artifacts" / "report.md"
    out = steps.resolve_run(config, "01", "my-run", "123", str(report))
    assert (out.window_id, out.run_id) == ("01", "my-run")  # unchanged, not even normalised
    assert not (tmp_path / "store").exists()
    assert "as given" in report.read_text()
    assert out.details["resolved"] is False
    # The details go to the launcher's details artifact, never beside the report (lost on KFP).
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.md"]


def test_auto_resolves_records_why_and_writes_nothing_else(tmp_path: Path) -> None:
    config = write_case(tmp_path, [0, 0, 1, 1, 1, 2])
    report = tmp_path / "artifacts" / "report.md"
    out = steps.resolve_run(config, "auto", "auto", "48213077", str(report), now=MON)
    assert out.window_id == "1"
    assert out.run_id == "w1-48213077"
    assert store_files(tmp_path) == [
        "leases/loans.json",  # a scheduled run holds the run lease (tests/unit/test_run_lease.py)
        f"runs/{out.run_id}/resolve.html",
        f"runs/{out.run_id}/resolve.json",
        f"runs/{out.run_id}/resolve.md",
    ]
    rec = steps.read_run(open_storage(str(tmp_path / "store")), out.run_id)["resolve"]
    assert rec["status"] == "succeeded"
    assert rec["report"]["requested"] == {"window_id": "auto", "run_id": "auto"}
    assert rec["report"]["window"]["rule"] == PERIOD_RULE
    assert rec["report"]["window"]["rows"] == 3
    assert rec["report"]["job_id"] == "48213077"
    assert rec["summary"] == (
        "window 1: the newest with events before window 2 (the source's last, which may still "
        "be filling); 3 events; run id w1-48213077 (from job id 48213077); run lease taken "
        "until 2024-01-15T06:00:00Z"
    )
    md = (tmp_path / "store" / "runs" / out.run_id / "resolve.md").read_text()
    assert md.startswith("# Resolve: window `1`") and PERIOD_RULE in md
    assert report.read_text() == md


def test_only_the_window_is_auto(tmp_path: Path) -> None:
    config = write_case(tmp_path, [3, 4, 5])
    out = steps.resolve_run(config, "auto", "given-1", "9", now=MON)
    assert (out.window_id, out.run_id) == ("4", "given-1")
    assert store_files(tmp_path) == [
        "leases/loans.json",
        "runs/given-1/resolve.html",
        "runs/given-1/resolve.json",
        "runs/given-1/resolve.md",
    ]


def test_only_the_run_id_is_auto(tmp_path: Path) -> None:
    config = write_case(tmp_path, [3, 4, 5], uri="missing")  # the window needs no source
    out = steps.resolve_run(config, "5", "auto", "9", now=MON)
    assert (out.window_id, out.run_id) == ("5", "w5-9")


def test_no_complete_window_fails_recorded_with_nothing_shared_written(tmp_path: Path) -> None:
    config = write_case(tmp_path, [4, 4, 4])
    with pytest.raises(ValidationError, match="only window 4") as err:
        steps.resolve_run(config, "auto", "auto", "77", now=MON)
    assert err.value.exit_code == EXIT_VALIDATION
    rid = "auto-77"
    assert store_files(tmp_path) == [f"runs/{rid}/resolve.json"]
    rec = json.loads((tmp_path / "store" / "runs" / rid / "resolve.json").read_text())
    assert rec["status"] == "failed" and rec["exit_code"] == EXIT_VALIDATION
    assert PERIOD_RULE in rec["message"]


def test_a_misspelt_window_keyword_is_refused_and_recorded(tmp_path: Path) -> None:
    config = write_case(tmp_path, [0, 1, 2])
    with pytest.raises(ValidationError, match="autox"):
        steps.resolve_run(config, "autox", "run-7", "1", now=MON)
    rec = json.loads((tmp_path / "store" / "runs" / "run-7" / "resolve.json").read_text())
    assert rec["status"] == "failed" and "autox" in rec["message"]


def test_a_misspelt_run_id_keyword_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    config = write_case(tmp_path, [0, 1, 2])
    with pytest.raises(ValidationError, match="'AUTO'"):
        steps.resolve_run(config, "auto", "AUTO", "1", now=MON)
    assert not (tmp_path / "store").exists()


def test_a_source_without_the_time_column(tmp_path: Path) -> None:
    config = yaml.safe_load(write_case(tmp_path, [0, 1, 2]))
    config["data"]["time_column"] = "day"
    with pytest.raises(ValidationError, match="no time column 'day'"):
        steps.resolve_run(yaml.safe_dump(config), "auto", "r1", "1", now=MON)
    assert store_files(tmp_path) == ["runs/r1/resolve.json"]
