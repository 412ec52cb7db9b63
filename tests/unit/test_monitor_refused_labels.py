"""Labels the label join refuses are not labels still to come: the monitor names the refusal
and its reason, and never passes a measurement of another window off as the refused one's.

Four daily windows of 500 events, each labelled an hour after its event; the champion is
trained on day 0. Checked at `NOW`, every window is labelled, so the checked window is the
newest labelled one, until its labels are spoiled: 5% dated before their event (the join
refuses more than 1%), or, for a regression target, a few infinite ones.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from retrain.cli.monitor import _summary
from retrain.config import Config, load_config
from retrain.launchers import NoLauncher
from retrain.storage import open_storage
from retrain.triggers.controller import TriggerController
from retrain.triggers.monitor import CheckResult, Monitor
from tests.unit.test_monitor_scores import register_champion

DAY0 = pd.Timestamp("2024-04-01", tz="UTC")
ROWS = 500
NOW = datetime(2024, 4, 6, tzinfo=timezone.utc)


def day(d: int) -> str:
    return (DAY0 + pd.Timedelta(days=d)).strftime("%Y-%m-%d")


def write_case(root: Path, task: str) -> Config:
    rng = np.random.default_rng(11)
    n = ROWS * 4
    d = np.repeat(np.arange(4), ROWS)
    t = DAY0 + pd.to_timedelta(d, unit="D") + pd.to_timedelta(rng.uniform(0, 20, n), unit="h")
    a, b = rng.normal(size=n), rng.normal(size=n)
    signal = a + 0.5 * b + rng.normal(0, 0.3, n)
    y = signal if task == "regression" else (signal > 0).astype(int)
    events = pd.DataFrame({"id": np.arange(n), "t": t, "a": a, "b": b})
    labels = pd.DataFrame({"id": events["id"], "y": y, "known_at": t + pd.Timedelta(hours=1)})
    for name, frame in (("events", events), ("labels", labels)):
        (root / name).mkdir()
        frame.to_parquet(root / name / "part.parquet")
    cfg = {
        "name": "toy",
        "task": task,
        "target": "y",
        "storage_root": "store",
        "seed": 3,
        "data": {
            "uri": "events",
            "id_column": "id",
            "time_column": "t",
            "time_kind": "timestamp",
            "window_size": "1d",
            "features": {"a": "numeric", "b": "numeric"},
        },
        "labels": {
            "uri": "labels",
            "id_column": "id",
            "label_column": "y",
            "time_column": "known_at",
            "min_coverage": 0.8,
        },
        "model": {
            "estimator": "sklearn.linear_model.LinearRegression"
            if task == "regression"
            else "sklearn.linear_model.LogisticRegression"
        },
        "evaluation": {"metric": "rmse" if task == "regression" else "roc_auc"},
        "deploy": {"deployment_name": "toy", "gitops_repo": "gitops"},
        "triggers": {"cooldown": "0s", "performance_drop": 0.05},
    }
    (root / "toy.yaml").write_text(yaml.safe_dump(cfg))
    loaded = load_config(root / "toy.yaml")
    register_champion(loaded, root / "w0", day(0))
    return loaded


@pytest.fixture
def toy(tmp_path: Path) -> Config:
    return write_case(tmp_path, "classification")


def spoil(cfg: Config, days: list[int], change: Callable[[pd.DataFrame], pd.DataFrame]) -> int:
    """Apply `change` to the labels of the events of `days`; how many labels it changed."""
    events = pd.read_parquet(cfg.data.uri)
    path = Path(cfg.labels.uri) / "part.parquet"
    labels = pd.read_parquet(path)
    on_days = events["t"].dt.floor("D").isin([DAY0 + pd.Timedelta(days=d) for d in days])
    inside = labels["id"].isin(events.loc[on_days, "id"])
    changed = change(labels[inside].copy())
    labels.loc[changed.index] = changed
    labels.to_parquet(path)
    return len(changed)


def leak(frame: pd.DataFrame) -> pd.DataFrame:
    """Every 20th label dated a day before its event."""
    out = frame.iloc[::20].copy()
    out["known_at"] = out["known_at"] - pd.Timedelta(days=1)
    return out


def check(cfg: Config, window: str, **kw: object) -> CheckResult:
    store = open_storage(cfg.storage_root)
    ctl = TriggerController(store, cfg.name, cfg.triggers, NoLauncher(), clock=lambda: NOW)
    return Monitor(cfg, ctl, **kw).check(window)  # type: ignore[arg-type]


def kinds(result: CheckResult) -> list[str]:
    return [o.decision.signal.kind for o in result.outcomes]


def test_the_checked_windows_refused_labels_are_named_and_an_older_window_measured_says_so(
    toy: Config,
) -> None:
    assert check(toy, day(3)).performance["window"] == day(3)  # its labels, unspoiled, count
    leaked = spoil(toy, [3], leak)
    result = check(toy, day(3))
    perf = result.performance
    # Measured where the labels pass, and named as an older window, not the checked one.
    assert (perf["window"], perf["measured_on"]) == (day(2), "newest labelled window")
    assert "drop" in perf
    [reason] = perf["refused"].values()
    assert list(perf["refused"]) == [day(3)]
    assert f"{leaked} labels" in reason and "dated before their event" in reason
    text = result.markdown()
    assert f"of window {day(2)} (newest labelled window" in text
    assert f"Labels refused by the label join, left out of the search: {day(3)} (" in text
    assert f"labels refused by the label join: {day(3)} (" in _summary(result)
    # The other signals are measured as usual.
    assert result.drift is not None and "drift" in kinds(result)


def test_with_no_other_window_to_search_refused_labels_measure_nothing(toy: Config) -> None:
    spoil(toy, [3], leak)
    result = check(toy, day(3), labelled_lookback=1)
    perf = result.performance
    assert (perf["window"], perf["measured_on"]) == (day(3), "checked window")
    assert "drop" not in perf and "coverage" not in perf  # no 0% that reads as "not arrived"
    assert perf["note"] == "not measured: the label join refused the labels"
    assert "the checked window's labels were refused" in perf["search"]
    assert list(perf["refused"]) == [day(3)]
    assert "performance" not in kinds(result)
    assert result.drift is not None and "drift" in kinds(result)


def test_older_windows_with_refused_labels_are_passed_over_and_named(toy: Config) -> None:
    spoil(toy, [2, 3], leak)
    perf = check(toy, day(3)).performance
    assert (perf["window"], perf["measured_on"]) == (day(1), "newest labelled window")
    assert list(perf["refused"]) == [day(3), day(2)]  # newest first


def test_infinite_regression_labels_are_refused_not_taken_for_missing(tmp_path: Path) -> None:
    cfg = write_case(tmp_path, "regression")

    def infinite(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.iloc[:3].copy()
        out["y"] = np.inf
        return out

    spoil(cfg, [3], infinite)
    perf = check(cfg, day(3)).performance
    assert (perf["window"], perf["measured_on"]) == (day(2), "newest labelled window")
    assert "3 labels in 'y' are infinite" in perf["refused"][day(3)]


@pytest.mark.parametrize("state", ["no directory", "an empty directory"])
def test_a_label_source_with_no_file_yet_is_no_labels_not_a_refusal(
    toy: Config, state: str
) -> None:
    """A new deployment: a champion trained elsewhere (on a backfill) serves, events arrive,
    no label has been written yet and none was ever committed to this model's history."""
    import shutil

    shutil.rmtree(toy.labels.uri)
    shutil.rmtree(Path(toy.storage_root) / "datasets")  # the champion's own training run
    if state == "an empty directory":
        Path(toy.labels.uri).mkdir()
    result = check(toy, day(3))
    perf = result.performance
    assert "refused" not in perf and "unreadable" not in perf
    assert perf["note"].startswith("no labels yet: data source ")
    assert toy.labels.uri in perf["note"]
    assert perf["coverage"] == 0.0 and perf["measured_on"] == "checked window"
    assert "labels refused" not in _summary(result)
    assert result.drift is not None and "drift" in kinds(result)


def test_a_label_source_gone_after_labels_were_committed_is_named_as_a_fault(
    toy: Config,
) -> None:
    import shutil

    from retrain import steps

    text, run = toy.to_yaml(), "r1"
    work = Path(toy.storage_root).parent / "w1"
    steps.ingest(text, day(1), run, str(work / "d.parquet"))
    steps.label(text, day(1), run, str(work / "d.parquet"), str(work / "l.parquet"))
    shutil.rmtree(toy.labels.uri)  # labelled history exists, then the source goes
    perf = check(toy, day(3)).performance
    assert "data source not found" in perf["refused"][day(3)]
    assert "labelled history" in perf["refused"][day(3)]
