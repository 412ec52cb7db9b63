from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrain.config import Config, config_from_dict
from retrain.errors import ValidationError
from retrain.labels.join import MAX_LEAKAGE_SHARE, join_labels


def config(task: str = "classification", **labels: Any) -> Config:
    raw = {
        "name": "loans",
        "task": task,
        "target": "defaulted",
        "storage_root": "store",
        "data": {
            "uri": "events",
            "id_column": "app",
            "time_column": "week",
            "time_kind": "period",
            "features": {"x": "numeric"},
        },
        "labels": {
            "uri": "labels",
            "id_column": "application",
            "label_column": "outcome",
            "time_column": "known_week",
            "min_coverage": 0.8,
            **labels,
        },
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {"deployment_name": "loans"},
    }
    return config_from_dict(raw)


def events(n: int = 100, week: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    return pd.DataFrame(
        {"app": [f"a{i:03d}" for i in range(n)], "week": week, "x": rng.normal(size=n).round(3)}
    )


def labels_for(ev: pd.DataFrame, *, skip: int = 0, delay: int = 1) -> pd.DataFrame:
    """Labels for all but the last `skip` events, known `delay` weeks after the event."""
    keep = ev.iloc[: len(ev) - skip]
    return pd.DataFrame(
        {
            "application": keep["app"].to_numpy(),
            "outcome": (np.arange(len(keep)) % 3 == 0).astype(int),
            "known_week": keep["week"].to_numpy() + delay,
        }
    )


def test_join_adds_the_target_and_queues_unlabelled_events() -> None:
    ev = events()
    lab = labels_for(ev, skip=10)
    extra = pd.DataFrame({"application": ["z999"], "outcome": [1], "known_week": [9]})
    res = join_labels(config(), ev, pd.concat([lab, extra], ignore_index=True))
    assert res.coverage == pytest.approx(0.9)
    assert len(res.labelled) == 90
    assert list(res.labelled.columns) == ["app", "week", "x", "defaulted"]
    assert res.labelled["app"].tolist() == ev["app"][:90].tolist()
    assert res.labelled["defaulted"].tolist() == lab["outcome"].tolist()
    assert res.queue["app"].tolist() == ev["app"][90:].tolist()
    assert list(res.queue.columns) == ["app", "week", "x"]
    assert res.leakage == 0
    report = json.loads(json.dumps(res.report, allow_nan=False))
    assert report["unmatched_labels"] == 1
    assert report["queue"] == 10
    assert report["label_summary"] == {"classes": {"0": 60, "1": 30}}
    assert "coverage 90.0%" in res.markdown


def test_duplicate_labels_keep_the_latest_and_are_counted() -> None:
    ev = events(n=4)
    lab = pd.DataFrame(
        {
            "application": ["a000", "a000", "a001", "a002", "a003", "a003", "a003"],
            "outcome": [1, 0, 1, 1, 0, 1, 0],
            "known_week": [8, 6, 6, 6, 7, 9, np.nan],
        }
    )
    res = join_labels(config(), ev, lab)
    assert res.labelled["defaulted"].tolist() == [1, 1, 1, 1]  # a000 from week 8, a003 from 9
    assert res.report["duplicate_labels_dropped"] == 3


def test_labels_of_one_id_disagreeing_at_its_latest_time_are_refused_in_any_order() -> None:
    ev = events(n=4)
    lab = pd.DataFrame(
        {
            "application": ["a000", "a000", "a001", "a002", "a003", "a003", "a001"],
            "outcome": [1, 0, 1, 0, 1, 0, 0],
            "known_week": [8, 8, 6, 6, 7, 7, 6],
        }
    )
    for order in (lab, lab.iloc[::-1]):
        with pytest.raises(ValidationError) as err:
            join_labels(config(), ev, order)
        (problem,) = err.value.problems
        assert problem.startswith("3 ids have 6 labels that disagree at their latest 'known_week'")
        assert "'a000' (0, 1 at 8)" in problem and "'a003'" in problem and "'a001'" in problem
    # Equal labels at one time are harmless duplicates; a tie an id's later label replaces, a
    # tie of an id with no event, and one dated after as_of are not the labels joined.
    harmless = pd.DataFrame(
        {
            "application": ["a000", "a000", "a001", "a001", "a001", "z999", "z999", "a002"],
            "outcome": [1, 1, 1, 0, 0, 1, 0, 1],
            "known_week": [8, 8, 6, 6, 9, 6, 6, 6],
        }
    )
    res = join_labels(config(), ev.iloc[:3], harmless)
    assert res.labelled["defaulted"].tolist() == [1, 0, 1]
    late = pd.DataFrame({"application": ["a002", "a002"], "outcome": [0, 1], "known_week": 9})
    res = join_labels(config(), ev.iloc[[2]], pd.concat([harmless, late]), as_of=8)
    assert res.labelled["defaulted"].tolist() == [1]
    with pytest.raises(ValidationError, match=r"1 ids have 2 labels.*'a002' \(0, 1 at 9\)"):
        join_labels(config(), ev.iloc[[2]], pd.concat([harmless, late]), as_of=9)


def test_low_coverage_is_an_error_naming_coverage_and_threshold() -> None:
    ev = events()
    with pytest.raises(ValidationError, match=r"coverage 70\.0% \(70 of 100 events\).*80\.0%"):
        join_labels(config(), ev, labels_for(ev, skip=30))
    res = join_labels(config(min_coverage=0.7), ev, labels_for(ev, skip=30))
    assert res.coverage == pytest.approx(0.7)


def test_null_labels_count_as_unlabelled() -> None:
    ev = events(n=10)
    lab = labels_for(ev)
    lab["outcome"] = lab["outcome"].astype("float64")
    lab.loc[[0, 1], "outcome"] = np.nan
    res = join_labels(config(), ev, lab)
    assert res.report["null_labels"] == 2
    assert res.queue["app"].tolist() == ["a000", "a001"]


def test_missing_columns_are_all_named() -> None:
    ev = events(n=10)
    lab = labels_for(ev).drop(columns=["outcome", "known_week"])
    with pytest.raises(ValidationError) as err:
        join_labels(config(), ev.drop(columns=["app"]), lab)
    problems = err.value.problems
    assert problems[0] == "events have no id column 'app'"
    assert problems[1].startswith("labels have no columns 'outcome', 'known_week'")
    with pytest.raises(ValidationError, match="already have a column named 'defaulted'"):
        join_labels(config(), ev.assign(defaulted=0), labels_for(ev))


def test_a_little_leakage_is_a_warning() -> None:
    ev = events(n=200)
    lab = labels_for(ev)
    lab.loc[0, "known_week"] = 4  # known before the event of week 5
    res = join_labels(config(), ev, lab)
    assert res.leakage == 1
    assert res.report["leakage_share"] == pytest.approx(0.005)
    assert res.report["warnings"] and "check for leakage" in res.report["warnings"][0]


def test_leakage_over_one_percent_is_an_error() -> None:
    ev = events(n=100)
    lab = labels_for(ev)
    lab.loc[:1, "known_week"] = 5  # the same week is not before the event
    lab.loc[2:3, "known_week"] = 3
    with pytest.raises(ValidationError, match=r"2 labels \(2\.00% of labelled rows\)"):
        join_labels(config(), ev, lab)
    assert MAX_LEAKAGE_SHARE == 0.01


def test_without_label_time_there_is_no_leakage_check() -> None:
    ev = events(n=10)
    res = join_labels(config(time_column=None), ev, labels_for(ev).drop(columns=["known_week"]))
    assert res.report["leakage_checked"] is False
    assert res.coverage == 1.0


def test_ids_of_different_types_still_join() -> None:
    ev = pd.DataFrame({"app": [1, 2, 3], "week": [5, 5, 5], "x": [0.1, 0.2, 0.3]})
    lab = pd.DataFrame({"application": ["1", "2", "3"], "outcome": [0, 1, 0], "known_week": 6})
    res = join_labels(config(), ev, lab)
    assert res.labelled["defaulted"].tolist() == [0, 1, 0]
    assert res.labelled["app"].tolist() == [1, 2, 3]


def test_regression_labels_must_be_numbers() -> None:
    ev = events(n=10)
    lab = labels_for(ev).astype({"outcome": object})
    res = join_labels(config("regression"), ev, lab)
    assert res.labelled["defaulted"].dtype == "float64"
    assert set(res.report["label_summary"]) == {"mean", "std", "min", "max"}
    lab.loc[0, "outcome"] = "high"
    with pytest.raises(ValidationError, match="1 labels in 'outcome' are not numbers"):
        join_labels(config("regression"), ev, lab)


def test_infinite_regression_labels_are_refused_by_name() -> None:
    ev = events(n=10)
    lab = labels_for(ev).astype({"outcome": "float64"})
    lab.loc[[0, 3], "outcome"] = [np.inf, -np.inf]
    with pytest.raises(ValidationError) as caught:
        join_labels(config("regression"), ev, lab)
    assert caught.value.problems == [
        "2 labels in 'outcome' are infinite (task is regression): a regression target must be "
        "finite"
    ]


def test_huge_finite_regression_labels_are_refused_by_name() -> None:
    # 1e308 is finite, but its square (in rmse, r2 and the label summary) is not: the label
    # step stopped on a summary that had overflowed.
    ev = events(n=10)
    lab = labels_for(ev).astype({"outcome": "float64"})
    lab.loc[[0, 3], "outcome"] = [1.5e308, -1e200]
    with pytest.raises(ValidationError) as caught:
        join_labels(config("regression"), ev, lab)
    assert len(caught.value.problems) == 1
    problem = caught.value.problems[0]
    assert problem.startswith("2 labels in 'outcome' exceed 1e+100 in magnitude")
    assert "largest 1.5e+308" in problem and "rescale it" in problem
    # Up to 1e100 the labels join, and their summary is finite JSON.
    lab.loc[[0, 3], "outcome"] = [1e100, -1e100]
    res = join_labels(config("regression"), ev, lab)
    summary = res.report["label_summary"]
    assert summary["max"] == 1e100 and summary["min"] == -1e100
    json.dumps(res.report, allow_nan=False)


def test_timestamp_leakage_compares_utc_times() -> None:
    cfg = config()
    raw = cfg.model_dump()
    raw["data"].update(time_kind="timestamp", window_size="1d")
    cfg = config_from_dict(raw)
    ev = pd.DataFrame(
        {"app": ["a", "b"], "week": ["2024-01-02T10:00:00Z", "2024-01-02T10:00:00Z"], "x": [1, 2]}
    )
    lab = pd.DataFrame(
        {
            "application": ["a", "b"],
            "outcome": [1, 0],
            # 11:00+02:00 is 09:00 UTC: before the event; 13:00+02:00 is after it
            "known_week": ["2024-01-02T11:00:00+02:00", "2024-01-02T13:00:00+02:00"],
        }
    )
    with pytest.raises(ValidationError, match=r"1 labels \(50\.00% of labelled rows\)"):
        join_labels(cfg, ev, lab)


def test_unreadable_label_times_are_undated_with_a_warning() -> None:
    ev = events(n=10)
    lab = labels_for(ev).astype({"known_week": object})
    lab.loc[0, "known_week"] = "soon"
    lab = pd.concat([lab, lab.iloc[[0]].assign(known_week=7, outcome=0)], ignore_index=True)
    res = join_labels(config(), ev, lab)
    assert res.coverage == 1.0
    assert res.labelled["defaulted"].iloc[0] == 0  # the dated duplicate beats the undated one
    assert res.report["warnings"] == [
        "1 labels have an unreadable 'known_week'; they are treated as undated (oldest when "
        "de-duplicating, never counted as leakage)"
    ]
