"""The monitor judges the champion on the newest window whose labels known as of its clock
reach labels.min_coverage, as the backtest's drift policy does.

Seven daily windows. Labels come an hour after their event for days 0-3. Day 4's are wrong
for the champion (the concept flipped: every label inverted); 60% of them are dated the next
morning, the rest two days later. Day 5 has 20% of its labels by then, day 6 none; both get the
rest days later. At `EARLY` (day 6, noon) the newest window whose known labels cover 80% is
day 3; at `LATE` (day 7) it is day 4.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import retrain.triggers._labelled_window as labelled_window
from retrain.backtest.scoring import labelled_check
from retrain.config import Config, load_config
from retrain.data.windows import parse_as_of
from retrain.drift import PROFILE_FILE, ReferenceProfile, detect_drift
from retrain.errors import ValidationError
from retrain.launchers import NoLauncher
from retrain.registry import MODEL_CARD_FILE, MODEL_FILE, Registry
from retrain.storage import Storage, open_storage
from retrain.training.artifact import load_registered_model
from retrain.training.model import predict_scores
from retrain.triggers._scores import scores_cache_key
from retrain.triggers.controller import Outcome, TriggerController
from retrain.triggers.metrics import MonitorMetrics
from retrain.triggers.monitor import CheckResult, Monitor, observe_result
from retrain.triggers.policy import PolicyState, Signal
from tests.unit.test_monitor_scores import Calls, register_champion

DAY0 = pd.Timestamp("2024-03-01", tz="UTC")
ROWS = 400
EARLY = datetime(2024, 3, 7, 12, 0, tzinfo=timezone.utc)
LATE = datetime(2024, 3, 8, 0, 0, tzinfo=timezone.utc)


def day(d: int) -> str:
    return (DAY0 + pd.Timedelta(days=d)).strftime("%Y-%m-%d")


def _case(root: Path) -> Path:
    rng = np.random.default_rng(5)
    n = ROWS * 7
    d = np.repeat(np.arange(7), ROWS)
    t = DAY0 + pd.to_timedelta(d, unit="D") + pd.to_timedelta(rng.uniform(0, 20, n), unit="h")
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = (a + 0.5 * b + rng.normal(0, 0.3, n) > 0).astype(int)
    y = np.where(d == 4, 1 - y, y)  # day 4: the concept flipped
    at = pd.DatetimeIndex(t).asi8.copy()

    def on(days: float) -> int:
        return int((DAY0 + pd.Timedelta(days=days)).value)

    share = rng.random(n)
    known = at + pd.Timedelta(hours=1).value  # days 0-3: an hour after the event
    known[d == 4] = np.where(share[d == 4] < 0.6, on(5.25), on(6.75))
    known[d == 5] = np.where(share[d == 5] < 0.2, on(6 + 1 / 24), on(10))
    known[d == 6] = on(10)
    events = pd.DataFrame({"id": np.arange(n), "t": t, "a": a, "b": b})
    labels = pd.DataFrame({"id": events["id"], "y": y, "known_at": pd.to_datetime(known, utc=True)})
    labels = labels[rng.random(n) < 0.95]  # 5% never labelled
    for name, frame in (("events", events), ("labels", labels)):
        (root / name).mkdir()
        frame.to_parquet(root / name / "part.parquet")
    cfg = {
        "name": "toy",
        "task": "classification",
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
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "evaluation": {"metric": "roc_auc"},
        "deploy": {"deployment_name": "toy", "gitops_repo": "gitops"},
        "triggers": {"cooldown": "0s", "performance_drop": 0.05},
    }
    path = root / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The case with a champion trained on day 0 and registered with its profile."""
    root = tmp_path_factory.mktemp("toy")
    cfg = load_config(_case(root))
    register_champion(cfg, root / "w0", day(0))
    return root


@pytest.fixture
def toy(trained: Path, tmp_path: Path) -> Config:
    shutil.copytree(trained, tmp_path / "case")
    return load_config(tmp_path / "case" / "toy.yaml")


def check(
    cfg: Config,
    window: str,
    now: datetime,
    *,
    controller: TriggerController | None = None,
    **kw: Any,
) -> CheckResult:
    """One check of `window` by a fresh monitor whose clock reads `now`."""
    store = open_storage(cfg.storage_root)
    ctl = controller or TriggerController(
        store, cfg.name, cfg.triggers, NoLauncher(), clock=lambda: now
    )
    return Monitor(cfg, ctl, **kw).check(window)


def window_events(cfg: Config, d: int) -> pd.DataFrame:
    events = pd.read_parquet(cfg.data.uri)
    start = DAY0 + pd.Timedelta(days=d)
    inside = (events["t"] >= start) & (events["t"] < start + pd.Timedelta(days=1))
    return events[inside].reset_index(drop=True)


def coverage(cfg: Config, d: int, now: datetime) -> float:
    """Share of day `d`'s events with a label dated at or before `now` (from the files)."""
    labels = pd.read_parquet(cfg.labels.uri)
    known = labels[labels["known_at"] <= pd.Timestamp(now)]
    return float(window_events(cfg, d)["id"].isin(known["id"]).mean())


def outcome(result: CheckResult, kind: str) -> tuple[bool, str, str]:
    [o] = [o for o in result.outcomes if o.decision.signal.kind == kind]
    return o.decision.launch, o.decision.rule, o.decision.signal.snapshot


def test_an_older_window_with_enough_labels_is_measured_and_its_drop_launches(
    toy: Config,
) -> None:
    assert coverage(toy, 5, LATE) < 0.3 < 0.9 < coverage(toy, 4, LATE)  # the data's delays
    result = check(toy, day(5), LATE)
    perf = result.performance
    assert (perf["window"], perf["measured_on"]) == (day(4), "newest labelled window")
    assert perf["coverage"] == pytest.approx(coverage(toy, 4, LATE))
    assert perf["rows"] == round(coverage(toy, 4, LATE) * ROWS)
    # Inverted labels: the champion ranks them backwards.
    assert perf["current"] < 0.3 < 0.8 < perf["reference"]
    assert perf["drop_lower"] > 0.4
    assert outcome(result, "performance") == (True, "performance", day(4))
    assert f"of window {day(4)} (newest labelled window" in result.markdown()
    # The signal names the launch the champion came from (its card's window): the catch-up
    # rule follows a chain through it.
    assert perf["champion_from"] == day(0)
    [signal] = [
        o.decision.signal for o in result.outcomes if o.decision.signal.kind == "performance"
    ]
    assert signal.details["champion_from"] == day(0)
    assert signal.details["current"] == perf["current"]
    # As in the backtest, the judged window's labelled drop counts toward the drift verdict.
    [drift] = [o for o in result.outcomes if o.decision.signal.kind == "drift"]
    assert drift.decision.signal.drifted
    assert "performance_drop" in drift.decision.signal.details["fired"]
    assert drift.decision.signal.details["labelled_fired"] is True
    assert drift.decision.signal.details["reference"] == perf["reference"]


def test_a_drift_launch_gives_way_to_the_labelled_drop_of_the_same_check(toy: Config) -> None:
    # One drifted window launches, and the next launch is an hour away: only one of the two
    # signals can launch. The drift signal's window (day 5) has 20% of its labels; the drop
    # was measured on day 4, whose labels are in: that run trains at once.
    path = Path(toy.storage_root).parent / "toy.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["triggers"] |= {"drift_windows": 1, "cooldown": "1h"}
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    result = check(cfg, day(5), LATE)
    assert outcome(result, "drift")[:2] == (False, "deferred")
    assert outcome(result, "performance") == (True, "performance", day(4))
    [drift] = [o.decision for o in result.outcomes if o.decision.signal.kind == "drift"]
    assert f"the labelled window {day(4)} launches instead" in drift.reason
    # The drift window counted before the launch re-armed the count, as when it launched.
    state = TriggerController(
        open_storage(cfg.storage_root), cfg.name, cfg.triggers, NoLauncher()
    ).load_state()[0]
    assert (state.drift_streak, state.drift_last_snapshot) == (0, day(5))
    assert state.catch_up == day(4)  # a confirmed labelled drop opens the chain

    # Once day 4 was launched, a drift launch no longer gives way to it (a duplicate).
    later = datetime(2024, 3, 8, 6, 0, tzinfo=timezone.utc)
    again = check(cfg, day(6), later + pd.Timedelta(hours=1).to_pytimedelta())
    assert outcome(again, "performance") == (False, "duplicate", day(4))
    assert outcome(again, "drift") == (True, "drift", day(6))


def test_labels_dated_after_the_clock_do_not_count(toy: Config) -> None:
    # At EARLY 60% of day 4's labels are known: day 3 is the newest window that qualifies.
    assert coverage(toy, 4, EARLY) < 0.8 < coverage(toy, 4, LATE)
    early = check(toy, day(6), EARLY).performance
    assert (early["window"], early["coverage"]) == (day(3), pytest.approx(coverage(toy, 3, EARLY)))
    assert early["drop_lower"] < 0.05  # day 3's labels fit the champion
    late = check(toy, day(6), LATE).performance
    assert (late["window"], late["coverage"]) == (day(4), pytest.approx(coverage(toy, 4, LATE)))


def test_without_a_labelled_window_in_the_look_back_the_checked_window_is_measured(
    toy: Config,
) -> None:
    # triggers.labelled_lookback: 2, from the config: days 6 and 5 only.
    triggers = toy.triggers.model_copy(update={"labelled_lookback": 2})
    result = check(toy.model_copy(update={"triggers": triggers}), day(6), LATE)
    perf = result.performance
    assert (perf["window"], perf["measured_on"], perf["coverage"]) == (
        day(6),
        "checked window",
        0.0,
    )
    assert "drop" not in perf and perf["note"] == "no labels for this window yet"
    assert perf["search"] == (
        f"no window of the 2 after {day(0)} (the champion's training window) up to {day(6)} "
        "has labels as of 2024-03-08T00:00:00Z reaching "
        "labels.min_coverage 80%: measured on the checked window with the labels it has"
    )
    assert "No window of the 2 after" in result.markdown()
    assert not [o for o in result.outcomes if o.decision.signal.kind == "performance"]


def test_a_label_delay_longer_than_the_look_back_deepens_the_monitors_search(toy: Config) -> None:
    # triggers.labelled_lookback 2 alone would search days 6 and 5 only (the test above); with
    # labels.delay 3 days the search goes one window past it, days 6 to 3, and finds day 4,
    # whose labels are in at LATE. The backtest's search goes as deep.
    triggers = toy.triggers.model_copy(update={"labelled_lookback": 2})
    labels = toy.labels.model_copy(update={"delay": "3d"})
    deep = toy.model_copy(update={"triggers": triggers, "labels": labels})
    perf = check(deep, day(6), LATE).performance
    assert (perf["window"], perf["coverage"]) == (day(4), pytest.approx(coverage(toy, 4, LATE)))
    assert perf["drop_lower"] > 0.05  # day 4's flipped concept is measured


def test_the_champion_is_judged_only_on_windows_after_the_one_it_trained_on(
    toy: Config, tmp_path: Path
) -> None:
    # A champion trained on day 3: at EARLY day 3 is the newest covered window, but the
    # champion trained on its rows, so its metric there is not evidence.
    register_champion(toy, tmp_path / "w3", day(3))
    early = check(toy, day(6), EARLY).performance
    assert early["measured_on"] == "checked window" and "drop" not in early
    assert f"after {day(3)} (the champion's training window)" in early["search"]
    # Once day 4 is labelled, the champion is judged there (and fails: its labels flipped).
    late = check(toy, day(6), LATE).performance
    assert (late["window"], late["measured_on"]) == (day(4), "newest labelled window")
    assert late["drop_lower"] > 0.4
    # A check of the window it trained on measures nothing.
    own = check(toy, day(3), LATE)
    assert "drop" not in own.performance
    assert own.performance["note"].startswith(f"not measured: the champion was trained on {day(3)}")
    assert not [o for o in own.outcomes if o.decision.signal.kind == "performance"]
    # With nothing measured, the drift signal still names the launch the serving champion
    # came from (its card's window): the drift back-off learns from it whether the last
    # drift launch was deployed.
    [drift] = [o.decision.signal for o in own.outcomes if o.decision.signal.kind == "drift"]
    assert drift.details["serving_from"] == day(3)
    assert drift.details["canary_from"] is None  # no canary in analysis
    assert drift.details["awaiting_labels"] == []  # no drift launch waits for its labels


def test_a_measurement_on_labels_below_the_coverage_is_reported_but_launches_nothing(
    toy: Config, tmp_path: Path
) -> None:
    # Right after a retrain on day 3: at EARLY no window after day 3 reaches the coverage, so
    # day 4 (checked) is measured on the 60% of its labels known, a flipped concept: a drop,
    # but on a subset that need not be the window (early labels may be a biased sample).
    register_champion(toy, tmp_path / "w3", day(3))
    result = check(toy, day(4), EARLY)
    perf = result.performance
    assert (perf["window"], perf["measured_on"]) == (day(4), "checked window")
    assert perf["coverage"] == pytest.approx(coverage(toy, 4, EARLY)) and perf["coverage"] < 0.8
    assert perf["drop_lower"] > 0.4  # measured and reported ...
    assert not [o for o in result.outcomes if o.decision.signal.kind == "performance"]  # ... only
    # Nor does it count as drift: with a hysteresis of one window, nothing launches.
    triggers = toy.triggers.model_copy(update={"drift_windows": 1})
    eager = check(toy.model_copy(update={"triggers": triggers}), day(4), EARLY)
    [drift] = [o for o in eager.outcomes if o.decision.signal.kind == "drift"]
    assert not drift.decision.signal.drifted and not drift.decision.launch
    assert "performance_drop" not in drift.decision.signal.details["fired"]
    assert not any(o.decision.launch for o in eager.outcomes)
    # The report, its JSON and the metric give the verdict the trigger counted, and name the
    # engine's own on the checked window.
    assert result.drift is not None and "performance_drop" in result.drift.fired
    assert result.drift.dataset_drifted and not result.drifted
    doc = result.to_dict()["drift"]
    assert (doc["trigger_drifted"], doc["trigger_signals"]) == (False, [])
    assert "performance_drop" in doc["fired"]
    text = result.markdown()
    assert "**Drift:** no dataset drift" in text
    assert "The engine on the checked window alone: performance_drop" in text
    metrics = MonitorMetrics(toy.name)
    observe_result(metrics, result)
    drifted = metrics.registry.get_sample_value(
        "retrain_drift_dataset_drifted", {"model": toy.name}
    )
    assert drifted == 0.0


def test_the_training_bound_counts_the_provisional_windows_a_champion_trained_on(
    toy: Config,
) -> None:
    card = {
        "version": "v",
        "parent": None,
        "created_at": "2024-03-05T00:00:00Z",
        "task": "classification",
        "target": "y",
        "features": {"a": "numeric"},
        "estimator": "e",
        "params": {},
        "seed": 0,
        "window": day(2),
        "provenance": {
            "provisional": {
                "windows": [
                    {"window": day(3), "labelled": 300},
                    {"window": day(4), "labelled": 40},
                    {"window": day(5), "skipped": "no label known yet"},
                    {"window": "not a window", "labelled": 9},  # skipped, not fatal
                ]
            }
        },
    }

    class Scorer:
        def read_file(self, version: str, name: str) -> bytes:
            return json.dumps(card).encode()

    assert labelled_window.champion_window(toy, Scorer(), "v") == day(4)  # type: ignore[arg-type]
    card["provenance"] = {}
    assert labelled_window.champion_window(toy, Scorer(), "v") == day(2)  # type: ignore[arg-type]


def test_a_second_check_on_the_same_labelled_window_is_a_duplicate(toy: Config) -> None:
    first = check(toy, day(5), LATE)
    assert outcome(first, "performance") == (True, "performance", day(4))
    # A newer window is checked (it has no label yet), but day 4 is still the newest labelled.
    later = datetime(2024, 3, 8, 6, 0, tzinfo=timezone.utc)
    second = check(toy, day(6), later)
    assert second.performance["window"] == day(4)
    assert outcome(second, "performance") == (False, "duplicate", day(4))


def test_the_monitor_and_the_backtest_measure_the_same_drop(toy: Config) -> None:
    perf = check(toy, day(5), LATE).performance
    registry = Registry(open_storage(toy.storage_root), toy.name)
    champion = registry.get_alias("champion").version
    assert champion is not None
    backtest = labelled_check(
        toy,
        registry,
        champion,
        load_registered_model(registry, champion),
        window_events(toy, 4),
        pd.read_parquet(toy.labels.uri),
        parse_as_of(toy.data, LATE.isoformat()),
    )
    assert backtest is not None
    measured = (perf["metric"], perf["reference"], perf["current"], perf["rows"])
    assert measured == (backtest.metric, backtest.reference, backtest.current, backtest.n)
    interval = (perf["drop"], perf["drop_lower"], perf["drop_upper"])
    assert interval == (backtest.drop, backtest.drop_lower, backtest.drop_upper)


def test_both_windows_scores_are_cached_and_a_changed_labelled_window_is_scored_again(
    toy: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(monkeypatch)
    first = check(toy, day(5), LATE)
    assert (calls.loads, calls.predictions) == (1, 2)  # the checked and the labelled window
    store = open_storage(toy.storage_root)
    assert store.exists(scores_cache_key(toy.name)) and store.exists(
        scores_cache_key(toy.name, "labelled")
    )
    second = check(toy, day(5), LATE)
    assert (calls.loads, calls.predictions) == (1, 2)  # both slots reused: nothing loaded
    assert second.performance == first.performance
    # Day 4's rows corrected in place: only the labelled window is scored again.
    path = Path(toy.data.uri) / "part.parquet"
    events = pd.read_parquet(path)
    inside = events["t"].dt.floor("D") == DAY0 + pd.Timedelta(days=4)
    events.loc[inside, "b"] = events.loc[inside, "b"] * 2
    events.to_parquet(path)
    changed = check(toy, day(5), LATE)
    assert (calls.loads, calls.predictions) == (2, 3)
    assert changed.performance["window"] == day(4)
    assert changed.performance == check(toy, day(5), LATE, cache_scores=False).performance


@pytest.mark.parametrize(
    "error",
    [ValidationError("a damaged file"), KeyError("id"), ValueError("a damaged file")],
)
def test_an_older_window_that_cannot_be_read_is_left_out_of_the_search(
    toy: Config, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    read = labelled_window.window_rows

    def unreadable_day_4(
        cfg: Config, window: str, columns: Any = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        if window == day(4):
            raise error
        return read(cfg, window, columns)

    monkeypatch.setattr(labelled_window, "window_rows", unreadable_day_4)
    perf = check(toy, day(5), LATE).performance
    assert perf["window"] == day(3)
    assert perf["unreadable"] == [f"{day(4)} ({type(error).__name__}: {error})"]
    assert json.loads(json.dumps(perf))  # the report's JSON holds it


def test_the_search_reads_only_the_ids_of_windows_it_passes_over(
    toy: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = labelled_window.window_rows
    reads: list[tuple[str, Any]] = []

    def recorded(
        cfg: Config, window: str, columns: Any = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        reads.append((window, None if columns is None else tuple(columns)))
        return read(cfg, window, columns)

    monkeypatch.setattr(labelled_window, "window_rows", recorded)
    # At EARLY, checking day 6: day 5 and day 4 fall short of the coverage, day 3 qualifies.
    perf = check(toy, day(6), EARLY).performance
    assert perf["window"] == day(3) and perf["rows"] == round(coverage(toy, 3, EARLY) * ROWS)
    ids = (toy.data.id_column,)
    assert reads == [(day(5), ids), (day(4), ids), (day(3), ids), (day(3), None)]


def test_labels_of_a_class_the_champion_never_saw_are_left_out_as_unknown_ones(
    toy: Config,
) -> None:
    """The engine on the checked window and the check on an older one: the same rows count."""
    registry = Registry(open_storage(toy.storage_root), toy.name)
    champion = registry.get_alias("champion").version
    assert champion is not None
    profile = ReferenceProfile.from_json(registry.read_file(champion, PROFILE_FILE))
    events = window_events(toy, 3)
    scores = predict_scores(load_registered_model(registry, champion), events, toy)
    truth = pd.read_parquet(toy.labels.uri).set_index("id")["y"]
    labels = events["id"].map(truth).astype("float64")
    odd = labels.copy()
    odd.iloc[:30] = 7  # a class the champion never saw
    unknown = labels.copy()
    unknown.iloc[:30] = np.nan
    with_odd = detect_drift(profile, events, toy, scores=scores, labels=odd).performance
    without = detect_drift(profile, events, toy, scores=scores, labels=unknown).performance
    assert with_odd is not None and with_odd == without
    assert with_odd.n == int(unknown.notna().sum())


def test_a_check_reads_each_of_the_champion_s_files_once(
    toy: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The card serves the scores (twice: the checked and the labelled window), the training
    bound, the catch-up's and the back-off's launch windows; the model and the profile serve
    both windows. Each is read once a check, and again at the next (a file rewritten between
    checks is seen, and refused, then)."""
    store = open_storage(toy.storage_root)
    read: list[str] = []
    real = type(store).read_bytes

    def counted(self: Storage, key: str) -> bytes:
        read.append(self.uri(key))
        return real(self, key)

    monkeypatch.setattr(type(store), "read_bytes", counted)
    ctl = TriggerController(store, toy.name, toy.triggers, NoLauncher(), clock=lambda: LATE)
    monitor = Monitor(toy, ctl, store=store)
    registry = Registry(store, toy.name)
    champion = registry.get_alias("champion").version
    assert champion is not None
    files = [registry.file_uri(champion, f) for f in (MODEL_CARD_FILE, MODEL_FILE, PROFILE_FILE)]
    for n in (1, 2):
        result = monitor.check(day(5))
        assert result.performance["window"] == day(4)  # both windows scored, the card used
        assert [read.count(uri) for uri in files] == [n, n, n]


def test_a_check_reads_the_trigger_state_once_before_it_decides(
    toy: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_storage(toy.storage_root)
    ctl = TriggerController(store, toy.name, toy.triggers, NoLauncher(), clock=lambda: LATE)
    loads, at_first_decision = [], []
    load, handle = ctl.load_state, ctl.handle

    def counted_load() -> tuple[PolicyState, int]:
        loads.append(1)
        return load()

    def first_handle(signal: Signal, **options: Any) -> Outcome:
        if not at_first_decision:
            at_first_decision.append(len(loads))
        return handle(signal, **options)

    monkeypatch.setattr(ctl, "load_state", counted_load)
    monkeypatch.setattr(ctl, "handle", first_handle)
    Monitor(toy, ctl, store=store).check(day(5))
    assert at_first_decision == [1]


def test_labels_written_as_text_are_measured_as_the_champions_classes(toy: Config) -> None:
    # The champion learned the integers 0 and 1; the label source now writes them as text
    # ("0", "1"). By `label_key` they are the same classes: the monitor measures the same
    # drop, where comparing values as written found no label among the classes.
    as_ints = check(toy, day(5), LATE).performance
    labels = pd.read_parquet(toy.labels.uri)
    assert labels["y"].dtype.kind == "i"
    labels["y"] = labels["y"].astype(str)
    for part in Path(toy.labels.uri).glob("*.parquet"):
        part.unlink()
    labels.to_parquet(Path(toy.labels.uri) / "part.parquet")
    as_text = check(toy, day(5), LATE).performance
    assert "note" not in as_text, as_text.get("note")
    assert as_text["window"] == as_ints["window"] == day(4)
    for key in ("rows", "current", "reference", "drop", "drop_lower", "drop_upper"):
        assert as_text[key] == pytest.approx(as_ints[key]), key
    assert as_text["drop_lower"] > 0.4


def test_the_champions_age_in_windows_is_reported_and_exported(toy: Config, tmp_path: Path) -> None:
    metrics = MonitorMetrics(toy.name)
    first = check(toy, day(4), LATE, metrics=metrics)  # the champion trained on day 0
    assert (first.champion_trained_on, first.champion_age_windows) == (day(0), 4.0)
    assert first.to_dict()["champion_age_windows"] == 4.0
    assert f"newest window trained on {day(0)}, 4 window(s) before the checked one" in (
        first.markdown()
    )
    age = metrics.registry.get_sample_value("retrain_champion_age_windows", {"model": toy.name})
    assert age == 4.0
    register_champion(toy, tmp_path / "w3", day(3))  # a newer champion: its data is fresher
    second = check(toy, day(4), LATE, metrics=metrics)
    assert (second.champion_trained_on, second.champion_age_windows) == (day(3), 1.0)
    age = metrics.registry.get_sample_value("retrain_champion_age_windows", {"model": toy.name})
    assert age == 1.0
    # Checked at an older window than the champion's: said as such, not "-2 ... before".
    older = check(toy, day(1), LATE)
    assert older.champion_age_windows == -2.0
    assert "2 window(s) after the checked one" in older.markdown()
    # An age no longer known leaves no stale series behind.
    metrics.observe_check(0.0, champion_age=None)
    gone = metrics.registry.get_sample_value("retrain_champion_age_windows", {"model": toy.name})
    assert gone is None
