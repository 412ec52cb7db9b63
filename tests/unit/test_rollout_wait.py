"""A step's deadline follows label traffic: stepped tick by tick on a simulated clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError as PydanticValidationError
from rollout_support import T0, healthy, run_script

from retrain.rollout.machine import (
    INCONCLUSIVE,
    PROGRESSING,
    ROLLED_BACK,
    Observations,
    RollBack,
    RolloutState,
    SetTraffic,
    start_rollout,
)
from retrain.settings.rollout import RolloutConfig

# Fixed deadline 600 s (10 analyses); a step may wait up to 3600 s (60) while labels arrive.
POLICY = RolloutConfig(interval_seconds=60, progress_deadline_seconds=600, max_step_seconds=3600)


def split(canary: float, accuracy: float = 0.9, champion: float = 0.9) -> Observations:
    """Split traffic at 10 %: `canary` labels for the canary, nine times that for the champion."""
    return healthy(
        **{
            "canary.labelled": canary,
            "champion.labelled": 9 * canary,
            "canary.accuracy": accuracy,
            "champion.accuracy": champion,
        }
    )


run = run_script


def test_a_step_waits_past_the_fixed_deadline_while_labels_keep_arriving() -> None:
    # 60 canary labels per analysis: the split first look (4 x 500 = 2000) at tick 34, long
    # after the fixed 600 s deadline. With a fixed deadline this equal canary ended unjudged.
    state, decided = run(POLICY, [split(60.0)] * 40)
    assert decided == [(34, (SetTraffic(25),))]
    assert state.phase == PROGRESSING and state.step == 1
    step_one = [a for a in state.analyses if a.step == 0]
    assert [a.verdict for a in step_one] == ["waiting"] * 33 + ["passed"]


def test_the_deadline_is_projected_from_the_label_rate_within_its_bounds() -> None:
    state, _ = run(POLICY, [split(100.0)])
    # 100 labels in 60 s: 2000 projected at 1200 s, plus one analysis.
    assert state.deadline == T0 + timedelta(seconds=1260)
    state, _ = run(POLICY, [split(10.0)])
    assert state.deadline == T0 + timedelta(seconds=3600)  # the cap
    state, _ = run(POLICY, [split(0.0)])
    assert state.deadline == T0 + timedelta(seconds=600)  # no labels: the fixed deadline


def test_labels_that_stop_arriving_end_the_wait() -> None:
    script = [split(60.0)] * 12 + [split(0.0)] * 60
    state, decided = run(POLICY, script)
    # 720 by tick 12 projects 2000 at 2000 s (deadline 2060 s); the count then stalls and the
    # deadline stays. The step's last analysis before it (tick 34) judges the 720 it has (at
    # least min_labelled): passed. The next step gets no labels: inconclusive at its fixed
    # deadline (600 s after tick 34).
    assert decided == [(34, (SetTraffic(25),)), (44, (RollBack("v2", state.reason),))]
    assert state.phase == INCONCLUSIVE and state.step == 1


def test_a_stalled_pool_below_min_labelled_ends_inconclusive_not_rolled_back() -> None:
    script = [split(40.0)] * 5 + [split(0.0)] * 60
    state, decided = run(POLICY, script)
    # 200 by tick 5 projects 2000 at 3000 s (+60 = 3060 s, tick 51); then nothing arrives.
    assert decided == [(51, (RollBack("v2", state.reason),))]
    assert state.phase == INCONCLUSIVE
    assert "too few labels at step 1/3 (10%)" in state.reason
    assert "200 labelled per predictor, fewer than 500" in state.reason


def test_a_rate_that_cannot_reach_min_labelled_by_the_cap_is_said_at_once() -> None:
    state, decided = run(POLICY, [split(5.0)] * 70)
    first = state.analyses[0]
    assert first.verdict == "waiting"
    assert state.reason.startswith("inconclusive")
    warning = (
        "at the observed 5 labelled per analysis this step gathers about 300 of the 500 it "
        "needs by its 3600s cap: it will end inconclusive"
    )
    assert warning in run(POLICY, [split(5.0)])[0].reason
    assert decided == [(60, (RollBack("v2", state.reason),))]
    assert state.phase == INCONCLUSIVE


def test_the_last_analysis_before_the_cap_judges_min_labelled() -> None:
    # 10 per analysis: 600 by the 3600 s cap (below 2000, above 500): judged there.
    state, decided = run(POLICY, [split(10.0)] * 60)
    assert decided == [(60, (SetTraffic(25),))]
    assert state.analyses[-1].verdict == "passed"


def test_a_failed_look_that_stands_at_the_deadline_is_a_rollback() -> None:
    policy = POLICY.model_copy(update={"failure_limit": 3})
    worse = split(60.0, accuracy=0.7)
    state, decided = run(policy, [worse] * 34 + [split(0.0)] * 60)
    assert state.analyses[33].verdict == "failed"
    assert decided == [(35, (RollBack("v2", state.reason),))]
    assert state.phase == ROLLED_BACK
    assert "a failed look at step 1/3 (10%) stands at the deadline" in state.reason


def test_the_start_says_what_label_traffic_a_verdict_needs() -> None:
    prometheus = POLICY.model_copy(
        update={"provider": "prometheus", "prometheus": {"url": "http://prometheus:9090"}}
    )
    state, _ = start_rollout("loans", "v1", "v2", prometheus, T0)
    # Split traffic: 500 for the canary at 10 % over 60 analyses, 84 per analysis.
    assert "at least 84 labelled predictions per analysis at the 10% step" in state.reason
    assert "(334 for the full first look)" in state.reason
    # Replay (the default): both models score the same rows, at any share.
    state, _ = start_rollout("loans", "v1", "v2", POLICY, T0)
    assert "at least 9 labelled replayed rows per analysis" in state.reason


def test_the_moved_deadline_persists_and_older_states_load() -> None:
    state, _ = run(POLICY, [split(100.0)])
    assert RolloutState.from_dict(state.as_dict()) == state
    old = {k: v for k, v in state.as_dict().items() if k != "step_deadline"}
    assert RolloutState.from_dict(old).deadline == T0 + timedelta(seconds=600)


def test_the_cap_may_not_be_shorter_than_the_fixed_deadline() -> None:
    with pytest.raises(PydanticValidationError, match="max_step_seconds"):
        RolloutConfig(progress_deadline_seconds=600, max_step_seconds=300)
    # A long fixed deadline without a cap of its own is its own cap.
    long = RolloutConfig.model_validate({"progress_deadline_seconds": 86400})
    assert long.max_step_seconds == 86400
