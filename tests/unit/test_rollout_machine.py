"""The rollout state machine, stepped one tick at a time through scripted metric sequences."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError as PydanticValidationError
from rollout_support import T0, healthy

from retrain.errors import ValidationError
from retrain.rollout.checks import run_checks
from retrain.rollout.machine import (
    INCONCLUSIVE,
    PROGRESSING,
    PROMOTED,
    ROLLED_BACK,
    Observations,
    Promote,
    RollBack,
    RolloutState,
    SetTraffic,
    advance,
    is_due,
    promote_now,
    roll_back_now,
    start_rollout,
)
from retrain.settings.rollout import CheckSpec, RolloutConfig, default_checks

POLICY = RolloutConfig(interval_seconds=60, progress_deadline_seconds=600)


def start(policy: RolloutConfig = POLICY, task: str = "classification") -> RolloutState:
    state, actions = start_rollout("loans", "v1", "v2", policy, T0, task=task)
    assert actions == (SetTraffic(10),)
    return state


def run(
    state: RolloutState, script: list[Observations], every: float = 60
) -> tuple[RolloutState, list[tuple[int, tuple[object, ...]]]]:
    """Feed one observation per interval; return the end state and (tick, actions) pairs."""
    decided = []
    now = state.started_at
    for tick, obs in enumerate(script, start=1):
        now += timedelta(seconds=every)
        state, actions = advance(state, obs, now)
        if actions:
            decided.append((tick, actions))
        if state.terminal:
            break
    return state, decided


def test_healthy_canary_walks_every_step_then_is_promoted() -> None:
    state, decided = run(start(), [healthy()] * 10)
    assert [a for _, a in decided] == [
        (SetTraffic(25),),
        (SetTraffic(50),),
        (Promote("v2", state.reason),),
    ]
    assert [t for t, _ in decided] == [1, 2, 3]
    assert state.phase == PROMOTED and state.traffic == 100
    assert state.finished_at == T0 + timedelta(seconds=180)
    assert "healthy through 3 steps (3 passing analyses)" in state.reason
    assert [a.traffic for a in state.analyses] == [10, 25, 50]


def test_worse_quality_is_rolled_back_after_the_failure_limit() -> None:
    worse = healthy(**{"canary.accuracy": 0.80})  # champion 0.90: a drop of 0.10 > 0.02
    state, decided = run(start(), [healthy(), worse, worse, healthy()])
    assert state.phase == ROLLED_BACK
    assert decided[-1][0] == 3  # one failure is tolerated (failure_limit 2), the second is not
    (action,) = decided[-1][1]
    assert isinstance(action, RollBack) and action.version == "v2"
    assert "2 failed analyses in a row at step 2/3 (25%)" in state.reason
    assert "accuracy canary 0.800 vs champion 0.900" in state.reason


def test_a_single_failure_is_forgiven_by_a_pass() -> None:
    flaky = healthy(**{"canary.error_rate": 0.05})
    state, _ = run(start(), [flaky, healthy(), flaky, healthy(), healthy(), healthy()])
    assert state.phase == PROMOTED
    assert [a.verdict for a in state.analyses] == [
        "failed",
        "passed",
        "failed",
        "passed",
        "passed",
    ]


def test_no_metrics_is_rolled_back() -> None:
    empty = Observations(ready=True, metrics={}, source="no series")
    state, decided = run(start(), [empty, empty])
    assert state.phase == ROLLED_BACK
    assert decided[-1][0] == 2
    assert "no canary error rate" in state.reason
    # No labels at all is fewer than min_labelled: the quality check waits, it does not fail.
    quality = state.analyses[-1].checks[2]
    assert quality.waiting and quality.passed is None
    assert quality.reason == "accuracy_drop not evaluated: 0 labelled per predictor, fewer than 500"


def test_never_ready_is_rolled_back_at_the_deadline() -> None:
    not_ready = Observations(ready=False, source="pods pending")
    state, decided = run(start(), [not_ready] * 20)
    # Not ready is neither pass nor failure: only the 600 s deadline ends it, at tick 10.
    assert decided == [(10, (RollBack("v2", state.reason),))]
    assert state.phase == ROLLED_BACK and state.failures == 0
    assert "canary never became ready at step 1/3 (10%): waited 600s" in state.reason


def test_too_few_labels_wait_without_passing_or_failing() -> None:
    few = healthy(**{"canary.labelled": 40.0, "champion.labelled": 360.0})
    # Few labels here too: the quality checks pool the step's labels, and a flaky analysis
    # with 1000 of them would have judged (and passed) the quality check for the step.
    flaky = healthy(**{"canary.error_rate": 0.05, "canary.labelled": 40.0})
    # A failure, then a wait: the wait does not reset the run of failures, so the next failure
    # is the second in a row.
    state, decided = run(start(), [flaky, few, flaky])
    assert [a.verdict for a in state.analyses] == ["failed", "waiting", "failed"]
    assert state.phase == ROLLED_BACK and decided[-1][0] == 3
    # Waiting only, with the deadline fixed (no room to wait for labels): no step is taken,
    # and the deadline (600 s) ends the rollout, inconclusive (the canary was never judged).
    fixed = POLICY.model_copy(update={"max_step_seconds": 600.0})
    state, decided = run(start(fixed), [few] * 20)
    assert decided == [(10, (RollBack("v2", state.reason),))]
    assert state.phase == INCONCLUSIVE
    assert state.failures == 0 and state.passed_in_step == 0
    assert state.reason.startswith(
        "inconclusive, canary taken out of traffic unjudged: too few labels at step 1/3 (10%)"
    )
    # The pool: 10 analyses of 40 labels each by the deadline, still fewer than 500.
    assert "accuracy_drop not evaluated: 400 labelled per predictor, fewer than 500" in state.reason


def test_nothing_happens_before_the_interval() -> None:
    state = start()
    same, actions = advance(state, healthy(), T0 + timedelta(seconds=59))
    assert same is state and actions == ()
    assert not is_due(state, T0 + timedelta(seconds=59))
    assert is_due(state, T0 + timedelta(seconds=60))


def test_several_analyses_per_step() -> None:
    policy = RolloutConfig(interval_seconds=60, analyses_per_step=2, progress_deadline_seconds=600)
    state, decided = run(start(policy), [healthy()] * 10)
    assert [t for t, _ in decided] == [2, 4, 6]
    assert state.phase == PROMOTED


def test_flapping_step_is_rolled_back_at_the_deadline() -> None:
    policy = RolloutConfig(
        interval_seconds=60, analyses_per_step=2, failure_limit=3, progress_deadline_seconds=300
    )
    bad = healthy(**{"canary.latency_p95": 2.0})
    state, decided = run(start(policy), [healthy(), bad] * 5)
    assert state.phase == ROLLED_BACK and decided[-1][0] == 5
    assert "no progress at step 1/3 (10%) by the deadline" in state.reason


def test_missing_metric_can_be_skipped_by_config() -> None:
    checks = (
        CheckSpec(name="error_rate", max=0.01),
        CheckSpec(name="accuracy_drop", max=0.02, on_missing="skip"),
    )
    policy = RolloutConfig(interval_seconds=60, progress_deadline_seconds=600, checks=checks)
    no_labels = healthy(**{"canary.accuracy": None, "champion.accuracy": None})
    state, _ = run(start(policy), [no_labels] * 5)
    assert state.phase == PROMOTED
    assert "accuracy_drop skipped: no accuracy for the canary and champion" in (
        state.analyses[0].reason
    )


def test_manual_promotion_and_rollback() -> None:
    state = start()
    promoted, actions = promote_now(state, T0 + timedelta(seconds=5), "looks fine")
    assert promoted.phase == PROMOTED and actions == (Promote("v2", promoted.reason),)
    assert promoted.reason == "promoted by hand: looks fine"
    back, actions = roll_back_now(state, T0 + timedelta(seconds=5), "pager")
    assert back.phase == ROLLED_BACK and isinstance(actions[0], RollBack)
    with pytest.raises(ValidationError, match="already ended"):
        roll_back_now(promoted, T0 + timedelta(seconds=6), "too late")


def test_state_round_trips_through_json() -> None:
    state, _ = run(start(), [healthy(), healthy(**{"canary.error_rate": 0.5})])
    again = RolloutState.from_dict(state.as_dict())
    assert again == state
    assert again.phase == PROGRESSING and again.failures == 1


def test_regression_uses_the_loss_check() -> None:
    state = start(task="regression")
    assert [c.name for c in state.policy.checks or ()] == [
        "error_rate",
        "latency_p95",
        "loss_increase",
    ]
    worse = healthy(**{"canary.loss": 0.40})  # +54% over the champion's 0.26
    end, _ = run(state, [worse, worse])
    assert end.phase == ROLLED_BACK and "relative change +53.8%" in end.reason


def test_default_checks_and_their_reasons() -> None:
    results = run_checks(default_checks("classification"), healthy().metrics)
    assert [r.passed for r in results] == [True, True, True]
    assert results[1].reason == "canary p95 latency 20.0 ms: 0.02 <= 0.5"


def test_naive_clock_is_refused() -> None:
    with pytest.raises(ValidationError, match="naive"):
        start_rollout("loans", "v1", "v2", POLICY, T0.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("rollout", "message"),
    [
        ({"steps": [10, 50]}, "the last step must be 100"),
        ({"steps": [50, 25, 100]}, "steps must increase strictly"),
        ({"steps": [100]}, "at least one canary step"),
        ({"checks": [{"name": "p99", "max": 1}]}, "unknown check 'p99'"),
        ({"checks": [{"name": "error_rate", "max": 1}] * 2}, "repeated: error_rate"),
        ({"provider": "prometheus"}, "prometheus.url is required"),
        ({"interval_seconds": 600, "progress_deadline_seconds": 300}, "must exceed"),
        ({"stepz": [10, 100]}, "Extra inputs are not permitted"),
    ],
)
def test_config_errors_name_the_problem(rollout: dict[str, object], message: str) -> None:
    with pytest.raises(PydanticValidationError, match=message):
        RolloutConfig.model_validate(rollout)


def test_quality_checks_fail_only_beyond_tolerance_and_noise() -> None:
    # 0.921 vs 0.900 on 500 labelled canary rows: beyond the 0.02 budget, not beyond noise.
    small = healthy(
        **{"champion.accuracy": 0.921, "canary.accuracy": 0.900},
        **{"canary.labelled": 500.0, "champion.labelled": 4500.0},
    )
    (small_result,) = run_checks(
        [CheckSpec(name="accuracy_drop", max=0.02)], small.metrics, min_labelled=500
    )
    # By hand: 1.6449 x sqrt(0.9 x 0.1 / 500 + 0.921 x 0.079 / 4500) = 1.6449 x 0.014007.
    assert small_result.passed and small_result.margin == pytest.approx(0.02304, abs=1e-4)
    assert "0.021 > 0.02 but within noise (lower 95% bound -0.002038 <= 0" in small_result.reason
    # The same drop measured on 10x the rows is a real drop.
    large = healthy(
        **{"champion.accuracy": 0.921, "canary.accuracy": 0.900},
        **{"canary.labelled": 5000.0, "champion.labelled": 45000.0},
    )
    (large_result,) = run_checks(
        [CheckSpec(name="accuracy_drop", max=0.02)], large.metrics, min_labelled=500
    )
    assert large_result.passed is False
    # A significant drop within the tolerance passes: 0.01 on a million rows.
    tiny = healthy(
        **{"champion.accuracy": 0.91, "canary.accuracy": 0.90},
        **{"canary.labelled": 1e6, "champion.labelled": 1e6},
    )
    (tiny_result,) = run_checks([CheckSpec(name="accuracy_drop", max=0.02)], tiny.metrics)
    assert tiny_result.passed
    # Loss: relative margin from the per-prediction spread.
    noisy = healthy(
        **{"canary.loss": 0.30, "champion.loss": 0.25, "canary.loss_std": 0.5},
        **{"champion.loss_std": 0.5, "canary.labelled": 100.0, "champion.labelled": 900.0},
    )
    (loss_result,) = run_checks([CheckSpec(name="loss_increase", max=0.1)], noisy.metrics)
    assert loss_result.value == pytest.approx(0.2) and loss_result.passed
    (strict,) = run_checks([CheckSpec(name="loss_increase", max=0.1)], noisy.metrics, 0.5001)
    assert strict.passed is False  # at ~50% confidence the margin vanishes
