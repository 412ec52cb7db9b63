"""The arrival check: provisional labels are used only where a label's arrival does not depend
on its value, judged on the run's own labelled window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.backtest import PolicySpec
from retrain.backtest.replay import replay_policy
from retrain.data.io import from_parquet_bytes
from retrain.labels import Reference, check_arrival, find_reference
from retrain.labels._arrival import ODDS_TOLERANCE
from retrain.steps._provisional import provisional_key
from retrain.storage import open_storage
from tests.unit.test_provisional_labels import ROWS, WEEKS, config, run_label, write_stream


def reference(
    final: np.ndarray, early: list[np.ndarray], coverage: float = 1.0, settled: bool = True
) -> Reference:
    return Reference(
        "0",
        round(len(final) / coverage),
        coverage,
        pd.Series(final),
        [(str(k + 1), pd.Series(e)) for k, e in enumerate(early)],
        settled,
    )


def classes(n: int, rate: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).uniform(size=n) < rate).astype(int)


def subsets(values: np.ndarray, shares: list[float], seed: int) -> list[np.ndarray]:
    """Random subsets of `values` of the given shares: early labels that are a fair sample."""
    rng = np.random.default_rng(seed)
    return [values[rng.uniform(size=len(values)) < s] for s in shares]


def test_a_fair_source_passes_and_one_class_first_is_refused() -> None:
    y = classes(4000, 0.05, 1)
    fair = check_arrival("classification", reference(y, subsets(y, [0.1, 0.3, 0.6], 2)))
    assert fair.fair and fair.window == "0" and "no bias beyond the tolerance" in fair.detail
    # The early labels are all positives.
    positives = y[y == 1]
    biased = check_arrival("classification", reference(y, [positives[:40], positives[:120]]))
    assert not biased.fair and biased.effect > ODDS_TOLERANCE
    assert "'1' is 100.0% of the" in biased.detail
    assert "no provisional window is used" in biased.detail


def test_a_bias_within_the_tolerance_is_let_through_and_one_beyond_it_is_shown() -> None:
    rng = np.random.default_rng(7)
    y = classes(200_000, 0.3, 2)
    # Positives 1.1 times as likely to be known early: odds about 1.14 times as high.
    within = y[rng.uniform(size=len(y)) < np.where(y == 1, 0.33, 0.3)]
    check = check_arrival("classification", reference(y, [within]))
    assert check.fair and 1.05 < check.effect < ODDS_TOLERANCE
    # 1.5 times: odds about 1.6 times, shown on these rows.
    beyond = y[rng.uniform(size=len(y)) < np.where(y == 1, 0.45, 0.3)]
    assert not check_arrival("classification", reference(y, [beyond])).fair


def test_the_tolerance_is_on_the_odds_whatever_the_class_share() -> None:
    # The same arrival (positives 1.15 times as likely to be known early) is within the
    # tolerance at 5% and at 40% positives, though it moves a rare class's share further.
    rng = np.random.default_rng(11)
    for rate in (0.05, 0.4):
        y = classes(400_000, rate, 3)
        early = y[rng.uniform(size=len(y)) < np.where(y == 1, 0.345, 0.3)]
        assert check_arrival("classification", reference(y, [early])).fair, rate


def test_a_reference_still_labelling_widens_the_range_instead_of_hiding_the_bias() -> None:
    rng = np.random.default_rng(9)
    y = classes(20_000, 0.2, 3)
    early = y[rng.uniform(size=len(y)) < np.where(y == 1, 0.45, 0.3)]  # odds 1.6 times
    assert not check_arrival("classification", reference(y, [early])).fair
    # Its labels cover 60% of its events and more are coming: the true share could then be
    # anywhere from 12% to 52%.
    widened = check_arrival("classification", reference(y, [early], 0.6, settled=False))
    assert widened.fair and widened.coverage == 0.6 and "still arriving" in widened.detail
    # Settled at 60% (the rest never come: they stay out of history too), it is shown.
    assert not check_arrival("classification", reference(y, [early], 0.6, settled=True)).fair


def test_regression_is_judged_on_ranks_so_a_skewed_target_is_no_different() -> None:
    rng = np.random.default_rng(5)
    for y in (rng.normal(100.0, 20.0, 3000), rng.lognormal(0.0, 2.0, 3000)):
        assert check_arrival("regression", reference(y, subsets(y, [0.02, 0.2, 0.5], 6))).fair
        cheap = np.sort(y)[:600]  # the cheapest sell first
        biased = check_arrival("regression", reference(y, [cheap]))
        assert not biased.fair and "at or below the median" in biased.detail


def test_a_check_that_cannot_be_made_uses_no_provisional_window() -> None:
    check = check_arrival(
        "classification", None, "no window before the provisional ones has a label"
    )
    assert not check.fair and check.window is None and check.detail.startswith("not checked")
    empty = check_arrival("classification", reference(np.array([], dtype=int), []))
    assert not empty.fair and "has no label" in empty.detail


def _stream(known: dict[str, tuple[int, int]]) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Windows of 10 events; `known`: per window, how many are labelled and when."""
    events = {
        w: pd.DataFrame({"id": [f"w{w}-{i}" for i in range(10)], "week": int(w), "x": 0.0})
        for w in known
    }
    labels = pd.DataFrame(
        [
            {"id": f"w{w}-{i}", "y": i % 2, "known_week": at}
            for w, (n, at) in known.items()
            for i in range(n)
        ]
    )
    return events, labels


def test_the_reference_is_the_newest_settled_window(tmp_path: Path) -> None:
    cfg = config(tmp_path)  # labels.min_coverage 0.9
    # As of week 4, with window 3 provisional (it started at 3): windows 2 and 1 got all their
    # labels at week 4; window 0 got 9 of 10 by week 2 and none since (one never comes).
    events, labels = _stream({"2": (10, 4), "1": (10, 4), "0": (9, 2)})
    args = (events.__getitem__, lambda _: labels, 4, ["3"])
    ref, _ = find_reference(cfg, ["2", "1", "0"], *args)
    # Complete windows are settled whenever their labels came: the newest one.
    assert ref is not None and (ref.window, ref.coverage, ref.settled) == ("2", 1.0, True)
    # Windows still gaining labels, or short of the best coverage, are not settled.
    events, labels = _stream({"2": (5, 4), "1": (9, 4), "0": (9, 2)})
    ref, _ = find_reference(cfg, ["2", "1", "0"], events.__getitem__, lambda _: labels, 4, ["3"])
    assert ref is not None and (ref.window, ref.coverage, ref.settled) == ("0", 0.9, True)
    assert ref.known == 1.0  # its nine labels are all it will have
    # Below labels.min_coverage nothing is settled, however still: the best covered is used,
    # its unlabelled events open.
    events, labels = _stream({"1": (9, 4), "0": (7, 2)})
    ref, _ = find_reference(cfg, ["1", "0"], events.__getitem__, lambda _: labels, 4, ["3"])
    assert ref is not None and (ref.window, ref.settled, ref.known) == ("1", False, 0.9)
    # Window 3's place (a start 1 before the run's time): window 1's labels known a week after
    # its start, at week 2: none.
    assert [(w, len(v)) for w, v in ref.early] == [("3", 0)]
    # No window with a label: no reference, and why.
    events, labels = _stream({"1": (0, 4)})
    ref, why = find_reference(cfg, ["1"], events.__getitem__, lambda _: labels, 4, ["3"])
    assert ref is None and "has a label" in why


# --- in the label step ----------------------------------------------------------------------------


def write_biased_stream(tmp: Path) -> None:
    """`write_stream`'s events and labels, with each positive label known one week after its
    event and each negative three weeks after: the labels known early are all positive."""
    write_stream(tmp)
    labels = pd.read_parquet(tmp / "labels.parquet")
    week = labels["id"].str.extract(r"w(\d+)-")[0].astype(int)
    labels["known_week"] = week + np.where(labels["y"] == 1, 1, 3)
    labels.to_parquet(tmp / "labels.parquet")


def test_the_label_step_refuses_provisional_windows_on_a_biased_source(tmp_path: Path) -> None:
    write_biased_stream(tmp_path)
    cfg = config(tmp_path, provisional_windows=3)
    outcome = run_label(tmp_path, cfg, "0", "r1", "3")
    kept = outcome.details["provisional"]
    assert kept["rows"] == 0 and kept["arrival"]["fair"] is False
    assert "not a fair sample (arrival check)" in outcome.summary
    assert kept["arrival"]["reference_window"] == "0"
    assert kept["arrival"]["reference_coverage"] == 1.0
    assert all("arrival check" in w["skipped"] for w in kept["windows"])
    rows, _ = from_parquet_bytes(open_storage(cfg.storage_root).read_bytes(provisional_key("r1")))
    assert rows.empty
    # Trusting the source (check_arrival off) uses them: week 1 and 2's positives.
    trusted = config(tmp_path / "t", provisional_windows=3, check_arrival=False)
    for name in ("events.parquet", "labels.parquet"):
        (tmp_path / "t").mkdir(exist_ok=True)
        (tmp_path / "t" / name).write_bytes((tmp_path / name).read_bytes())
    used = run_label(tmp_path / "t", trusted, "0", "r1", "3").details["provisional"]
    labels = pd.read_parquet(tmp_path / "labels.parquet")
    week = labels["id"].str.extract(r"w(\d+)-")[0].astype(int)
    assert used["rows"] == int(((week.isin([1, 2])) & (labels["y"] == 1)).sum()) > 0
    assert used["arrival"] is None


def test_the_label_step_uses_provisional_windows_on_a_fair_source(tmp_path: Path) -> None:
    write_stream(tmp_path)  # half of each week's labels a week late, half three: not by value
    cfg = config(tmp_path, provisional_windows=3)
    kept = run_label(tmp_path, cfg, "0", "r1", "3").details["provisional"]
    assert kept["rows"] == ROWS and kept["arrival"]["fair"] is True
    assert "no bias beyond the tolerance" in kept["arrival"]["detail"]


def relabel(tmp: Path, how: str) -> None:
    """`write_stream`'s labels rewritten: "undated", negatives without a label time (known at
    once, as the join counts them) and positives three weeks late; "corrected", every event
    labelled 0 a week after it and its positives corrected to 1 three weeks after."""
    write_stream(tmp)
    labels = pd.read_parquet(tmp / "labels.parquet")
    week = labels["id"].str.extract(r"w(\d+)-")[0].astype(int)
    if how == "undated":
        labels["known_week"] = np.where(labels["y"] == 1, week + 3, np.nan)
    else:
        first = labels.assign(y=0, known_week=week + 1)
        later = labels[labels["y"] == 1].assign(known_week=week[labels["y"] == 1] + 3)
        labels = pd.concat([first, later], ignore_index=True)
    labels.to_parquet(tmp / "labels.parquet")


@pytest.mark.parametrize("how", ["undated", "corrected"])
def test_undated_and_corrected_labels_are_re_enacted_as_the_join_reads_them(
    tmp_path: Path, how: str
) -> None:
    relabel(tmp_path, how)
    cfg = config(tmp_path, provisional_windows=3)
    kept = run_label(tmp_path, cfg, "0", "r1", "3").details["provisional"]
    # Early on, only negatives are known (undated), or every label still reads 0 (corrected).
    assert kept["arrival"]["fair"] is False and kept["rows"] == 0
    assert "'0' is 100.0% of the" in kept["arrival"]["detail"]


def test_a_provisional_replay_on_a_biased_source_uses_none_and_says_why(tmp_path: Path) -> None:
    write_biased_stream(tmp_path)
    cfg = config(tmp_path)
    windows = [str(w) for w in range(WEEKS)]
    prov = replay_policy(cfg, PolicySpec("always", mix="provisional"), windows, tmp_path / "out")
    trained = [r for r in prov.windows if r.trained_on is not None]
    assert trained and all(r.provisional_rows == 0 for r in prov.windows)
    for rec in trained:
        assert any(
            n.startswith("provisional windows not used: the labels known early are not")
            for n in rec.notes
        )


def test_labels_dated_before_their_event_do_not_stop_the_re_enactment(tmp_path: Path) -> None:
    # One label of window 0 in 200 is dated before its event: a warning for the window's own
    # join (0.5%), but among the labels known a week after the window started it is far more
    # than 1%. The re-enactment reads labels without the join's checks.
    write_stream(tmp_path)
    labels = pd.read_parquet(tmp_path / "labels.parquet")
    labels.loc[labels["id"] == "w0-0", "known_week"] = -1
    labels.to_parquet(tmp_path / "labels.parquet")
    cfg = config(tmp_path, provisional_windows=3)
    kept = run_label(tmp_path, cfg, "0", "r1", "3").details["provisional"]
    assert kept["arrival"]["fair"] is True and kept["rows"] == ROWS
