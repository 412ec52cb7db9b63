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


def drifted(window: int, serving: str | None, labelled: bool = False) -> Signal:
    details = {"serving_from": serving, "labelled_fired": labelled}
    return Signal("drift", f"w{window:02d}", drifted=True, value=0.5, details=details)


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

    without, _, _ = replay(config(drift_backoff_limit=None), 40)
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


def test_a_run_still_going_or_failed_teaches_nothing() -> None:
    cfg = config()
    state, serving = PolicyState(), "w-first"
    for i in range(2):
        d, state = decide(drifted(i, serving), state, cfg, T0 + timedelta(days=i))
    assert d.launch and state.drift_pending == "w01"
    # Still running: no outcome yet, the pending launch is kept.
    _, state = decide(drifted(2, serving), state, cfg, T0 + timedelta(days=2))
    assert state.drift_pending == "w01" and state.drift_backoff == 0
    # Failed (e.g. too few labels): no challenger was judged, no back-off.
    state = state.with_snapshot_status("w01", "failed")
    d, state = decide(drifted(3, serving), state, cfg, T0 + timedelta(days=3))
    assert d.launch  # w02 and w03 drifted: the plain hysteresis, no back-off
    assert state.drift_backoff == 0 and state.drift_pending == "w03"  # the new launch waits


def test_a_signal_that_does_not_say_which_model_serves_changes_nothing() -> None:
    state = PolicyState(drift_backoff=2, drift_pending="w05", drift_serving="w-first")
    state = state.with_snapshot_status("w05", "succeeded")
    signal = Signal("drift", "w06", drifted=True, value=0.5)  # no serving_from
    d, after = decide(signal, state, config(), T0)
    assert not d.launch and d.rule == "backoff"
    assert "1 of 4 consecutive drifted windows needed" in d.reason  # the default limit
    assert "the last 2 drift launches made no challenger that was deployed" in d.reason
    assert (after.drift_backoff, after.drift_pending) == (2, "w05")


def test_another_model_serving_resets_the_count() -> None:
    state = PolicyState(drift_backoff=3, drift_serving="w-first")
    signal = drifted(9, "w08")  # a performance launch's model now serves
    d, after = decide(signal, state, config(), T0)
    assert after.drift_backoff == 0 and after.drift_serving == "w08"
    assert d.rule == "hysteresis"


def test_the_back_off_survives_the_state_file_and_refuses_a_malformed_one() -> None:
    state = PolicyState(drift_backoff=2, drift_pending="w05", drift_serving="w01")
    again = PolicyState.from_json(state.to_json())
    assert (again.drift_backoff, again.drift_pending, again.drift_serving) == (2, "w05", "w01")
    assert PolicyState.from_json("{}").drift_backoff == 0  # a state saved before it existed
    for bad in ('{"drift_backoff": -1}', '{"drift_backoff": "2"}', '{"drift_pending": 3}'):
        with pytest.raises(ValidationError, match="malformed"):
            PolicyState.from_json(bad)


def test_a_limit_below_drift_windows_is_refused_with_what_to_set() -> None:
    with pytest.raises(SettingsError, match="at least drift_windows"):
        config(drift_windows=3, drift_backoff_limit=2)
    assert config(drift_windows=3, drift_backoff_limit=3).drift_backoff_limit == 3
