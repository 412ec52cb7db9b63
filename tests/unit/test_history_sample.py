"""History read window by window and sampled to the mix's row budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from retrain.config import Config
from retrain.data.history import (
    commit_history,
    history_row_budget,
    history_windows,
    load_history,
    read_history,
)
from retrain.data.io import content_sha256
from retrain.storage import LocalStorage
from retrain.training.mix import build_training_set
from tests.unit.test_ingest import config, events

WINDOWS, ROWS = 12, 60


def labelled(weeks: int, seed: int) -> pd.DataFrame:
    df = events(weeks=weeks, seed=seed)
    rng = np.random.default_rng(seed + 1)
    # Unequal classes, and a share that moves between weeks, so strata matter.
    df["churned"] = (rng.random(len(df)) < 0.1 + 0.05 * (df["week"] % 4)).astype("int64")
    return df


def store_with_history(tmp_path: Path) -> tuple[LocalStorage, pd.DataFrame]:
    store = LocalStorage(tmp_path / "store")
    df = labelled(WINDOWS, seed=3)
    df.loc[df["week"] == 4, "churned"] = 0  # a window with one class only
    for week, part in df.groupby("week"):
        part = part.iloc[: ROWS - int(week)].reset_index(drop=True)  # unequal window sizes
        commit_history(store, str(week), part, {"sha256": content_sha256(part)})
    return store, df


def with_seed(cfg: Config, seed: int) -> Config:
    return cfg.model_copy(update={"seed": seed})


def test_under_the_budget_everything_is_read_as_before(tmp_path: Path) -> None:
    store, _ = store_with_history(tmp_path)
    cfg = config()
    whole = load_history(store, cfg, "12")
    loaded = read_history(store, cfg, "12", max_rows=10_000)
    assert whole is not None and loaded.frame is not None and not loaded.sampled
    pd.testing.assert_frame_equal(loaded.frame, whole)
    assert len(whole) == sum(ROWS - w for w in range(WINDOWS))
    assert [w.rows for w in history_windows(store, cfg, "5")] == [60, 59, 58, 57, 56]


def test_over_the_budget_each_window_gives_its_share_per_label(tmp_path: Path) -> None:
    store, _ = store_with_history(tmp_path)
    cfg = config()
    whole = load_history(store, cfg, "12")
    assert whole is not None
    budget = 200
    loaded = read_history(store, cfg, "12", max_rows=budget)
    got = loaded.frame
    assert got is not None and loaded.sampled and len(got) == budget
    assert loaded.notes() == {
        "windows": WINDOWS,
        "stored_rows": len(whole),
        "row_budget": budget,
        "sampled": True,
        "loaded_rows": budget,
    }
    # Every sampled row is a stored row, unchanged, and windows keep their stored order.
    merged = got.merge(whole, on=list(whole.columns), how="left", indicator=True)
    assert (merged["_merge"] == "both").all()
    assert got["week"].is_monotonic_increasing
    share = budget / len(whole)
    for week, part in whole.groupby("week"):
        mine = got[got["week"] == week]
        assert abs(len(mine) - len(part) * share) <= 1
        for label, rows in part.groupby("churned"):
            expected = len(rows) * len(mine) / len(part)
            assert abs(int((mine["churned"] == label).sum()) - expected) <= 1
        assert mine["id"].is_unique


def test_the_same_seed_gives_the_same_sample(tmp_path: Path) -> None:
    store, _ = store_with_history(tmp_path)
    cfg = config()
    first = read_history(store, cfg, "12", max_rows=150).frame
    again = read_history(store, cfg, "12", max_rows=150).frame
    other = read_history(store, with_seed(cfg, cfg.seed + 1), "12", max_rows=150).frame
    assert first is not None and again is not None and other is not None
    assert content_sha256(first) == content_sha256(again)
    assert set(first["id"]) != set(other["id"])


def test_the_budget_covers_what_the_mix_draws(tmp_path: Path) -> None:
    store, _ = store_with_history(tmp_path)
    cfg = config()
    cfg = cfg.model_copy(
        update={
            "training": cfg.training.model_copy(
                update={"history_holdout_rows": 10, "historical_share": 0.5}
            ),
            "evaluation": cfg.evaluation.model_copy(update={"min_rows": 5}),
        }
    )
    new = labelled(13, seed=9)
    new = new[new["week"] == 12].reset_index(drop=True).head(40)
    budget = history_row_budget(cfg, len(new))
    loaded = read_history(store, cfg, "12", max_rows=budget)
    assert loaded.sampled  # the budget is smaller than the stored history ...
    ts = build_training_set(new, loaded.frame, cfg, cfg.seed)
    p = ts.provenance
    # ... yet the mix gets every history row it asks for, and the full holdout.
    assert p["history"]["cap"] is None
    assert p["history_rows"] == p["history"]["requested_rows"] > 0
    assert p["history_holdout_rows"] == 10


def _training(cfg: Config, **update: object) -> Config:
    return cfg.model_copy(update={"training": cfg.training.model_copy(update=update)})


def test_the_weighted_mix_reads_all_history_unless_capped(tmp_path: Path) -> None:
    store, _ = store_with_history(tmp_path)
    stored = sum(ROWS - w for w in range(WINDOWS))
    sample = _training(config(), historical_share=0.5, history_holdout_rows=10)
    assert history_row_budget(sample, 40) < stored  # the sampling mix needs a part only
    weighted = _training(sample, mix="weighted", max_train_rows=None)
    assert history_row_budget(weighted, 40) is None  # ... the weighted one all of it
    # Unless the rows one training fits on are capped (by default): then up to that cap.
    default = history_row_budget(_training(weighted, max_train_rows=1_000_000), 40)
    assert default is not None and 1_000_000 <= default <= 1_000_000 / 0.8 * 1.1 + 1

    loaded = read_history(store, weighted, "12", max_rows=history_row_budget(weighted, 40))
    assert loaded.frame is not None and len(loaded.frame) == stored and not loaded.sampled
    capped = _training(weighted, max_history_rows=100)
    budget = history_row_budget(capped, 40)
    assert budget is not None and budget >= 100
    # The weighted mix then trains on exactly the capped number of history rows.
    loaded = read_history(store, capped, "12", max_rows=budget)
    new = labelled(13, seed=9)
    new = new[new["week"] == 12].reset_index(drop=True).head(40)
    ts = build_training_set(new, loaded.frame, capped, capped.seed)
    assert ts.provenance["history_rows"] == 100


def test_the_cap_bounds_the_budget_of_a_continuous_replay_too() -> None:
    # A million-row window: the 80/20 mix would ask 4 million history rows; the cap gives
    # 1 million, divided by the training share with a tenth's margin. A continuous replay
    # (same share) is capped alike: it fits through the same mix.
    cfg = _training(config(), max_train_rows=1_000_000)
    budget = history_row_budget(cfg, 1_000_000)
    on = cfg.model_copy(update={"continuous": cfg.continuous.model_copy(update={"enabled": True})})
    assert budget == history_row_budget(on, 1_000_000) == round(1_000_000 / 0.8 * 1.1)


def test_min_train_rows_raises_the_budget(tmp_path: Path) -> None:
    cfg = _training(config(), historical_share=0.5, history_holdout_rows=10)
    plain = history_row_budget(cfg, 40)
    raised = history_row_budget(_training(cfg, min_train_rows=600), 40)
    assert plain is not None and raised is not None
    # 40 new rows keep 32 for training: the other 568 must come from history's training rows.
    assert raised >= 568 / (1 - cfg.training.evaluation_share) > plain


def commit_labels(store: LocalStorage, labels: dict[int, list[int]], seed: int) -> None:
    """One window per entry of `labels`, its rows holding those labels in a seeded order."""
    rng = np.random.default_rng(seed)
    for week, churned in labels.items():
        n = len(churned)
        part = pd.DataFrame(
            {
                "id": [f"w{week}-{i:04d}" for i in range(n)],
                "week": week,
                "amount": np.round(rng.uniform(0, 100, n), 2),
                "visits": rng.integers(1, 11, n),
                "plan": np.where(rng.random(n) < 0.7, "basic", "pro"),
                "score": np.round(rng.random(n), 3),
                "churned": rng.permutation(np.asarray(churned, dtype="int64")),
            }
        )
        commit_history(store, str(week), part, {"sha256": content_sha256(part)})


def test_a_rare_label_of_a_window_keeps_a_row_when_the_sample_has_room(tmp_path: Path) -> None:
    # Two windows of 1,000 rows, sampled to 100 each: the first one's labels 600 / 397 / 3
    # have shares 60, 39.7 and 0.3, and by largest remainders alone the 0.3 lost its row.
    store = LocalStorage(tmp_path / "store")
    labels = {0: [0] * 600 + [1] * 397 + [2] * 3, 1: [0] * 700 + [1] * 300}
    commit_labels(store, labels, seed=5)
    loaded = read_history(store, config(), "2", max_rows=200)
    got = loaded.frame
    assert got is not None and loaded.sampled and len(got) == 200
    first = got[got["week"] == 0]["churned"].value_counts().to_dict()
    assert len(got[got["week"] == 0]) == 100 and first.get(2, 0) >= 1, first
    # The other labels stay within a row of their share; the second window is as before.
    assert abs(first[0] - 60) <= 1 and abs(first[1] - 39.7) <= 1
    assert got[got["week"] == 1]["churned"].value_counts().to_dict() == {0: 70, 1: 30}


def test_a_tiny_window_keeps_a_row_of_each_label_when_the_sample_has_room(tmp_path: Path) -> None:
    # Ten windows of 5,000 rows and one of 3 holding the only rows of label 2, sampled to
    # 1,000: the tiny window's share is 0.06 of a row, and by largest remainders over the
    # windows it got none, so label 2 never reached training.
    store = LocalStorage(tmp_path / "store")
    labels = {w: [0] * (2500 + 40 * w) + [1] * (2500 - 40 * w) for w in range(10)}
    labels[10] = [2, 2, 2]
    commit_labels(store, labels, seed=8)
    cfg = config()
    loaded = read_history(store, cfg, "11", max_rows=1000)
    got = loaded.frame
    assert got is not None and loaded.sampled and len(got) == 1000
    kept = got.groupby(["week", "churned"]).size()
    assert len(kept) == 21 and kept.min() >= 1  # every label of every window
    assert kept[(10, 2)] == 1
    # The big windows stay within a row of their share (100 each, 0.06 short in all).
    per_window = got.groupby("week").size()
    assert all(abs(per_window[w] - 5000 * 1000 / 50_003) <= 1 for w in range(10))
    again = read_history(store, cfg, "11", max_rows=1000).frame
    assert again is not None and content_sha256(again) == content_sha256(got)


def test_without_room_for_each_window_s_labels_each_label_of_the_history_keeps_a_row(
    tmp_path: Path,
) -> None:
    # 21 (window, label) pairs: a sample of 5 rows cannot hold one of each, but can hold each
    # of the 3 labels; one of 2 rows can hold neither, and is drawn by shares alone.
    store = LocalStorage(tmp_path / "store")
    labels = {w: [0] * 300 + [1] * 200 for w in range(10)}
    labels[10] = [2, 2, 2]
    commit_labels(store, labels, seed=9)
    cfg = config()
    got = read_history(store, cfg, "11", max_rows=5).frame
    assert got is not None and len(got) == 5
    assert sorted(set(got["churned"])) == [0, 1, 2]
    few = read_history(store, cfg, "11", max_rows=2).frame
    assert few is not None and len(few) == 2 and 2 not in set(few["churned"])
