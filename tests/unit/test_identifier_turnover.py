"""Identifier drift under normal id turnover: new ids that arrive in batches at window
boundaries, and references several windows old, must not drift the column; a flood of
never-seen ids and a shift of the heavy ids' mass still must."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.config import Config, load_config
from retrain.data.case_shop import generate_shop
from retrain.data.io import read_source
from retrain.drift import _identifiers, build_profile, detect_drift
from retrain.drift._identifiers import identifier_profile, unseen_verdict, windows_elapsed


def ids(*values: str) -> pd.Series:
    return pd.Series(list(values), dtype=object)


def test_turnover_is_the_latest_window_unseen_in_the_windows_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_identifiers, "MIN_TURNOVER_ROWS", 3)
    # Window 0: a b a b; window 1: a c d a (c and d arrive at the boundary): 2 of 4 rows new.
    # Within window 1 alone the latest fifth (one row, a) would show no turnover at all.
    ref = ids("a", "b", "a", "b", "a", "c", "d", "a")
    slots = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=float)
    p = identifier_profile(ref, np.arange(8), slots)
    assert p.churn == pytest.approx(0.5)
    assert p.end_slot == 1
    # One window only: the within-window churn (latest fifth of rows), end still known.
    one = identifier_profile(ref[:4], np.arange(4), slots[:4])
    assert one.churn == 0.0 and one.end_slot == 0
    # A sliver of a window at the end (one row, e) is too few to measure: window 1 is used.
    sliver = identifier_profile(
        pd.concat([ref, ids("e")], ignore_index=True), np.arange(9), np.append(slots, 2.0)
    )
    assert sliver.churn == pytest.approx(0.5) and sliver.end_slot == 2
    # Without times: no end, a window is taken to follow the reference directly.
    assert identifier_profile(ref).end_slot is None
    assert windows_elapsed(identifier_profile(ref), np.array([9.0])) == 1


def test_expected_unseen_share_accumulates_with_the_reference_age(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_identifiers, "MIN_TURNOVER_ROWS", 3)
    ref = ids("a", "b", "a", "b", "a", "c", "d", "a")
    p = identifier_profile(ref, np.arange(8), np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=float))
    assert windows_elapsed(p, np.array([2.0, 2.0])) == 1
    assert windows_elapsed(p, np.array([np.nan, 4.0])) == 3
    # 60% unseen: above 50% + margin one window on, expected after three (1 - 0.5^3 = 87.5%).
    window = ids(*[f"new{i}" for i in range(60)], *(["a"] * 40))
    assert unseen_verdict(p, window, 0.01, elapsed=3).churn == pytest.approx(0.875)
    assert not unseen_verdict(p, window, 0.01, elapsed=3).drifted
    with pytest.raises(ValueError, match="elapsed"):
        unseen_verdict(p, window, 0.01, elapsed=0)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, pd.DataFrame, pd.Series]:
    out = Path(tmp_path_factory.mktemp("shop"))
    cfg = load_config(generate_shop(out, windows=7, drift_window=6))
    events = read_source(cfg.data.uri, cfg.data.format)
    times = pd.to_datetime(events[cfg.data.time_column])
    return cfg, events, (times - times.min()).dt.days // 7


def test_shop_pre_change_weeks_do_not_drift_the_id_columns(
    shop: tuple[Config, pd.DataFrame, pd.Series],
) -> None:
    cfg, events, week = shop
    # A reference of two weeks (history plus the newest window), then four weeks of normal
    # sign-ups and listings: the id columns hold, column by column.
    profile = build_profile(events[week <= 1], cfg)
    for w in range(2, 6):
        report = detect_drift(profile, events[week == w], cfg)
        by_name = {f.feature: f for f in report.features}
        for column in ("user_id", "item_id"):
            assert not by_name[column].drifted, (w, column, by_name[column].note)


def test_shop_unseen_id_flood_and_top_k_shift_are_still_caught(
    shop: tuple[Config, pd.DataFrame, pd.Series],
) -> None:
    cfg, events, week = shop
    profile = build_profile(events[week <= 1], cfg)
    # The window right after the reference: a flood of never-seen ids on 30% of rows.
    window = events[week == 2].reset_index(drop=True)
    rng = np.random.default_rng(3)
    flooded = window.copy()
    bots = rng.random(len(flooded)) < 0.3
    flooded.loc[bots, "user_id"] = [f"bot{i}" for i in range(int(bots.sum()))]
    report = detect_drift(profile, flooded, cfg)
    user = next(f for f in report.features if f.feature == "user_id")
    assert user.drifted and "unseen ids" in user.note and ": drifted" in user.note
    # Three windows on, the heaviest users leave: their rows go to other known users.
    window = events[week == 4].reset_index(drop=True)
    heavy = set(window["user_id"].value_counts().index[:10])
    shifted = window.copy()
    gone = shifted["user_id"].isin(heavy).to_numpy()
    others = window.loc[~gone, "user_id"].to_numpy()
    shifted.loc[gone, "user_id"] = rng.choice(others, int(gone.sum()))
    report = detect_drift(profile, shifted, cfg)
    user = next(f for f in report.features if f.feature == "user_id")
    assert user.drifted and "top-k mass shifted" in user.note


def test_growth_with_age_is_measured_inside_a_reference_of_three_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_identifiers, "MIN_TURNOVER_ROWS", 3)
    # Windows 0, 1, 2. Window 2: a c e f. Against windows 0-1 (a b c d) e and f are new: 50%.
    # Against window 0 alone (a b) c is new too: 75%. Of the 2 rows seen with window 1 (a, c),
    # 1 turned unseen when it was left out: growth 0.5.
    ref = ids("a", "b", "a", "b", "c", "d", "c", "a", "a", "c", "e", "f")
    slots = np.repeat([0.0, 1.0, 2.0], 4)
    p = identifier_profile(ref, np.arange(12), slots)
    assert p.churn == pytest.approx(0.5) and p.growth == pytest.approx(0.5)
    # Two windows past the end: 1 - (1 - 0.5) * (1 - 0.5) = 75% expected.
    window = ids(*[f"n{i}" for i in range(70)], *(["a"] * 30))
    assert unseen_verdict(p, window, 0.01, elapsed=2).churn == pytest.approx(0.75)
    back = _identifiers.IdentifierProfile.from_dict(p.to_dict())
    assert back.growth == p.growth and back.end_slot == 2
