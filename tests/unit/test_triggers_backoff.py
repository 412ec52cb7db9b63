"""The drift back-off: ongoing drift that the champion copies with stops launching a retrain
every ``drift_windows`` windows once its challengers are not deployed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError as SettingsError

from retrain.errors import ValidationError
from retrain.settings.triggers import TriggerConfig
from retrain.triggers.policy import PolicyState, Signal, decide

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)


def config(**kw: Any) -> TriggerConfig:
    base: dict[str, Any] = {"cooldown": "1h", "budget_runs": 100, "budget_period": "1d"}
    return TriggerConfig.model_validate(base | {"drift_windows": 2} | kw)


def drifted(
    window: int, serving: str | None, labelled: bool = False, awaiting: tuple[str, ...] = ()
) -> Signal:
    details = {"serving_from": serving, "labelled_fired": labelled, "awaiting_labels": awaiting}
    return Signal("drift", f"w{window:02d}", drifted=True, value=0.5, details=details)


def awaiting(state: PolicyState) -> tuple[str, ...]:
    """The pending drift runs that failed on label coverage (the monitor reads it from the
    runs' label records; here every failed run did)."""
    return tuple(s for s in state.drift_pending if state.snapshots.get(s) == "failed")


def replay(
    cfg: TriggerConfig,
    windows: int,
    deployed: Callable[[str], bool] = lambda _: False,
    labelled: Callable[[int], bool] = lambda _: False,
) -> tuple[list[int], list[str], PolicyState]:
    """Every window drifts; each launch's run succeeds before the next window, and its model
    serves from then on when `deployed(snapshot)` says so. The launch windows, the rules of
    the refused signals, and the final state."""
    state, serving = PolicyState(), "w-first"
    launched, refused = [], []
    for i in range(windows):
        d, state = decide(drifted(i, serving, labelled(i)), state, cfg, T0 + timedelta(days=i))
        if d.launch:
            launched.append(i)
            state = state.with_snapshot_status(d.signal.snapshot, "succeeded")
            if deployed(d.signal.snapshot):
                serving = d.signal.snapshot
        else:
            refused.append(d.rule)
    return launched, refused, state


def test_drift_whose_challengers_are_not_deployed_launches_ever_less_often() -> None:
    launched, refused, state = replay(config(drift_backoff_limit=8), 40)
    # 2 windows, then 4, then 8 (the limit), and 8 from then on.
    assert launched == [1, 5, 13, 21, 29, 37]
    assert "backoff" in refused
    assert state.drift_backoff == 6  # six launches in a row, none deployed

    without, _, _ = replay(config(drift_backoff=False), 40)
    assert without == list(range(1, 40, 2))  # every second window: twenty launches

    # The default limit, 4: after the first challenger not deployed, every fourth window.
    default, _, _ = replay(config(), 40)
    assert default == [1, 5, 9, 13, 17, 21, 25, 29, 33, 37]


def test_a_deployed_drift_challenger_keeps_the_hysteresis_at_drift_windows() -> None:
    launched, refused, state = replay(config(), 12, deployed=lambda _: True)
    assert launched == [1, 3, 5, 7, 9, 11]
    assert set(refused) == {"hysteresis"}
    assert state.drift_backoff == 0


def test_a_deployed_challenger_after_rejections_resets_the_back_off() -> None:
    # The first two drift launches are not deployed; the third is.
    cfg = config(drift_backoff_limit=8)
    launched, _, state = replay(cfg, 24, deployed=lambda snap: snap == "w13")
    assert launched[:3] == [1, 5, 13]
    # After w13 serves, the count starts again at drift_windows (w15), and doubles again
    # when that challenger is not deployed (w19).
    assert launched[3:] == [15, 19]
    assert state.drift_backoff == 2


def test_a_drift_the_labelled_metric_confirms_does_not_wait_for_the_back_off() -> None:
    # Backed off to 8 windows after two launches (w01, w05); the labelled signal fires at w07.
    launched, _, state = replay(config(drift_backoff_limit=8), 10, labelled=lambda i: i == 7)
    # w07: two drifted windows in a row with the labelled drop seen. A launch on a labelled
    # drop is evidence the drift costs: the back-off resets, and w09 launches at 2 again.
    assert launched == [1, 5, 7, 9]
    assert state.drift_backoff == 0


def test_a_run_still_going_teaches_nothing_and_one_skipped_is_dropped() -> None:
    cfg = config()
    state, serving = PolicyState(), "w-first"
    for i in range(2):
        d, state = decide(drifted(i, serving), state, cfg, T0 + timedelta(days=i))
    assert d.launch and state.drift_pending == ("w01",)
    # Still running: no outcome yet, the pending launch is kept.
    _, state = decide(drifted(2, serving), state, cfg, T0 + timedelta(days=2))
    assert state.drift_pending == ("w01",) and state.drift_backoff == 0
    # Skipped (launching was off): no challenger was trained, nothing to learn.
    state = state.with_snapshot_status("w01", "skipped")
    d, state = decide(drifted(3, serving), state, cfg, T0 + timedelta(days=3))
    assert d.launch  # w02 and w03 drifted: the plain hysteresis, no back-off
    assert state.drift_backoff == 0 and state.drift_pending == ("w03",)


def test_a_drift_run_that_waits_for_its_labels_is_judged_when_they_arrive() -> None:
    """The monitor's drift run on the newest window fails on label coverage; the labels rule
    re-runs it once they arrive, and that run's outcome is what the back-off learns."""
    cfg = config()
    state, serving, at = PolicyState(), "w-first", T0
    launched = []

    def step(signal: Signal) -> None:
        nonlocal state, at
        d, state = decide(signal, state, cfg, at)
        at += timedelta(hours=13)  # past the cooldown
        if d.launch:
            launched.append((d.rule, signal.snapshot))
            # A drift run lacks labels; a labels re-run trains, and nothing is deployed.
            status = "failed" if d.rule == "drift" else "succeeded"
            state = state.with_snapshot_status(signal.snapshot, status)

    for week in range(16):
        step(drifted(week, serving, awaiting=awaiting(state)))
        old = f"w{week - 2:02d}"  # its labels arrive two windows later
        if state.snapshots.get(old) == "failed":
            step(Signal("labels", old, value=0.95, details={"min_coverage": 0.9}))
    drift_launches = [snap for rule, snap in launched if rule == "drift"]
    # w01, and w03 before w01's outcome is known (its labels come two windows late); w01's
    # re-run at w03 is not deployed (learnt at w04), w03's at w05: then four drifted windows
    # are needed, counted from the last launch (a labels re-run re-arms the hysteresis too).
    assert drift_launches == ["w01", "w03", "w09", "w15"]
    assert ("labels", "w01") in launched and ("labels", "w03") in launched
    assert state.drift_backoff == 3

    without = config(drift_backoff=False)
    state, at, launched = PolicyState(), T0, []
    cfg = without
    for week in range(16):
        step(drifted(week, serving, awaiting=awaiting(state)))
        old = f"w{week - 2:02d}"
        if state.snapshots.get(old) == "failed":
            step(Signal("labels", old, value=0.95, details={"min_coverage": 0.9}))
    assert [snap for rule, snap in launched if rule == "drift"] == [
        f"w{w:02d}" for w in (1, 3, 5, 7, 9, 11, 13, 15)
    ]


def test_a_canary_in_analysis_is_not_yet_a_rejection() -> None:
    state = PolicyState(drift_pending=("w01",), drift_serving="w-first")
    state = state.with_snapshot_status("w01", "succeeded")  # its run ended: canary started
    signal = Signal(
        "drift",
        "w02",
        drifted=True,
        details={"serving_from": "w-first", "canary_from": "w01"},
    )
    _, after = decide(signal, state, config(), T0)
    assert after.drift_backoff == 0 and after.drift_pending == ("w01",)
    # Promoted: the serving champion changes to it, and the count starts afresh (w03, the
    # second drifted window in a row, launches and waits in its turn).
    _, after = decide(drifted(3, "w01"), after, config(), T0 + timedelta(days=1))
    assert after.drift_backoff == 0 and after.drift_pending == ("w03",)
    # Rolled back instead: no canary, the champion unchanged: not deployed.
    _, rolled = decide(drifted(3, "w-first"), state, config(), T0 + timedelta(days=1))
    assert rolled.drift_backoff == 1 and rolled.drift_pending == ()


def test_a_new_champion_clears_what_was_pending_without_counting_it() -> None:
    # w01's challenger was rejected, and before the next drift signal a scheduled run's model
    # (w02) was promoted: a new model serves, with its own reference.
    state = PolicyState(drift_backoff=1, drift_pending=("w01",), drift_serving="w-first")
    state = state.with_snapshot_status("w01", "succeeded")
    d, after = decide(drifted(3, "w02"), state, config(), T0)
    assert (after.drift_backoff, after.drift_pending, after.drift_serving) == (0, (), "w02")
    assert d.rule == "hysteresis"


def test_a_labelled_drop_resets_and_other_launches_keep_what_is_pending() -> None:
    state = PolicyState(drift_backoff=2, drift_pending=("w05",), drift_serving="w-first")
    drop = Signal(
        "performance",
        "w06",
        value=0.2,
        details={"metric": "roc_auc", "reference": 0.9, "drop_lower": 0.1},
    )
    d, after = decide(drop, state, config(), T0)
    assert d.launch and d.rule == "performance"
    assert (after.drift_backoff, after.drift_pending) == (0, ())
    # A manual launch is no outcome of the pending drift launch, and no evidence either.
    d, after = decide(Signal("manual", "w06"), state, config(), T0)
    assert d.launch and (after.drift_backoff, after.drift_pending) == (2, ("w05",))


def test_a_signal_that_does_not_say_which_model_serves_changes_nothing() -> None:
    state = PolicyState(drift_backoff=2, drift_pending=("w05",), drift_serving="w-first")
    state = state.with_snapshot_status("w05", "succeeded")
    signal = Signal("drift", "w06", drifted=True, value=0.5)  # no serving_from
    d, after = decide(signal, state, config(), T0)
    assert not d.launch and d.rule == "backoff"
    assert "1 of 4 consecutive drifted windows needed" in d.reason  # the default limit
    assert "the last 2 drift launches made no challenger that was deployed" in d.reason
    assert (after.drift_backoff, after.drift_pending) == (2, ("w05",))


def test_another_model_serving_resets_the_count() -> None:
    state = PolicyState(drift_backoff=3, drift_serving="w-first")
    signal = drifted(9, "w08")  # a performance launch's model now serves
    d, after = decide(signal, state, config(), T0)
    assert after.drift_backoff == 0 and after.drift_serving == "w08"
    assert d.rule == "hysteresis"


def test_the_back_off_survives_the_state_file_and_refuses_a_malformed_one() -> None:
    state = PolicyState(drift_backoff=2, drift_pending=("w05", "w07"), drift_serving="w01")
    again = PolicyState.from_json(state.to_json())
    assert (again.drift_backoff, again.drift_pending, again.drift_serving) == (
        2,
        ("w05", "w07"),
        "w01",
    )
    assert PolicyState.from_json("{}").drift_backoff == 0  # a state saved before it existed
    # One pending launch as text, or none as null, as the first version of the field wrote it.
    assert PolicyState.from_json('{"drift_pending": "w03"}').drift_pending == ("w03",)
    assert PolicyState.from_json('{"drift_pending": null}').drift_pending == ()
    bad = ('{"drift_backoff": -1}', '{"drift_backoff": "2"}', '{"drift_pending": [3]}')
    for text in bad:
        with pytest.raises(ValidationError, match="malformed"):
            PolicyState.from_json(text)


def test_at_most_a_few_launches_wait_for_their_outcome_the_oldest_first() -> None:
    cfg = config(drift_windows=1)
    state = PolicyState()
    for week in range(20):  # every drift run fails on coverage and none is re-run yet
        signal = drifted(week, "w-first", awaiting=awaiting(state))
        d, state = decide(signal, state, cfg, T0 + timedelta(days=week))
        assert d.launch
        state = state.with_snapshot_status(d.signal.snapshot, "failed")
    # The oldest stay: their labels come first.
    assert state.drift_pending == tuple(f"w{w:02d}" for w in range(8))


def test_a_drift_run_that_failed_otherwise_is_not_waited_for() -> None:
    state = PolicyState(drift_pending=("w01", "w02"), drift_serving="w-first")
    state = state.with_snapshot_status("w01", "failed").with_snapshot_status("w02", "failed")
    # Only w02 failed on label coverage: w01 (a crash, a launcher error) is never re-run.
    _, after = decide(drifted(3, "w-first", awaiting=("w02",)), state, config(), T0)
    assert after.drift_pending == ("w02",) and after.drift_backoff == 0


def test_a_drop_shown_beyond_noise_ends_the_back_off_even_when_its_launch_is_refused() -> None:
    state = PolicyState(drift_backoff=2, drift_pending=("w05",), drift_serving="w-first")
    state = state.with_snapshot_status("w04", "succeeded")  # the measured window: launched
    drop = {"metric": "roc_auc", "reference": 0.9, "drop_lower": 0.06}
    d, after = decide(Signal("performance", "w04", value=0.1, details=drop), state, config(), T0)
    assert not d.launch and d.rule == "duplicate"
    assert (after.drift_backoff, after.drift_pending) == (0, ())


def test_a_limit_below_drift_windows_is_refused_with_what_to_set() -> None:
    with pytest.raises(SettingsError, match="at least drift_windows"):
        config(drift_windows=3, drift_backoff_limit=2)
    assert config(drift_windows=3, drift_backoff_limit=3).backoff_limit == 3
    # Unset, the limit is twice drift_windows, so any drift_windows loads (and the config
    # every run receives, written back with its defaults, loads again).
    assert config().backoff_limit == 4
    assert config(drift_windows=6).backoff_limit == 12
    written = TriggerConfig.model_validate(config(drift_windows=6).model_dump())
    assert written.backoff_limit == 12
    assert config(drift_backoff=False).backoff_limit is None


def test_a_limit_of_drift_windows_never_says_it_backs_off() -> None:
    state = PolicyState(drift_backoff=3, drift_serving="w-first")
    d, _ = decide(drifted(1, "w-first"), state, config(drift_backoff_limit=2), T0)
    assert d.rule == "hysteresis" and "backing off" not in d.reason


def test_a_drop_too_small_to_launch_but_beyond_noise_ends_the_back_off() -> None:
    state = PolicyState(drift_backoff=2, drift_serving="w-first")

    def small_drop(lower: float) -> Signal:
        details = {"metric": "roc_auc", "reference": 0.9, "drop_lower": lower}
        return Signal("performance", "w06", value=0.03, details=details)  # trigger: 0.05

    d, after = decide(small_drop(0.004), state, config(), T0)
    assert not d.launch and d.rule == "below_threshold"
    assert after.drift_backoff == 0  # the drift is shown to cost something
    d, after = decide(small_drop(-0.01), state, config(), T0)
    assert not d.launch and after.drift_backoff == 2  # noise explains it: nothing learnt
