"""Quality evidence pooled over a step's analyses: the sums, the looks, tick by tick."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from rollout_support import healthy, run_script

from retrain.rollout import pool
from retrain.rollout.machine import (
    INCONCLUSIVE,
    PROGRESSING,
    ROLLED_BACK,
    Observations,
    RollBack,
    RolloutState,
    SetTraffic,
)
from retrain.settings.rollout import CheckSpec, RolloutConfig

POLICY = RolloutConfig(interval_seconds=60, progress_deadline_seconds=600)


def summary(values: np.ndarray) -> tuple[float, float, float]:
    return float(len(values)), float(values.mean()), float(values.std(ddof=1))


def paired(n: float, canary: float, champion: float = 0.9, diff_std: float = 0.35) -> Observations:
    return healthy(
        **{
            "canary.accuracy": canary,
            "champion.accuracy": champion,
            "canary.labelled": n,
            "champion.labelled": n,
            "paired_labelled": n,
            "accuracy_diff_std": diff_std,
        }
    )


run = run_script


def test_pooled_sums_give_the_statistics_of_all_the_rows() -> None:
    rng = np.random.default_rng(0)
    losses = [rng.gamma(2.0, 0.2, size) for size in (120, 300, 45)]
    correct = [rng.random(size) < 0.8 for size in (120, 300, 45)]
    sums: dict[str, float] = {}
    for loss, right in zip(losses, correct, strict=True):
        n, mean, std = summary(loss)
        sums = pool.add(
            sums,
            {
                "canary.labelled": n,
                "canary.accuracy": float(right.mean()),
                "canary.loss": mean,
                "canary.loss_std": std,
            },
        )
    everything = np.concatenate(losses)
    got = pool.pooled_metrics(sums)
    assert got["canary.labelled"] == 465
    assert got["canary.accuracy"] == pytest.approx(np.concatenate(correct).mean())
    assert got["canary.loss"] == pytest.approx(everything.mean())
    assert got["canary.loss_std"] == pytest.approx(everything.std(ddof=1))
    # Nothing for the champion: its count is 0, so the smaller predictor's count is 0.
    assert got["champion.accuracy"] is None and pool.labelled(sums) == 0


def test_paired_differences_pool_and_mixed_evidence_is_not_paired() -> None:
    rng = np.random.default_rng(1)
    sums: dict[str, float] = {}
    diffs = []
    for size in (200, 350):
        champion = (rng.random(size) < 0.85).astype(float)
        canary = (rng.random(size) < 0.8).astype(float)
        diffs.append(champion - canary)
        sums = pool.add(
            sums,
            {
                "canary.labelled": float(size),
                "champion.labelled": float(size),
                "paired_labelled": float(size),
                "canary.accuracy": float(canary.mean()),
                "champion.accuracy": float(champion.mean()),
                "accuracy_diff_std": float((champion - canary).std(ddof=1)),
            },
        )
    got = pool.pooled_metrics(sums)
    assert got["paired_labelled"] == 550 and pool.labelled(sums) == 550
    assert got["accuracy_diff_std"] == pytest.approx(np.concatenate(diffs).std(ddof=1))
    # One unpaired analysis (split traffic) in the pool: the samples are no longer the same
    # rows, so the pool is judged as two independent samples, by the smaller count.
    mixed = pool.add(
        sums,
        {"canary.labelled": 30.0, "champion.labelled": 270.0, "canary.accuracy": 0.8,
         "champion.accuracy": 0.85},
    )  # fmt: skip
    assert pool.pooled_metrics(mixed)["paired_labelled"] is None
    assert pool.labelled(mixed) == 580


def test_looks_spend_at_most_the_alpha_of_the_rollout() -> None:
    spent = [1 - pool.look_confidence(0.95, 3, look) for look in range(30)]
    assert spent[0] == pytest.approx(0.05 / 6)
    assert spent[1] == pytest.approx(0.05 / 12)
    assert 3 * sum(spent) <= 0.05


def test_split_labels_pool_until_the_first_look_then_reset_with_the_step() -> None:
    few = healthy(**{"canary.labelled": 300.0, "champion.labelled": 2700.0})
    state, decided = run(POLICY, [few] * 8)
    # 300 canary labels per analysis: 2100 >= 4 x 500 at tick 7, judged and passed there.
    assert decided == [(7, (SetTraffic(25),))]
    assert [a.verdict for a in state.analyses] == ["waiting"] * 6 + ["passed", "waiting"]
    assert "accuracy_drop not evaluated: 300 labelled per predictor, fewer than 500" in (
        state.analyses[0].reason
    )
    assert "600 labelled per predictor pooled, next look at 2000" in state.analyses[1].reason
    # The new step starts a new pool: 300 again, not 2400.
    assert "300 labelled per predictor, fewer than 500" in state.analyses[-1].reason
    assert state.pool["canary.acc_n"] == 300 and state.looks == pool.Looks()


def test_the_last_analysis_before_the_deadline_looks_at_min_labelled() -> None:
    few = healthy(**{"canary.labelled": 60.0, "champion.labelled": 540.0})
    fixed = POLICY.model_copy(update={"max_step_seconds": 600.0})
    state, decided = run(fixed, [few] * 10)
    # 60 per analysis: 600 at tick 10 (600 s), the last analysis before the 600 s deadline.
    assert decided == [(10, (SetTraffic(25),))]
    assert state.analyses[-1].verdict == "passed"


def test_a_failed_look_is_not_repeated_between_looks() -> None:
    worse = paired(300.0, canary=0.80)
    state, decided = run(POLICY, [worse] * 6)
    # Paired: looks at 600 (tick 2) and 1200 (tick 4); tick 3 waits and does not count the
    # first look's failure again. Two failed looks in a row roll back.
    assert [a.verdict for a in state.analyses] == ["waiting", "failed", "waiting", "failed"]
    assert decided == [(4, (RollBack("v2", state.reason),))]
    assert state.phase == ROLLED_BACK
    assert "2 failed analyses in a row at step 1/3 (10%)" in state.reason


def test_a_passed_look_holds_until_the_next_one() -> None:
    policy = POLICY.model_copy(update={"analyses_per_step": 2})
    equal = paired(400.0, canary=0.90)
    state, decided = run(policy, [equal] * 3)
    # Look at 800 (tick 2) passes; tick 3 (1200 < 1600) repeats that pass: the second
    # passing analysis of the step.
    assert [a.verdict for a in state.analyses] == ["waiting", "passed", "passed"]
    assert decided == [(3, (SetTraffic(25),))]
    quality = state.analyses[-1].checks[2]
    assert quality.passed and "passed at the last pooled look (800 labelled" in quality.reason


def test_states_persisted_before_pooling_still_load_and_the_pool_round_trips() -> None:
    few = healthy(**{"canary.labelled": 300.0, "champion.labelled": 2700.0})
    state, _ = run(POLICY, [few] * 2)
    assert state.phase == PROGRESSING and state.pool["canary.acc_n"] == 600
    assert RolloutState.from_dict(state.as_dict()) == state
    old = {k: v for k, v in state.as_dict().items() if k not in ("pool", "looks")}
    loaded = RolloutState.from_dict(old)
    assert loaded.pool == {} and loaded.looks == pool.Looks()


#: What the replay provider says once a step has used every evaluation row it draws from.
SPENT = (
    "replay has 67 labelled evaluation rows (window(s) 3), all of them now in this step's evidence"
)


def test_an_exhausted_population_short_of_min_labelled_ends_the_step_at_once() -> None:
    few = paired(67.0, canary=0.90)
    waiting, decided = run(POLICY, [few] * 3)
    assert waiting.phase == PROGRESSING and decided == []  # more labels may still come
    state, decided = run(POLICY, [replace(few, exhausted=SPENT)] * 3)
    # None can: the step ends at its first analysis, unjudged, and says why and what to change.
    assert decided == [(1, (RollBack("v2", state.reason),))]
    assert state.phase == INCONCLUSIVE
    assert [a.verdict for a in state.analyses] == ["waiting"]
    assert state.reason.startswith(
        "inconclusive, canary taken out of traffic unjudged: no more labels can come at step "
        f"1/3 (10%): {SPENT}; 67 labelled, fewer than rollout.min_labelled 500"
    )
    assert "accuracy_drop not evaluated: 67 labelled per predictor, fewer than 500" in (
        state.reason
    )
    assert "lower rollout.min_labelled or raise rollout.replay.max_windows" in state.reason
    assert "set on_missing: skip on the quality checks" in state.reason


def test_an_exhausted_split_pool_is_judged_at_min_labelled_at_once() -> None:
    # 800 split labels: short of the 4 x 500 first look, which more analyses would reach...
    few = healthy(**{"canary.labelled": 800.0, "champion.labelled": 7200.0})
    _, decided = run(POLICY, [few])
    assert decided == []
    # ...but none can come: judged on the 800 now, as the last analysis before a deadline is.
    state, decided = run(POLICY, [replace(few, exhausted=SPENT)])
    assert decided == [(1, (SetTraffic(25),))]
    assert "800 labelled" in state.analyses[0].checks[2].reason


def test_a_final_look_judges_what_was_pooled_since_the_last_look() -> None:
    policy = POLICY.model_copy(update={"failure_limit": 3})
    worse = paired(600.0, canary=0.80)  # fails the first look at 600; the next is at 1200
    last = replace(paired(300.0, canary=0.80), exhausted=SPENT)
    nothing = replace(paired(0.0, canary=0.80), exhausted=SPENT)
    state, decided = run(policy, [worse, last, nothing])
    # Tick 2 brings the last 300 rows: a look at 900 (its own alpha share), not a wait for
    # 1200; tick 3 brings none, so the failed look stands and the canary is rolled back.
    assert [a.verdict for a in state.analyses] == ["failed", "failed", "waiting"]
    assert "900 labelled" in state.analyses[1].checks[2].reason
    assert "no more can come" in state.analyses[2].checks[2].reason
    assert decided == [(3, (RollBack("v2", state.reason),))]
    assert state.phase == ROLLED_BACK
    assert state.reason.startswith(
        f"a failed look at step 1/3 (10%) stands and no more labels can come ({SPENT}): "
        "accuracy canary 0.800"
    )


def test_an_exhausted_population_with_skip_configured_says_the_check_was_skipped_and_why() -> None:
    checks = (CheckSpec(name="accuracy_drop", max=0.02, on_missing="skip"),)
    policy = POLICY.model_copy(update={"checks": checks})
    state, decided = run(policy, [replace(paired(67.0, canary=0.90), exhausted=SPENT)])
    # Skipping was asked for: the step goes on, and its record says on how few rows.
    assert decided == [(1, (SetTraffic(25),))]
    assert "accuracy_drop skipped: 67 labelled per predictor, fewer than 500" in (
        state.analyses[0].reason
    )


def test_a_step_whose_evidence_is_lost_after_a_failed_look_is_rolled_back() -> None:
    policy = POLICY.model_copy(update={"failure_limit": 3})
    worse = paired(600.0, canary=0.80)  # fails the first look at 600
    gone = "window(s) 1 no longer exist in the history store"
    lost = replace(paired(0.0, canary=0.80), lost=gone)
    state, decided = run(policy, [worse, lost])
    # The step cannot go on, and the failed look stands: a rollback, as when no more labels can
    # come, not an unjudged end.
    assert decided == [(2, (RollBack("v2", state.reason),))]
    assert state.phase == ROLLED_BACK
    assert state.reason.startswith(
        f"a failed look at step 1/3 (10%) stands and the step's evidence cannot go on ({gone}): "
        "accuracy canary 0.800"
    )
    # Without a failed look the same loss ends the step unjudged.
    state, decided = run(policy, [lost])
    assert decided == [(1, (RollBack("v2", state.reason),))]
    assert state.phase == INCONCLUSIVE
    assert state.reason == (
        f"inconclusive, canary taken out of traffic unjudged: at step 1/3 (10%): {gone}"
    )
