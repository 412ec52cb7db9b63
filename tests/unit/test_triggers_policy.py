"""The pure trigger policy, fed plain numbers and a clock that only moves when told."""

from __future__ import annotations

import functools
import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from retrain.config import DataSource
from retrain.data.windows import window_sort_key
from retrain.errors import ValidationError
from retrain.settings.triggers import TriggerConfig
from retrain.triggers.lease import Lease
from retrain.triggers.policy import PolicyState, Signal, decide

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)  # a Monday


def config(**kw: Any) -> TriggerConfig:
    base: dict[str, Any] = {"cooldown": "1h", "budget_runs": 3, "budget_period": "1d"}
    return TriggerConfig.model_validate(base | kw)


def drift(window: int | str, drifted: bool = True, share: float = 0.6) -> Signal:
    return Signal("drift", str(window), drifted=drifted, value=share)


def run(
    signals: list[Signal], cfg: TriggerConfig, start: datetime = T0, step: timedelta | None = None
) -> tuple[list[Any], PolicyState]:
    state = PolicyState()
    now = start
    decisions = []
    for s in signals:
        d, state = decide(s, state, cfg, now)
        decisions.append(d)
        now += step or timedelta(0)
    return decisions, state


def test_drift_storm_starts_exactly_one_run_then_one_more_after_cooldown() -> None:
    cfg = config(drift_windows=2)
    # 50 events in one minute, each a new drifted window (the worst case for dedupe).
    storm = [drift(w) for w in range(50)]
    decisions, state = run(storm, cfg, step=timedelta(seconds=1.2))
    launched = [d for d in decisions if d.launch]
    assert len(launched) == 1
    assert launched[0].rule == "drift"
    assert launched[0].signal.snapshot == "1"  # the second consecutive drifted window
    refused = {d.rule for d in decisions if not d.launch}
    assert refused == {"hysteresis", "cooldown"}

    after = T0 + timedelta(hours=1, minutes=1)
    d, state = decide(drift(50), state, cfg, after)
    assert d.launch and d.rule == "drift"
    d, state = decide(drift(51), state, cfg, after + timedelta(seconds=1))
    assert not d.launch


def test_hysteresis_counts_windows_not_events() -> None:
    cfg = config(drift_windows=3, cooldown="1s")
    decisions, state = run([drift(1), drift(1), drift(1), drift(2)], cfg)
    assert [d.launch for d in decisions] == [False] * 4
    assert state.drift_streak == 2
    d, state = decide(drift(3), state, cfg, T0)
    assert d.launch and "3 consecutive windows" in d.reason


def test_a_quiet_window_resets_the_streak() -> None:
    cfg = config(drift_windows=2)
    decisions, state = run([drift(1), drift(2, drifted=False), drift(3)], cfg)
    assert not any(d.launch for d in decisions)
    assert decisions[1].rule == "no_drift"
    assert state.drift_streak == 1


def test_a_launch_rearms_the_hysteresis() -> None:
    cfg = config(drift_windows=2, cooldown="1s")
    decisions, _ = run([drift(1), drift(2), drift(3), drift(4)], cfg, step=timedelta(hours=1))
    assert [d.launch for d in decisions] == [False, True, False, True]


def period_key() -> Any:
    """Window ids of a period source ordered by time, as the monitor hands them."""
    data = DataSource.model_validate(
        {"uri": "x", "id_column": "id", "time_column": "t", "time_kind": "period",
         "features": {"a": "numeric"}}
    )  # fmt: skip
    return functools.partial(window_sort_key, data)


def test_an_older_drift_window_does_not_advance_the_hysteresis_count() -> None:
    """Window 5 counted while open, then window 4 judged once over: 4 is not a new window."""
    cfg = config(drift_windows=2)
    key = period_key()
    d, state = decide(drift(5), PolicyState(), cfg, T0, window_key=key)
    assert d.rule == "hysteresis" and state.drift_streak == 1
    d, state = decide(drift(4), state, cfg, T0, window_key=key)
    assert not d.launch and d.rule == "hysteresis"
    assert state.drift_streak == 1 and state.drift_last_snapshot == "5"
    assert "window 5 is newer and counted already" in d.reason
    # Nor does an older quiet window reset it; the next newer one counts ("10" after "9").
    d, state = decide(drift(3, drifted=False), state, cfg, T0, window_key=key)
    assert d.rule == "no_drift" and state.drift_streak == 1
    _, state = decide(drift(9, drifted=False), state, cfg, T0, window_key=key)
    d, state = decide(drift(10), state, cfg, T0, window_key=key)
    assert state.drift_streak == 1 and state.drift_last_snapshot == "10"
    d, state = decide(drift(11), state, cfg, T0, window_key=key)
    assert d.launch and d.rule == "drift"


def test_an_older_drift_window_does_not_launch_on_the_streak_of_newer_ones() -> None:
    """Windows 4 and 5 drift and 5's launch meets a held lease; window 3, judged next, drifted
    too, but the streak is 4's and 5's: no run of 3. Window 5, seen again, launches."""
    cfg = config(drift_windows=2)
    key = period_key()
    lease = Lease("other", "run-a", "2", T0, expires_at=T0 + timedelta(hours=1))
    d, state = decide(drift(4), PolicyState(), cfg, T0, window_key=key)
    assert (d.launch, d.rule) == (False, "hysteresis")
    d, state = decide(drift(5), state, cfg, T0, lease, window_key=key)
    assert (d.launch, d.rule) == (False, "lease") and state.drift_streak == 2
    later = T0 + timedelta(hours=2)  # the lease is over
    d, state = decide(drift(3), state, cfg, later, lease, window_key=key)
    assert (d.launch, d.rule) == (False, "not_counted")
    assert "window 5 is newer and counted already" in d.reason
    assert "launches a run of 5, not of an older window" in d.reason
    assert (state.drift_streak, state.drift_last_snapshot) == (2, "5")
    d, state = decide(drift(5), state, cfg, later, lease, window_key=key)
    assert (d.launch, d.rule, d.signal.snapshot) == (True, "drift", "5")


def test_snapshots_that_are_not_window_ids_count_whenever_they_change() -> None:
    """Without a window order (or a last snapshot it cannot read) any other snapshot counts."""
    cfg = config(drift_windows=2)
    _, state = decide(drift("w05"), PolicyState(), cfg, T0)
    d, _ = decide(drift("w04"), state, cfg, T0)
    assert d.launch and d.rule == "drift"
    d, _ = decide(drift("4"), state, cfg, T0, window_key=period_key())
    assert d.launch and d.rule == "drift"


def test_dedupe_a_snapshot_trains_once_unless_its_run_failed() -> None:
    cfg = config(cooldown="1s")
    manual = Signal("manual", "7")
    d, state = decide(manual, PolicyState(), cfg, T0)
    assert d.launch
    for status in ("launched", "succeeded", "skipped"):
        state = state.with_snapshot_status("7", status)
        d, _ = decide(manual, state, cfg, T0 + timedelta(hours=2))
        assert not d.launch and d.rule == "duplicate" and status in d.reason
    state = state.with_snapshot_status("7", "failed")
    d, _ = decide(manual, state, cfg, T0 + timedelta(hours=2))
    assert d.launch


def test_manual_skips_the_cooldown_but_not_the_lease() -> None:
    cfg = config(cooldown="6h")
    _, state = decide(Signal("manual", "1"), PolicyState(), cfg, T0)
    d, state = decide(Signal("manual", "2"), state, cfg, T0 + timedelta(minutes=5))
    assert d.launch
    other = config(cooldown="6h", new_data_rows=10)
    d, _ = decide(Signal("new_data", "3", value=1e6), state, other, T0 + timedelta(minutes=6))
    assert not d.launch and d.rule == "cooldown"

    lease = Lease("other", "run-a", "2", T0, expires_at=T0 + timedelta(hours=1))
    d, _ = decide(Signal("manual", "4"), PolicyState(), cfg, T0 + timedelta(minutes=10), lease)
    assert not d.launch and d.rule == "lease" and "run-a" in d.reason
    # An expired or released lease excludes nothing.
    later = T0 + timedelta(hours=2)
    assert decide(Signal("manual", "4"), PolicyState(), cfg, later, lease)[0].launch
    released = Lease("other", "run-a", "2", T0, T0 + timedelta(hours=1), released_at=T0)
    assert decide(Signal("manual", "4"), PolicyState(), cfg, T0, released)[0].launch


def test_budget_caps_launches_per_rolling_period() -> None:
    cfg = config(cooldown="1s", budget_runs=3, budget_period="1d")
    signals = [Signal("manual", str(i)) for i in range(5)]
    decisions, state = run(signals, cfg, step=timedelta(hours=1))
    assert [d.launch for d in decisions] == [True, True, True, False, False]
    assert decisions[3].rule == "budget"
    # A day after the first launch one slot is free again.
    d, _ = decide(Signal("manual", "9"), state, cfg, T0 + timedelta(days=1, seconds=1))
    assert d.launch


def test_schedule_fires_once_per_due_time() -> None:
    cfg = config(schedules=[{"name": "weekly", "cron": "0 3 * * 1"}], cooldown="1s")
    monday_3 = datetime(2024, 3, 11, 3, 0, 30, tzinfo=timezone.utc)
    d, state = decide(Signal("schedule", "10"), PolicyState(), cfg, monday_3 - timedelta(hours=1))
    assert not d.launch and d.rule == "not_due"
    d, state = decide(Signal("schedule", "10"), state, cfg, monday_3)
    assert d.launch and d.rule == "schedule" and "'weekly'" in d.reason
    # The same due time is consumed: checking again (new snapshot) does not fire.
    d, state = decide(Signal("schedule", "11"), state, cfg, monday_3 + timedelta(minutes=10))
    assert not d.launch and d.rule == "not_due"
    # Missed ticks do not pile up (no catch-up): one launch for a week of checks.
    d, _ = decide(Signal("schedule", "12"), state, cfg, monday_3 + timedelta(days=7, hours=5))
    assert d.launch


def test_disabled_schedules_never_fire() -> None:
    cfg = config(schedules=[{"name": "x", "cron": "* * * * *", "enabled": False}])
    d, _ = decide(Signal("schedule", "1"), PolicyState(), cfg, T0)
    assert not d.launch and d.rule == "not_due"


@pytest.mark.parametrize(
    ("value", "launch", "rule"),
    [
        (0.0501, True, "performance"),
        (0.05, False, "below_threshold"),  # above the threshold, as the engine judges it
        (math.nan, False, "below_threshold"),
        (None, False, "below_threshold"),
    ],
)
def test_performance_drop(value: float | None, launch: bool, rule: str) -> None:
    cfg = config(performance_drop=0.05)
    signal = Signal("performance", "4", value=value, details={"metric": "roc_auc"})
    d, _ = decide(signal, PolicyState(), cfg, T0)
    assert (d.launch, d.rule) == (launch, rule)


def test_a_champion_better_than_at_training_is_said_to_have_improved_not_dropped() -> None:
    cfg = config(performance_drop=0.05)
    for metric in ("roc_auc", "log_loss"):  # drops are signed by the metric's direction
        signal = Signal("performance", "4", value=-0.0086, details={"metric": metric})
        d, _ = decide(signal, PolicyState(), cfg, T0)
        assert (d.launch, d.rule) == (False, "below_threshold")
        assert d.reason.startswith(f"{metric} improved by 0.0086, not above the trigger")
    signal = Signal("performance", "4", value=0.0086, details={"metric": "roc_auc"})
    d, _ = decide(signal, PolicyState(), cfg, T0)
    assert d.reason.startswith("roc_auc dropped by 0.0086, not above the trigger")
    # An error metric that got worse rose: its drop in quality is not a fall of the number.
    signal = Signal("performance", "4", value=4.2, details={"metric": "rmse", "reference": 100})
    d, _ = decide(signal, PolicyState(), cfg, T0)
    assert d.reason.startswith("rmse rose by 4.2000, not above the trigger")


@pytest.mark.parametrize(
    ("drop", "lower", "launch", "rule"),
    [
        (0.08, 0.01, True, "performance"),
        (0.08, 0.0, False, "within_noise"),  # a drop its interval cannot tell from none
        (0.08, -0.03, False, "within_noise"),
        (0.04, 0.01, False, "below_threshold"),  # real, but smaller than the trigger
    ],
)
def test_a_performance_drop_fires_only_beyond_sampling_noise(
    drop: float, lower: float, launch: bool, rule: str
) -> None:
    cfg = config(performance_drop=0.05)
    details = {"metric": "roc_auc", "drop_lower": lower}
    d, _ = decide(Signal("performance", "4", value=drop, details=details), PolicyState(), cfg, T0)
    assert (d.launch, d.rule) == (launch, rule)


def test_a_labelled_drop_launches_at_once_by_default() -> None:
    cfg = config()  # the defaults: a drop of 0.05 whose interval lies above zero launches
    details = {"metric": "roc_auc", "drop_lower": 0.02}
    d, _ = decide(Signal("performance", "4", value=0.08, details=details), PolicyState(), cfg, T0)
    assert (d.launch, d.rule) == (True, "performance")


def test_an_error_metric_without_a_reference_never_fires_and_a_zero_one_fires_on_any_drop() -> None:
    cfg = config(performance_drop=0.05)

    def decided(details: dict[str, object]) -> tuple[bool, str, str]:
        signal = Signal("performance", "4", value=3.0, details={"metric": "rmse", **details})
        d, _ = decide(signal, PolicyState(), cfg, T0)
        return d.launch, d.rule, d.reason

    # No reference: 0.05 cannot be read as a share, and is not read as 0.05 target units.
    launch, rule, reason = decided({"drop_lower": 1.0})
    assert (launch, rule) == (False, "below_threshold")
    assert "does not carry" in reason
    # A model without error at training: any rise beyond noise is worse than it (a rise of
    # 0.01 fires, which 0.05 read in the target's units would not).
    signal = Signal(
        "performance",
        "4",
        value=0.01,
        details={"metric": "rmse", "drop_lower": 0.005, "reference": 0.0},
    )
    d, _ = decide(signal, PolicyState(), cfg, T0)
    assert (d.launch, d.rule) == (True, "performance")


@pytest.mark.parametrize(
    ("reference", "drop", "launch"),
    [
        (40.0, 1.9, False),  # 4.75% worse: below 5% of the reference
        (40.0, 2.1, True),  # 5.25% worse
        (40_000.0, 1_900.0, False),  # the same shares in other units decide the same
        (40_000.0, 2_100.0, True),
    ],
)
def test_an_error_metric_s_drop_is_a_share_of_its_reference(
    reference: float, drop: float, launch: bool
) -> None:
    cfg = config(performance_drop=0.05)
    details = {"metric": "rmse", "drop_lower": drop / 2, "reference": reference}
    d, _ = decide(Signal("performance", "4", value=drop, details=details), PolicyState(), cfg, T0)
    assert d.launch is launch
    assert "0.05 of the reference" in d.reason


def test_new_data_threshold() -> None:
    cfg = config(new_data_rows=1000)
    assert not decide(Signal("new_data", "1", value=999), PolicyState(), cfg, T0)[0].launch
    d, _ = decide(Signal("new_data", "1", value=1000), PolicyState(), cfg, T0)
    assert d.launch and d.rule == "new_data"


def test_rules_that_are_off_say_so() -> None:
    cfg = config(drift=False, performance_drop=None)
    for signal in (drift(1), Signal("performance", "1", value=1.0), Signal("new_data", "1")):
        d, _ = decide(signal, PolicyState(), cfg, T0)
        assert (d.launch, d.rule) == (False, "disabled")


def test_state_round_trips_through_json() -> None:
    cfg = config(drift_windows=2, schedules=[{"name": "h", "cron": "@hourly"}])
    _, state = run([drift(1), drift(2), Signal("schedule", "2")], cfg)
    again = PolicyState.from_json(state.to_json())
    assert again == state
    assert again.last_launch is not None and again.last_launch.snapshot == "2"


def test_malformed_state_names_the_problem() -> None:
    with pytest.raises(ValidationError, match="malformed"):
        PolicyState.from_json('{"launches": [{"at": "yesterday"}]}')


def test_bad_signals_and_clocks_are_refused() -> None:
    with pytest.raises(ValidationError, match="signal kind"):
        Signal("cosmic-ray", "1")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="snapshot"):
        Signal("manual", "")
    with pytest.raises(ValidationError, match="timezone-aware"):
        decide(Signal("manual", "1"), PolicyState(), config(), datetime(2024, 1, 1))


def test_state_stays_bounded() -> None:
    cfg = config(cooldown="1s", budget_runs=10_000, budget_period="1h")
    signals = [Signal("manual", str(i)) for i in range(1500)]
    _, state = run(signals, cfg, step=timedelta(minutes=1))
    assert len(state.snapshots) == 1000
    assert "1499" in state.snapshots and "0" not in state.snapshots
    assert len(state.launches) <= 200


def performance(
    window: str,
    drop: float,
    champion_from: str | None = None,
    *,
    current: float = 0.75,
    reference: float | None = None,
) -> Signal:
    """A labelled check of the champion on `window`: its metric there is `current`, `drop`
    below its own reference (`current + drop` unless given), the drop's interval from
    `drop - 0.03`. The opening drop below: 0.15 from a model that recorded 0.9."""
    reference = current + drop if reference is None else reference
    details = {
        "metric": "roc_auc",
        "drop_lower": drop - 0.03,
        "champion_from": champion_from,
        "reference": reference,
        "current": current,
    }
    return Signal("performance", window, value=drop, details=details)


def test_after_a_confirmed_drop_the_policy_catches_up_while_its_models_are_deployed() -> None:
    cfg = config(budget_runs=10)
    step = timedelta(days=1)
    decisions, state = run(
        [
            performance("5", 0.15),  # the concept changed: launches, and opens a chain
            # Window 6 is labelled; the model launched for 5 serves, no drop against it.
            performance("6", 0.0, champion_from="5"),
            # Window 7: the model of 6 serves: catch up again.
            performance("7", -0.01, champion_from="6"),
            # Window 8: the model of 7 was not deployed (no gain): the one of 6 still serves.
            performance("8", 0.0, champion_from="6"),
            performance("9", 0.0, champion_from="6"),
        ],
        cfg,
        step=step,
    )
    assert [(d.launch, d.rule) for d in decisions] == [
        (True, "performance"),
        (True, "catch_up"),
        (True, "catch_up"),
        (False, "below_threshold"),
        (False, "below_threshold"),
    ]
    assert "the model launched for 5 after a confirmed drop serves" in decisions[1].reason
    assert "its roc_auc 0.75 is still 0.15 worse than the 0.9 recorded before the drop" in (
        decisions[1].reason
    )
    assert (state.catch_up, state.catch_up_from) == ("7", 0.9)  # its model never served
    assert PolicyState.from_json(state.to_json()) == state


def test_the_chain_ends_once_the_champion_is_back_near_the_level_before_the_drop() -> None:
    cfg = config(budget_runs=10)
    decisions, state = run(
        [
            performance("5", 0.15),
            performance("6", 0.0, champion_from="5", current=0.80),  # 0.10 behind 0.9
            performance("7", 0.0, champion_from="6", current=0.87),  # 0.03: within 0.05
            performance("8", 0.0, champion_from="6", current=0.80),  # the chain has ended
        ],
        cfg,
        step=timedelta(days=1),
    )
    assert [(d.launch, d.rule) for d in decisions] == [
        (True, "performance"),
        (True, "catch_up"),
        (False, "below_threshold"),
        (False, "below_threshold"),
    ]
    assert (state.catch_up, state.catch_up_from) == (None, None)
    # For an error metric the level is a share: rmse 34.5 before, 5% of it is 1.73.
    rmse = {"metric": "rmse", "drop_lower": 1.0, "reference": 34.5, "champion_from": None}
    opened = Signal("performance", "5", value=100.0, details=rmse | {"current": 134.5})
    after = rmse | {"reference": 116.0, "champion_from": "5"}
    decisions, _ = run(
        [
            opened,
            Signal("performance", "6", value=-12.0, details=after | {"current": 104.0}),
            Signal("performance", "7", value=-80.3, details=after | {"current": 35.7}),
        ],
        config(budget_runs=10),
        step=timedelta(days=1),
    )
    assert [d.rule for d in decisions] == ["performance", "catch_up", "below_threshold"]


def test_only_a_confirmed_drop_opens_a_chain_and_any_other_launch_ends_it() -> None:
    cfg = config(budget_runs=10, drift_windows=1)
    step = timedelta(days=1)
    # A features-only drift launch opens no chain.
    decisions, state = run([drift(5), performance("6", 0.0, champion_from="5")], cfg, step=step)
    assert [d.launch for d in decisions] == [True, False] and state.catch_up is None
    # A drift launch whose labelled signal fired does; a later features-only launch ends it.
    fired = {"labelled_fired": True, "metric": "roc_auc", "reference": 0.9}
    labelled = Signal("drift", "5", drifted=True, details=fired)
    decisions, state = run(
        [labelled, drift(6), performance("7", 0.0, champion_from="5")], cfg, step=step
    )
    assert [d.launch for d in decisions] == [True, True, False]
    assert state.catch_up is None
    # Switched off: the same evidence launches nothing.
    decisions, _ = run(
        [performance("5", 0.15), performance("6", 0.0, champion_from="5")],
        config(budget_runs=10, catch_up=False),
        step=step,
    )
    assert [(d.launch, d.rule) for d in decisions] == [
        (True, "performance"),
        (False, "below_threshold"),
    ]


def test_a_catch_up_still_waits_for_the_cooldown_and_the_budget() -> None:
    cfg = config(cooldown="12h", budget_runs=2, budget_period="7d")
    decisions, _ = run(
        [
            performance("5", 0.15),
            performance("6", 0.0, champion_from="5"),  # 6 hours later: cooldown
            performance("6", 0.0, champion_from="5"),  # 12 hours: launches
            performance("7", 0.0, champion_from="6"),  # 18 hours: within cooldown again
            performance("7", 0.0, champion_from="6"),  # 24 hours: the budget of 2 is spent
        ],
        cfg,
        step=timedelta(hours=6),
    )
    assert [d.rule for d in decisions] == [
        "performance",
        "cooldown",
        "catch_up",
        "cooldown",
        "budget",
    ]


def test_a_malformed_chain_in_the_state_is_refused() -> None:
    with pytest.raises(ValidationError, match="catch_up"):
        PolicyState.from_json('{"catch_up": 5}')
    with pytest.raises(ValidationError, match="catch_up_from"):
        PolicyState.from_json('{"catch_up": "5", "catch_up_from": "high"}')


def test_a_catch_up_needs_the_old_level_to_be_missed_beyond_noise() -> None:
    cfg = config(budget_runs=10)
    # 0.10 behind the old 0.9 (beyond the 0.05 trigger), but the champion's own drop interval
    # (against its reference 0.75) reaches -0.3: shifted to the old level, -0.3 + 0.15 < 0.
    noisy = performance("6", -0.05, champion_from="5", current=0.80, reference=0.75)
    noisy = Signal("performance", "6", value=-0.05, details={**noisy.details, "drop_lower": -0.3})
    decisions, _ = run([performance("5", 0.15), noisy], cfg, step=timedelta(days=1))
    assert [d.rule for d in decisions] == ["performance", "below_threshold"]


def test_a_labels_rerun_of_the_chain_s_own_window_keeps_the_chain() -> None:
    # The monitor launches a labelled drop on the newest window, whose labels are short: the
    # run fails on coverage and the labels rule re-runs it; the chain carries on after it.
    cfg = config(budget_runs=10, drift_windows=1)
    fired = {"labelled_fired": True, "metric": "roc_auc", "reference": 0.9}
    state = PolicyState()
    d, state = decide(Signal("drift", "7", drifted=True, details=fired), state, cfg, T0)
    assert d.launch and (state.catch_up, state.catch_up_from) == ("7", 0.9)
    state = state.with_snapshot_status("7", "failed")
    labels = Signal("labels", "7", value=0.95, details={"min_coverage": 0.9})
    d, state = decide(labels, state, cfg, T0 + timedelta(days=1))
    assert (d.launch, d.rule) == (True, "labels")
    assert (state.catch_up, state.catch_up_from) == ("7", 0.9)
    d, _ = decide(performance("8", 0.0, champion_from="7"), state, cfg, T0 + timedelta(days=2))
    assert (d.launch, d.rule) == (True, "catch_up")


def test_a_check_in_another_metric_than_the_chain_s_level_does_not_catch_up() -> None:
    cfg = config(budget_runs=10)
    _, state = run([performance("5", 0.15)], cfg)
    assert state.catch_up_metric == "roc_auc"
    other = performance("6", 0.0, champion_from="5")
    other = Signal("performance", "6", value=0.0, details={**other.details, "metric": "accuracy"})
    d, _ = decide(other, state, cfg, T0 + timedelta(days=1))
    assert (d.launch, d.rule) == (False, "below_threshold")
    assert PolicyState.from_json(state.to_json()) == state


def drift_with(window: str, labelled: Signal | None) -> Signal:
    """The monitor's drift signal for `window`, carrying the same check's performance signal."""
    details = {"performance": None if labelled is None else labelled.to_dict()}
    return Signal("drift", window, drifted=True, value=0.5, details=details)


def test_a_drift_launch_gives_way_to_a_labelled_drop_that_launches_in_the_same_check() -> None:
    cfg = config(drift_windows=1, cooldown="1h")
    labelled = performance("5", 0.15)  # measured on window 5, whose labels are in
    d, state = decide(drift_with("7", labelled), PolicyState(), cfg, T0)
    assert (d.launch, d.rule) == (False, "deferred")
    assert "the labelled window 5 launches instead (performance: roc_auc dropped by" in d.reason
    assert state.drift_streak == 1  # window 7 counted
    d, state = decide(labelled, state, cfg, T0)
    assert (d.launch, d.rule, d.signal.snapshot) == (True, "performance", "5")
    # The launch re-armed the count and window 7 is not counted twice.
    assert (state.drift_streak, state.drift_last_snapshot) == (0, "7")
    d, _ = decide(drift_with("7", None), state, cfg, T0 + timedelta(hours=2))
    assert (d.launch, d.rule) == (False, "hysteresis")
    assert PolicyState.from_json(state.to_json()) == state


@pytest.mark.parametrize(
    ("labelled", "status"),
    [
        (None, None),  # no labelled window judged
        (performance("5", 0.02), None),  # below the trigger
        (Signal("performance", "5", value=0.15, details={"drop_lower": -0.01}), None),  # noise
        (performance("5", 0.15), "launched"),  # already launched: a duplicate
        (performance("5", 0.15), "succeeded"),
    ],
)
def test_a_drift_launch_gives_way_only_to_a_labelled_launch_that_would_happen(
    labelled: Signal | None, status: str | None
) -> None:
    cfg = config(drift_windows=1, cooldown="1h")
    state = PolicyState()
    if status is not None:
        state = state.with_snapshot_status("5", status)
    d, _ = decide(drift_with("7", labelled), state, cfg, T0)
    assert (d.launch, d.rule) == (True, "drift")


def test_a_drift_launch_gives_way_to_a_failed_labelled_window_s_re_run_and_to_catching_up() -> None:
    cfg = config(drift_windows=1, cooldown="0s", budget_runs=10)
    state = PolicyState().with_snapshot_status("5", "failed")
    d, _ = decide(drift_with("7", performance("5", 0.15)), state, cfg, T0)
    assert (d.launch, d.rule) == (False, "deferred")
    # A chain is open from window 5; window 6's check shows the model of 5 still behind.
    _, state = run([performance("5", 0.15)], cfg)
    behind = performance("6", 0.0, champion_from="5")
    d, _ = decide(drift_with("8", behind), state, cfg, T0 + timedelta(days=1))
    assert (d.launch, d.rule) == (False, "deferred")
    assert "(catch_up:" in d.reason
    # Off, the drift launch does not give way to a signal of a rule that is off.
    off = config(drift_windows=1, cooldown="0s", performance_drop=None)
    d, _ = decide(drift_with("7", performance("5", 0.15)), PolicyState(), off, T0)
    assert (d.launch, d.rule) == (True, "drift")


def test_a_drift_launch_refused_anyway_says_why_and_not_deferred() -> None:
    cfg = config(drift_windows=1, cooldown="1h")
    labelled = performance("5", 0.15)
    _, state = decide(Signal("manual", "3"), PolicyState(), cfg, T0)  # a launch just now
    d, _ = decide(drift_with("7", labelled), state, cfg, T0 + timedelta(minutes=5))
    assert (d.launch, d.rule) == (False, "cooldown")
    trained = PolicyState().with_snapshot_status("7", "succeeded")
    d, _ = decide(drift_with("7", labelled), trained, cfg, T0)
    assert (d.launch, d.rule) == (False, "duplicate")
    # Only a performance signal is given way to.
    other = Signal("new_data", "5", value=1e6)
    d, _ = decide(drift_with("7", other), PolicyState(), cfg, T0)
    assert (d.launch, d.rule) == (True, "drift")
