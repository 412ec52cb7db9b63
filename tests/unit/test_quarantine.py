"""Ingest through drift: drifted values are counted and kept, broken rows are quarantined with
a reason, structural problems still fail the window, and extra columns work by config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrain import steps
from retrain.config import Config, config_from_dict
from retrain.data.ingest import ingest_window
from retrain.data.io import from_parquet_bytes
from retrain.data.quarantine import QUARANTINE_REASON, ValueReference, check_rows
from retrain.data.windows import parse_window
from retrain.drift._profile import NumericProfile, ReferenceProfile, build_profile
from retrain.drift._reference import reference_from_profile
from retrain.errors import ValidationError
from retrain.steps._ingest import quarantine_key
from retrain.storage import open_storage

ROWS = 300
WEEKS = 8
BROKEN_PER_WEEK = 3  # a non-number, a row without id, a one-off category


def config(tmp: Path, **data: Any) -> Config:
    return config_from_dict(
        {
            "name": "shop",
            "task": "classification",
            "target": "churned",
            "storage_root": str(tmp / "store"),
            "data": {
                "uri": str(tmp / "events.csv"),
                "format": "csv",
                "id_column": "id",
                "time_column": "week",
                "time_kind": "period",
                "features": {"amount": "numeric", "visits": "numeric", "plan": "categorical"},
                "min_rows": 50,
                **data,
            },
            "labels": {"uri": str(tmp / "labels"), "id_column": "id", "label_column": "churned"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "deploy": {"deployment_name": "shop"},
        }
    )


def drifting_stream(seed: int = 0) -> pd.DataFrame:
    """Weekly events whose `amount` moves far beyond week 0's range (week k: about 100 + 200k),
    with a new plan, 'enterprise', on 40% of rows from week 4, and three broken rows a week
    from week 1: text in `amount`, an empty id, and a plan that appears exactly once."""
    rng = np.random.default_rng(seed)
    frames = []
    for week in range(WEEKS):
        amount = rng.uniform(0, 100, ROWS) * (1 + week) + 200.0 * week
        plan = np.where(rng.random(ROWS) < 0.7, "basic", "pro").astype(object)
        if week >= 4:
            plan[rng.random(ROWS) < 0.4] = "enterprise"
        frame = pd.DataFrame(
            {
                "id": [f"w{week}-{i:04d}" for i in range(ROWS)],
                "week": week,
                "amount": amount.round(2).astype(object),
                "visits": rng.integers(1, 11, ROWS),
                "plan": plan,
            }
        )
        if week >= 1:
            frame.loc[0, "amount"] = "unknown"
            frame.loc[1, "id"] = None
            frame.loc[2, "plan"] = f"typo-{week}"
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_a_drifting_stream_runs_every_window_through_ingest(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    drifting_stream().to_csv(tmp_path / "events.csv", index=False)
    store = open_storage(cfg.storage_root)
    for week in range(WEEKS):
        dataset = tmp_path / f"d{week}.parquet"
        outcome = steps.ingest(cfg.to_yaml(), str(week), f"r{week}", str(dataset))
        q = outcome.details["quarantine"]
        data, _ = from_parquet_bytes(dataset.read_bytes())
        if week == 0:
            assert q["quarantined_rows"] == 0 and len(data) == ROWS
            continue
        # Broken rows are set aside, counted by reason, and kept in the store as text.
        assert q["quarantined_rows"] == BROKEN_PER_WEEK
        assert q["quarantine_reasons"] == {
            "'amount' is not a finite number": 1,
            "'plan' has a category seen in too few rows": 1,
            "no id ('id' is empty)": 1,
        }
        assert len(data) == ROWS - BROKEN_PER_WEEK
        assert data["id"].notna().all() and not data["plan"].str.startswith("typo").any()
        kept, meta = from_parquet_bytes(store.read_bytes(quarantine_key(str(week))))
        assert len(kept) == BROKEN_PER_WEEK and meta["window"]["id"] == str(week)
        assert "unknown" in set(kept["amount"]) and f"typo-{week}" in set(kept["plan"])
        assert set(kept[QUARANTINE_REASON]) == set(q["quarantine_reasons"])
        assert f"{BROKEN_PER_WEEK} rows quarantined" in outcome.summary
        # Drift is counted and kept: week 1 onwards lies mostly beyond week 0's range + 50%.
        beyond = q["out_of_range"]["amount"]["rows"]
        assert beyond > (ROWS // 2 if week >= 2 else 0)
        assert data["amount"].max() > 150.0  # the drifted values are in the dataset
        if week >= 4:
            enterprise = q["new_categories"]["plan"]["enterprise"]
            assert enterprise == int((data["plan"] == "enterprise").sum()) > 50
        else:
            assert "plan" not in q["new_categories"]
        assert "values outside the reference (drift)" in outcome.summary


def test_too_many_broken_rows_fail_the_window_naming_the_share(tmp_path: Path) -> None:
    cfg = config(tmp_path, max_quarantine_share=0.02)
    src = drifting_stream()
    first = ingest_window(cfg, src, parse_window(cfg.data, "0"), None)
    week1 = src[src["week"] == 1].copy()
    week1.loc[week1.index[10:20], "amount"] = "n/a"  # 13 broken rows of 300: 4.3%
    with pytest.raises(ValidationError) as err:
        ingest_window(cfg, week1, parse_window(cfg.data, "1"), first.schema)
    assert "4.3% of its rows (13 of 300) are broken" in str(err.value)
    assert "data.max_quarantine_share 2.0%" in str(err.value)
    assert "'amount' is not a finite number: 11 rows" in err.value.problems
    relaxed = config(tmp_path, max_quarantine_share=0.05)
    res = ingest_window(relaxed, week1, parse_window(cfg.data, "1"), first.schema)
    assert res.report["quarantine"]["quarantined_rows"] == 13
    assert res.quarantined is not None and len(res.quarantined) == 13


def test_structural_problems_still_fail_closed(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    src = drifting_stream()
    first = ingest_window(cfg, src, parse_window(cfg.data, "0"), None)
    week1 = src[src["week"] == 1].copy()
    dup = week1.copy()
    dup.loc[dup.index[5], "id"] = dup.loc[dup.index[6], "id"]
    with pytest.raises(ValidationError, match="failed 1 checks") as err:
        ingest_window(cfg, dup, parse_window(cfg.data, "1"), first.schema)
    assert err.value.problems[0].startswith("1 duplicate ids in column 'id'")
    text = week1.astype({"visits": object})
    text.loc[text.index[: ROWS // 2 + 1], "visits"] = "many"  # most rows: the type changed
    with pytest.raises(ValidationError) as err:
        ingest_window(cfg, text, parse_window(cfg.data, "1"), first.schema)
    assert (
        "column 'visits' is numeric but has 151 values that are not numbers"
        in (err.value.problems[0])
    )
    with pytest.raises(ValidationError, match="missing columns: 'plan'"):
        ingest_window(cfg, week1.drop(columns=["plan"]), parse_window(cfg.data, "1"), None)


def test_ranges_and_categories_rebase_on_the_champions_training_data(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    src = drifting_stream()
    first = ingest_window(cfg, src, parse_window(cfg.data, "0"), None)
    week5 = src[src["week"] == 5]
    # Against the first window, week 5 is all drift: every amount beyond it, a new plan.
    against_schema = check_rows(week5, cfg, ValueReference.from_schema(first.schema))
    assert against_schema.out_of_range["amount"]["rows"] == ROWS - BROKEN_PER_WEEK
    assert "enterprise" in against_schema.new_categories["plan"]
    # A champion trained on weeks 4 and 5 saw those values: its reference re-bases.
    trained = pd.concat(
        [ingest_window(cfg, src, parse_window(cfg.data, str(w)), first.schema).data for w in (4, 5)]
    )
    reference = reference_from_profile(build_profile(trained, cfg), "champion v2")
    assert reference.ranges["amount"] == (trained["amount"].min(), trained["amount"].max())
    rebased = check_rows(week5, cfg, reference)
    assert rebased.out_of_range == {} and rebased.new_categories == {}
    assert rebased.reference == "champion v2"
    # The one-off category is still a broken row: the champion never saw it either.
    assert rebased.reasons == {
        "'amount' is not a finite number": 1,
        "'plan' has a category seen in too few rows": 1,
        "no id ('id' is empty)": 1,
    }


def test_the_value_reference_is_every_training_row_when_drift_compares_with_the_newest(
    tmp_path: Path,
) -> None:
    # A champion trained on weeks 0-5 keeps week 5 as its drift reference, but it saw the
    # amounts and plans of every week: week 1's values are not new to it.
    cfg = config(tmp_path)
    src = drifting_stream()
    first = ingest_window(cfg, src, parse_window(cfg.data, "0"), None)
    weeks = [
        ingest_window(cfg, src, parse_window(cfg.data, str(w)), first.schema).data for w in range(6)
    ]
    trained = pd.concat(weeks)
    profile = ReferenceProfile.from_json(build_profile(weeks[5], cfg, seen=trained).to_json())
    amount = profile.features["amount"]
    assert isinstance(amount, NumericProfile) and amount.min == weeks[5]["amount"].min()
    reference = reference_from_profile(profile, "champion v6")
    assert reference.ranges["amount"] == (trained["amount"].min(), trained["amount"].max())
    assert reference.categories["plan"] == {"basic", "pro", "enterprise"}
    week1 = src[src["week"] == 1]
    assert check_rows(week1, cfg, reference).out_of_range == {}
    # Without `seen` the same profile's own range would call week 1's amounts out of range.
    own = reference_from_profile(build_profile(weeks[5], cfg), "week 5")
    assert check_rows(week1, cfg, own).out_of_range["amount"]["rows"] == ROWS - BROKEN_PER_WEEK


def test_a_category_is_new_or_broken_by_how_many_rows_carry_it(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(10)],
            "week": 0,
            "amount": 1.0,
            "visits": 1,
            "plan": ["basic"] * 5 + ["gold"] * 3 + ["silver"] * 2,
        }
    )
    reference = ValueReference("test", {}, {"plan": frozenset({"basic"})})
    checks = check_rows(df, config(tmp_path, min_category_rows=3), reference)
    assert checks.new_categories == {"plan": {"gold": 3}}
    assert checks.quarantined["plan"].tolist() == ["silver", "silver"]
    loose = check_rows(df, config(tmp_path, min_category_rows=1), reference)
    assert loose.new_categories == {"plan": {"gold": 3, "silver": 2}} and loose.keep.all()


def test_infinite_numbers_are_broken_rows(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {"id": ["a", "b", "c"], "week": 0, "amount": [1.0, np.inf, -np.inf], "visits": 1}
    ).assign(plan="basic")
    checks = check_rows(df, config(tmp_path), None)
    assert checks.keep.tolist() == [True, False, False]
    assert checks.reasons == {"'amount' is not a finite number": 2}


def test_extra_columns_work_by_config_and_the_error_suggests_it(tmp_path: Path) -> None:
    src = drifting_stream().assign(logged_probability=0.5)
    window = parse_window(config(tmp_path).data, "0")
    with pytest.raises(ValidationError) as err:
        ingest_window(config(tmp_path), src, window, None)
    (problem,) = err.value.problems
    assert problem.startswith("unexpected columns: 'logged_probability'")
    assert "data.ignore_columns (e.g. ignore_columns: ['logged_probability'])" in problem
    assert "data.extra_columns: ignore" in problem
    for cfg in (
        config(tmp_path, ignore_columns=["logged_probability"]),
        config(tmp_path, extra_columns="ignore"),
    ):
        res = ingest_window(cfg, src, window, None)
        assert res.report["ignored_columns"] == ["logged_probability"]
        assert "logged_probability" not in res.data.columns
        assert "ignored columns (not model inputs): `logged_probability`" in res.markdown
    # Listing a column to ignore does not let other unexpected columns through.
    with pytest.raises(ValidationError, match="unexpected columns: 'other'"):
        ingest_window(
            config(tmp_path, ignore_columns=["logged_probability"]),
            src.assign(other=1),
            window,
            None,
        )


def merchant_weeks(levels: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two weeks of 300 rows whose `plan` takes `levels` codes; in the second week 60 rows
    carry codes week 0 never had, each on one row (as merchants or zip codes arrive)."""
    rng = np.random.default_rng(seed)

    def week(n: int, codes: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "id": [f"w{n}-{i:04d}" for i in range(ROWS)],
                "week": n,
                "amount": rng.uniform(0, 100, ROWS).round(2),
                "visits": rng.integers(1, 11, ROWS),
                "plan": codes,
            }
        )

    known = np.array([f"m{i:03d}" for i in range(levels)], dtype=object)
    first = week(0, np.resize(known, ROWS))
    codes = rng.choice(known, ROWS)
    codes[:60] = [f"new{i:03d}" for i in range(60)]
    return first, week(1, codes)


def test_a_many_valued_categorical_failing_on_new_values_is_told_to_be_an_identifier(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path)
    first, second = merchant_weeks(levels=150)  # above max_onehot_categories (100)
    schema = ingest_window(cfg, first, parse_window(cfg.data, "0"), None).schema
    with pytest.raises(ValidationError) as err:
        ingest_window(cfg, second, parse_window(cfg.data, "1"), schema)
    assert "'plan' has a category seen in too few rows: 60 rows" in err.value.problems
    hint = [p for p in err.value.problems if "identifier" in p]
    assert len(hint) == 1
    assert "'plan' takes 150 values" in hint[0] and "'plan: identifier'" in hint[0]
    assert "data.min_category_rows: 1" in hint[0]
    # Both ways out the hint names work.
    features = {"amount": "numeric", "visits": "numeric", "plan": "identifier"}
    as_ids = config(tmp_path, features=features)
    ids_schema = ingest_window(as_ids, first, parse_window(as_ids.data, "0"), None).schema
    kept = ingest_window(as_ids, second, parse_window(as_ids.data, "1"), ids_schema).data
    assert len(kept) == ROWS
    loose = config(tmp_path, min_category_rows=1)
    assert len(ingest_window(loose, second, parse_window(cfg.data, "1"), schema).data) == ROWS


def test_a_few_valued_categorical_with_typos_gets_no_identifier_hint(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    first, second = merchant_weeks(levels=20)
    schema = ingest_window(cfg, first, parse_window(cfg.data, "0"), None).schema
    with pytest.raises(ValidationError) as err:
        ingest_window(cfg, second, parse_window(cfg.data, "1"), schema)
    assert "'plan' has a category seen in too few rows: 60 rows" in err.value.problems
    assert not [p for p in err.value.problems if "identifier" in p]
