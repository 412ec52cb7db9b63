from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrain.config import Config, config_from_dict
from retrain.data.ingest import ingest_window
from retrain.data.quarantine import ValueReference, check_rows
from retrain.data.schema import ColumnSchema, Schema, check_window, infer_schema
from retrain.data.windows import parse_window
from retrain.errors import ValidationError

ROWS = 60


def config(**data: Any) -> Config:
    raw = {
        "name": "shop",
        "task": "classification",
        "target": "churned",
        "storage_root": "store",
        "data": {
            "uri": "events",
            "id_column": "id",
            "time_column": "week",
            "time_kind": "period",
            "window_size": 1,
            "features": {"amount": "numeric", "visits": "numeric", "plan": "categorical"},
            "prediction_column": "score",
            "min_rows": 50,
            "max_null_rate": 0.2,
            "range_tolerance": 0.5,
            **data,
        },
        "labels": {"uri": "labels", "id_column": "id", "label_column": "churned"},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {"deployment_name": "shop"},
    }
    return config_from_dict(raw)


def events(weeks: int = 3, seed: int = 0) -> pd.DataFrame:
    """Seeded events: amount in [0, 100], visits 1..10, plan in {basic, pro}."""
    rng = np.random.default_rng(seed)
    n = weeks * ROWS
    amount = np.round(rng.uniform(0, 100, n), 2)
    amount[[0, n - 1]] = [0.0, 100.0]  # pin the reference range of week 0 ... and the last week
    amount[ROWS - 1] = 100.0
    return pd.DataFrame(
        {
            "id": [f"u{i:04d}" for i in range(n)],
            "week": np.repeat(np.arange(weeks), ROWS),
            "amount": amount,
            "visits": rng.integers(1, 11, n),
            "plan": np.where(rng.random(n) < 0.7, "basic", "pro"),
            "score": np.round(rng.random(n), 3),
        }
    )


def window(cfg: Config, wid: str) -> Any:
    return parse_window(cfg.data, wid)


def test_first_window_infers_the_schema_and_keeps_only_its_rows() -> None:
    cfg, src = config(), events()
    before = src.copy()
    res = ingest_window(cfg, src, window(cfg, "1"), None)
    assert res.schema_inferred is True
    assert res.data["week"].tolist() == [1] * ROWS
    assert res.data["id"].tolist() == src["id"][ROWS : 2 * ROWS].tolist()
    assert list(res.data.columns) == ["id", "week", "amount", "visits", "plan", "score"]
    assert res.data["visits"].dtype == "float64"
    assert res.data["week"].dtype == "int64"
    pd.testing.assert_frame_equal(src, before)  # pure: the input is untouched

    amount = res.schema.columns["amount"]
    week1 = src[src["week"] == 1]
    assert (amount.kind, amount.min, amount.max) == (
        "numeric",
        float(week1["amount"].min()),
        float(week1["amount"].max()),
    )
    assert res.schema.columns["plan"].categories == ["basic", "pro"]
    assert res.schema.prediction_column == "score"


def test_later_windows_are_checked_against_the_reference() -> None:
    cfg, src = config(), events()
    first = ingest_window(cfg, src, window(cfg, "0"), None)
    res = ingest_window(cfg, src, window(cfg, "2"), first.schema)
    assert res.schema_inferred is False
    assert res.schema is first.schema
    assert res.report["schema_fingerprint"] == first.schema.fingerprint()


def test_report_is_json_with_per_feature_summaries_and_markdown() -> None:
    cfg, src = config(), events()
    res = ingest_window(cfg, src, window(cfg, "0"), None)
    report = json.loads(json.dumps(res.report, allow_nan=False))
    assert report["rows"] == ROWS
    assert report["source_rows"] == 3 * ROWS
    assert report["window"] == {"id": "0", "start": 0, "end": 1}
    assert report["problems"] == []
    week0 = src[src["week"] == 0]
    amount = report["features"]["amount"]
    assert amount["mean"] == pytest.approx(week0["amount"].mean())
    assert amount["max"] == 100.0
    plan = report["features"]["plan"]
    counts = week0["plan"].value_counts()
    assert plan["distinct"] == 2
    assert plan["top"][0] == {"value": counts.idxmax(), "count": int(counts.max())}
    assert "# Ingest: window `0`" in res.markdown
    assert "| `amount` |" in res.markdown and "| `plan` |" in res.markdown


def test_every_structural_problem_is_reported_at_once() -> None:
    cfg, src = config(), events()
    schema = ingest_window(cfg, src, window(cfg, "0"), None).schema
    bad = src[src["week"] == 1].head(40).copy()  # under min_rows (50)
    bad["amount"] = bad["amount"].astype(object)
    bad.iloc[:25, bad.columns.get_loc("amount")] = "n/a"  # mostly text: a changed column
    bad.iloc[2:12, bad.columns.get_loc("visits")] = np.nan  # 25% null > 20%
    bad.iloc[6, bad.columns.get_loc("id")] = bad.iloc[7]["id"]
    bad["churned"] = 0  # the label must not ride along with events
    bad = bad.drop(columns=["score"])  # the prediction column is optional: not a problem
    with pytest.raises(ValidationError) as err:
        ingest_window(cfg, bad, window(cfg, "1"), schema)
    problems = err.value.problems
    expected = [
        "unexpected columns: 'churned'",
        "column 'amount' is numeric but has 25 values that are not numbers",
        "window has 40 rows; data.min_rows is 50",
        "column 'visits' is 25.0% null; data.max_null_rate is 20.0%",
        "1 duplicate ids in column 'id'",
    ]
    for text in expected:
        assert any(text in p for p in problems), (text, problems)
    assert len(problems) == len(expected)
    assert "failed 5 checks" in str(err.value)


def test_missing_columns_and_empty_windows_are_errors() -> None:
    cfg, src = config(), events()
    with pytest.raises(ValidationError) as err:
        ingest_window(cfg, src.drop(columns=["plan", "visits"]), window(cfg, "0"), None)
    assert err.value.problems == ["missing columns: 'visits', 'plan'"]
    with pytest.raises(ValidationError, match="the source has no time column 'week'") as err:
        ingest_window(cfg, src.drop(columns=["week", "id"]), window(cfg, "0"), None)
    assert err.value.problems == ["missing columns: 'id', 'week'"]
    with pytest.raises(ValidationError, match=r"window 7 \[7, 8\) is empty") as err:
        ingest_window(cfg, src, window(cfg, "7"), None)
    assert "the source has 180 rows spanning 0 to 2" in err.value.problems[0]


def test_range_tolerance_boundary_counts_drift_and_keeps_the_rows() -> None:
    cfg = config(min_rows=1)
    schema = Schema(
        id_column="id",
        time_column="week",
        columns={
            "amount": ColumnSchema(kind="numeric", dtype="float64", null_rate=0, min=0, max=10),
            "visits": ColumnSchema(kind="numeric", dtype="int64", null_rate=0, min=1, max=10),
            "plan": ColumnSchema(
                kind="categorical", dtype="str", null_rate=0, categories=["basic"]
            ),
        },
    )
    reference = ValueReference.from_schema(schema)

    def rows(amount: float) -> pd.DataFrame:
        return pd.DataFrame(
            {"id": ["a"], "week": [0], "amount": [amount], "visits": [5], "plan": ["basic"]}
        )

    for inside in (15.0, -5.0):
        checks = check_rows(rows(inside), cfg, reference)
        assert checks.out_of_range == {} and checks.keep.all()
    beyond = check_rows(rows(15.01), cfg, reference)
    assert beyond.keep.all() and beyond.quarantined_rows == 0  # drift is kept
    assert beyond.out_of_range["amount"]["rows"] == 1
    assert beyond.out_of_range["amount"]["allowed"] == [-5.0, 15.0]
    wider = check_rows(rows(15.01), config(min_rows=1, range_tolerance=1.0), reference)
    assert wider.out_of_range == {}
    assert check_window(rows(1e9), schema, cfg) == []  # never a structural problem


def test_integer_categories_survive_a_null_turning_them_into_floats() -> None:
    cfg = config(
        min_rows=1, max_null_rate=0.5, features={"plan": "categorical"}, prediction_column=None
    )
    ref = pd.DataFrame({"id": ["a", "b", "c"], "week": [0, 0, 0], "plan": [1, 2, 3]})
    schema = infer_schema(ref, cfg)
    assert schema.columns["plan"].categories == ["1", "2", "3"]
    later = pd.DataFrame({"id": ["d", "e", "f"], "week": [1, 1, 1], "plan": [1.0, 3.0, np.nan]})
    assert check_window(later, schema, cfg) == []


def test_schema_and_config_must_agree() -> None:
    cfg, src = config(), events()
    schema = ingest_window(cfg, src, window(cfg, "0"), None).schema
    changed = config(features={"amount": "categorical", "visits": "numeric", "age": "numeric"})
    src = src.drop(columns=["plan"]).assign(age=30)
    problems = check_window(src[src["week"] == 1], schema, changed)
    assert (
        "feature 'amount' is categorical in the config but numeric in the reference schema"
        in problems
    )
    assert any(
        p.startswith("feature 'age' is configured but not in the reference schema")
        for p in problems
    )
    assert "reference schema column 'plan' is no longer a configured feature" in problems


def test_schema_json_round_trip_and_fingerprint() -> None:
    cfg, src = config(), events()
    schema = infer_schema(src[src["week"] == 0], cfg)
    text = schema.to_json()
    again = Schema.from_json(text)
    assert again == schema
    assert again.fingerprint() == schema.fingerprint()
    assert len(schema.fingerprint()) == 64
    reordered = Schema(
        id_column=schema.id_column,
        time_column=schema.time_column,
        columns=dict(reversed(list(schema.columns.items()))),
        prediction_column=schema.prediction_column,
    )
    assert reordered.fingerprint() == schema.fingerprint()
    other = infer_schema(src[src["week"] == 1], cfg)
    assert other.fingerprint() != schema.fingerprint()
    with pytest.raises(ValidationError, match="missing key 'columns'"):
        Schema.from_json('{"format": 1, "id_column": "id", "time_column": "t"}')
    with pytest.raises(ValidationError, match="schema JSON is invalid"):
        Schema.from_json("not json")


def test_infer_schema_refuses_text_in_numeric_features() -> None:
    cfg = config()
    src = events(weeks=1).astype({"visits": object})
    src.loc[: ROWS // 2 + 1, "visits"] = "many"  # most rows: the column changed type
    with pytest.raises(ValidationError, match=r"'visits' is numeric.*'many'"):
        infer_schema(src, cfg)


def test_timestamp_windows_cut_by_utc_time_and_skip_unreadable_rows() -> None:
    cfg = config(time_kind="timestamp", window_size="1d", time_column="at", min_rows=2)
    src = events(weeks=1).drop(columns=["week"]).head(6)
    src["at"] = [
        "2024-01-01T23:00:00-02:00",  # 01:00 UTC on the 2nd
        "2024-01-02T00:00:00Z",
        "2024-01-02T12:00",  # no offset: UTC
        None,
        "garbled",
        "2024-01-03T00:00:00Z",  # the next window
    ]
    res = ingest_window(cfg, src, parse_window(cfg.data, "2024-01-02"), None)
    assert res.data["id"].tolist() == ["u0000", "u0001", "u0002"]
    assert res.data["at"].dtype == pd.DatetimeTZDtype(unit=res.data["at"].dt.unit, tz="UTC")
    assert res.data["at"].iloc[0] == pd.Timestamp("2024-01-02T01:00", tz="UTC")
    assert res.report["warnings"] == [
        "1 source rows have no event time and belong to no window",
        "1 source rows have an unreadable 'at' and belong to no window, e.g. 'garbled'",
    ]
