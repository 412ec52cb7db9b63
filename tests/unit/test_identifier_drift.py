"""Identifier drift: unseen-id share against the reference's churn, top-k mass, bounded
profile, no quarantine of new ids; checked on hand-counted examples and by simulation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.config import Config, config_from_dict
from retrain.data.ingest import ingest_window
from retrain.data.windows import parse_window
from retrain.drift import _identifiers
from retrain.drift._detect import detect_drift
from retrain.drift._identifiers import IdentifierProfile, identifier_profile, unseen_verdict
from retrain.drift._profile import ReferenceProfile, build_profile


def ids(*values: str | None) -> pd.Series:
    return pd.Series(list(values), dtype=object)


def test_churn_is_the_latest_fifth_unseen_in_the_rows_before() -> None:
    # 10 rows: the last 2 (a, d) are judged against the first 8 (a b c a b c a b): d is new.
    ref = ids("a", "b", "c", "a", "b", "c", "a", "b", "a", "d")
    p = identifier_profile(ref)
    assert p.churn == pytest.approx(0.5)
    # Event-time order, not row order: reversed, the latest two are b and a, both seen before.
    p = identifier_profile(ref, order=np.arange(10)[::-1])
    assert p.churn == 0.0


def test_unseen_share_hand_counted_with_top_ids_and_a_complete_sketch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_identifiers, "TOP_K", 1)
    ref = ids("a", "a", "a", "a", "b", "b", "c", "d", "e", None)
    p = identifier_profile(ref)
    # Chosen on the even rows (a a b c e), counted on the odd ones (a a b d).
    assert p.top == ("a",) and list(p.top_counts) == [2] and p.top_rows == 4
    assert (p.n, p.nulls, p.distinct, len(p.sketch)) == (9, 1, 5, 4)
    # Window: a (top), b (known), x, x, y (never seen), one null: 3 of 5 non-null rows unseen.
    v = unseen_verdict(p, ids("a", "b", "x", "x", "y", None), alpha=0.01)
    assert v.unseen == pytest.approx(3 / 5)
    assert v.examples == {"x": 2, "y": 1}
    assert v.unseen_rows == 3


def test_the_sketch_bounds_memory_and_samples_ids_uniformly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_identifiers, "SKETCH_SIZE", 500)
    rng = np.random.default_rng(0)
    small = identifier_profile(pd.Series([f"u{i}" for i in rng.integers(0, 2000, 20_000)]))
    large = identifier_profile(pd.Series([f"u{i}" for i in rng.integers(0, 200_000, 20_000)]))
    assert len(small.sketch) == len(large.sketch) == 500
    assert len(large.to_dict()["sketch"]["base64"]) == len(small.to_dict()["sketch"]["base64"])
    # A window of ids 0..199,999 where ids >= 100,000 were never in a reference of 0..99,999:
    # the true unseen share is counted here directly; the sketch's estimate is close to it.
    ref = pd.Series([f"u{i}" for i in range(100_000)])
    cur_ids = rng.integers(0, 200_000, 20_000)
    truth = float((cur_ids >= 100_000).mean())
    p = identifier_profile(ref)
    v = unseen_verdict(p, pd.Series([f"u{i}" for i in cur_ids]), alpha=0.01)
    assert v.sampled_rows < 20_000  # only the ids whose hash falls in the sketch's range
    assert abs(v.unseen - truth) < 0.06


def test_the_profile_round_trips_through_json() -> None:
    p = identifier_profile(ids("a", "b", "b", None, "c"))
    back = IdentifierProfile.from_dict(p.to_dict())
    assert back.to_dict() == p.to_dict()


def _stream(
    rng: np.random.Generator, n: int, first_new: int, new_rate: float
) -> tuple[pd.Series, int]:
    """Heavy-tailed ids: half the rows from a Zipf law on the first ids (uniform beyond the
    population so far), half uniform over that population; a share `new_rate` of rows are
    ids never used before (sign-ups)."""
    out = np.empty(n, dtype=np.int64)
    nxt = first_new
    for i in range(n):
        if rng.random() < new_rate:
            out[i] = nxt
            nxt += 1
        elif rng.random() < 0.5 and (z := int(rng.zipf(1.4))) < nxt:
            out[i] = z
        else:
            out[i] = int(rng.integers(0, nxt))
    return pd.Series([f"u{x}" for x in out]), nxt


def test_natural_churn_rarely_fires_and_a_flood_always_does() -> None:
    """Same law with new ids at the reference's own rate: a false positive at most once in 40
    windows; a flood (30% of rows new ids) caught in all of them."""
    rng = np.random.default_rng(11)
    false_positives = detections = 0
    for _ in range(40):
        ref, nxt = _stream(rng, 4000, 1500, 0.03)
        p = identifier_profile(ref)
        cur, _ = _stream(rng, 1000, nxt, 0.03)
        false_positives += unseen_verdict(p, cur, alpha=0.01).drifted
        flooded = pd.concat([cur.iloc[:700], pd.Series([f"new{i}" for i in range(300)])])
        detections += unseen_verdict(p, flooded, alpha=0.01).drifted
    assert false_positives <= 1
    assert detections == 40


def shop_config(tmp: Path) -> Config:
    return config_from_dict(
        {
            "name": "ids",
            "task": "classification",
            "target": "bought",
            "storage_root": str(tmp / "store"),
            "data": {
                "uri": str(tmp / "events"),
                "id_column": "id",
                "time_column": "week",
                "time_kind": "period",
                "features": {"user": "identifier", "price": "numeric"},
                "min_rows": 10,
            },
            "labels": {"uri": str(tmp / "labels"), "id_column": "id", "label_column": "bought"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "deploy": {"deployment_name": "ids"},
        }
    )


def frame(users: list[str | None], week: int = 0) -> pd.DataFrame:
    n = len(users)
    return pd.DataFrame(
        {
            "id": [f"e{week}-{i}" for i in range(n)],
            "week": week,
            "user": pd.Series(users, dtype=object),
            "price": np.linspace(1.0, 2.0, n),
        }
    )


def test_ingest_keeps_new_ids_and_reports_a_flood_as_drift(tmp_path: Path) -> None:
    cfg = shop_config(tmp_path)
    rng = np.random.default_rng(3)
    week0 = frame([f"u{i}" for i in rng.integers(0, 300, 3000)])
    first = ingest_window(cfg, week0, parse_window(cfg.data, "0"), None)
    assert first.schema.columns["user"].kind == "identifier"
    assert first.schema.columns["user"].categories is None  # no list that grows with users
    # Week 1: every id is new (a flood), each seen once: none is quarantined.
    flood = frame([f"new{i}" for i in range(500)], week=1)
    res = ingest_window(cfg, flood, parse_window(cfg.data, "1"), first.schema)
    assert len(res.data) == 500
    assert res.report["quarantine"]["quarantined_rows"] == 0
    profile = build_profile(first.data, cfg)
    back = ReferenceProfile.from_json(profile.to_json())
    report = detect_drift(back, res.data, cfg)
    [user] = [f for f in report.features if f.feature == "user"]
    assert user.drifted and user.unseen_rows == 500
    assert "unseen ids 100.0% of rows" in user.note
    assert "unseen ids 100.0%" in report.markdown()


def test_top_k_mass_shift_is_drift_and_the_same_law_is_not(tmp_path: Path) -> None:
    cfg = shop_config(tmp_path)
    rng = np.random.default_rng(4)
    weights = 1.0 / np.arange(1, 401) ** 1.1
    weights /= weights.sum()

    def draw(p: np.ndarray, n: int) -> list[str | None]:
        return [f"u{i}" for i in rng.choice(400, n, p=p)]

    profile = build_profile(frame(draw(weights, 5000)), cfg)
    same = detect_drift(profile, frame(draw(weights, 2000), 1), cfg)
    assert not next(f for f in same.features if f.feature == "user").drifted
    # The heaviest ten ids lose most of their traffic to the tail: all ids were seen before.
    shifted = weights.copy()
    shifted[:10] *= 0.2
    shifted /= shifted.sum()
    moved = detect_drift(profile, frame(draw(shifted, 2000), 1), cfg)
    [user] = [f for f in moved.features if f.feature == "user"]
    assert user.drifted and "top-k mass shifted" in user.note


def test_nulls_and_a_single_valued_id_column_get_verdicts_not_crashes(tmp_path: Path) -> None:
    cfg = shop_config(tmp_path)
    single = build_profile(frame(["u1"] * 200), cfg)
    report = detect_drift(single, frame(["u1"] * 100, 1), cfg)
    [user] = [f for f in report.features if f.feature == "user"]
    assert not user.drifted and user.statistic == 0.0
    nulls = detect_drift(single, frame([None] * 100, 1), cfg)
    [user] = [f for f in nulls.features if f.feature == "user"]
    assert user.statistic is None and user.null_rate_cur == 1.0
    assert "no non-null values in the current window" in user.note


def test_a_tiny_alpha_widens_the_margin_instead_of_failing() -> None:
    # A Bonferroni-divided drift.null_alpha far below 1e-16 leaves 1 - alpha == 1.0 in floats;
    # the quantile is taken from alpha itself, so the verdict stays computable (and stricter).
    p = identifier_profile(ids(*"abcdefghij" * 20))
    window = ids(*"abcdexyz" * 20)
    usual = unseen_verdict(p, window, alpha=0.01)
    tiny = unseen_verdict(p, window, alpha=1e-20)
    assert tiny.unseen == pytest.approx(usual.unseen)
    assert tiny.margin > usual.margin
