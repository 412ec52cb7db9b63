"""How long a canary step waits for labels: a deadline that follows label traffic.

A step's quality checks are judged on labels pooled over its analyses (`retrain.rollout.pool`):
`min_labelled` per predictor, and under split traffic a first look at `SPLIT_FIRST_LOOK` times
that. At low label traffic a fixed progress deadline comes before those labels do, and the step
would end unjudged. So while a step's quality checks still wait for a look and its pooled count
grows, its deadline moves to when the observed label rate (pooled count over the step's age) is
projected to reach the next look, plus one analysis, never later than `max_step_seconds` after
the step began and never earlier than the fixed progress deadline. A count that stops growing
keeps the deadline it had, so labels that stop arriving end the wait.

A step whose deadline passes while its quality checks still wait for labels ends the rollout
*inconclusive* (`retrain.rollout.machine.INCONCLUSIVE`): the canary leaves traffic, unjudged,
and the outcome says so; it is not a rollback on evidence. `needs` says at canary start how
much label traffic the policy needs for a verdict; `projection` says as soon as the observed
rate falls short. A provider that can bring no more labels (a replay that has used every
evaluation row) ends a waiting step at once, and `spent` says why and what would fix it.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from retrain.rollout.analysis import Observations
from retrain.rollout.pool import SPLIT_FIRST_LOOK
from retrain.settings.rollout import RolloutConfig

__all__ = ["extended_deadline", "needs", "projection", "spent"]


def _rate(count: float, started: datetime, now: datetime) -> float:
    """Pooled labels per second over the step so far (0 before any)."""
    age = (now - started).total_seconds()
    return count / age if age > 0 else 0.0


def extended_deadline(
    policy: RolloutConfig,
    step_started_at: datetime,
    deadline: datetime,
    grew: bool,
    count: float,
    target: float,
    now: datetime,
) -> datetime:
    """The step's deadline after an analysis whose quality checks wait for `target` labels.

    `deadline` is the current one; `grew` whether this analysis added labels to the pool, which
    now holds `count`. Only a growing count moves the deadline, to the projected arrival of
    `target` plus one analysis, within the fixed progress deadline and the `max_step_seconds` cap.
    """
    rate = _rate(count, step_started_at, now)
    if not grew or rate <= 0 or count >= target:
        return deadline
    fixed = step_started_at + timedelta(seconds=policy.progress_deadline_seconds)
    cap = step_started_at + timedelta(seconds=policy.max_step_seconds)
    arrival = step_started_at + timedelta(seconds=target / rate)
    return max(fixed, min(cap, arrival + timedelta(seconds=policy.interval_seconds)))


def _per_analysis(policy: RolloutConfig, labels: float, share: float) -> int:
    """Labelled predictions per analysis that gather `labels` at `share` within the cap."""
    analyses = max(math.floor(policy.max_step_seconds / max(policy.interval_seconds, 1e-9)), 1)
    return math.ceil(labels / (share * analyses))


def needs(policy: RolloutConfig) -> str:
    """The label traffic a verdict needs, in words, for the report at canary start."""
    n = policy.min_labelled
    cap = f"{policy.max_step_seconds:g}s"
    every = f"one analysis every {policy.interval_seconds:g}s"
    if policy.provider == "replay":
        # Replay scores both models on the same rows: the count is the rows', at any share.
        least = _per_analysis(policy, n, 1.0)
        return (
            f"quality checks need {n} labelled rows scored by both models per step; a step waits"
            f" for them while they arrive, up to {cap}: at {every} that takes at least {least}"
            " labelled replayed rows per analysis, or the rollout ends inconclusive"
        )
    first = policy.steps[0]
    least = _per_analysis(policy, n, first / 100)
    full = _per_analysis(policy, SPLIT_FIRST_LOOK * n, first / 100)
    return (
        f"quality checks need {n} labelled predictions per predictor per step (split traffic: "
        f"the first look waits for {SPLIT_FIRST_LOOK * n} until the step's last analysis); a "
        f"step waits for them while they arrive, up to {cap}: at {every} that takes at least "
        f"{least} labelled predictions per analysis at the {first}% step ({full} for the full "
        "first look), fewer at later steps, or the rollout ends inconclusive"
    )


def projection(
    policy: RolloutConfig, step_started_at: datetime, count: float, now: datetime
) -> str:
    """A warning when the observed label rate cannot reach `min_labelled` by the cap, else ""."""
    rate = _rate(count, step_started_at, now)
    if rate <= 0:
        return ""
    by_cap = rate * policy.max_step_seconds
    if by_cap >= policy.min_labelled:
        return ""
    per_analysis = rate * policy.interval_seconds
    return (
        f"at the observed {per_analysis:.3g} labelled per analysis this step gathers about "
        f"{by_cap:.0f} of the {policy.min_labelled} it needs by its {policy.max_step_seconds:g}s "
        "cap: it will end inconclusive unless labels arrive faster"
    )


def spent(
    policy: RolloutConfig, label: str, count: float, observed: Observations, summary: str
) -> str:
    """Why a step whose provider can bring no more labels (`observed.exhausted`, its words)
    ends unjudged with `count` pooled, and what would let the checks judge such a canary
    (`observed.more`, the provider's words, when it says)."""
    exhausted = observed.exhausted
    n = policy.min_labelled
    short = f"{count:.0f} labelled, fewer than rollout.min_labelled {n}, " if count < n else ""
    knob = "rollout.min_labelled" if count < n else "rollout.min_positives"
    knob_more = "max_windows" if policy.replay.windows == "auto" else "windows"
    more = f" or raise rollout.replay.{knob_more}" if policy.provider == "replay" else ""
    more = f" or {observed.more}" if observed.more else more
    return (
        f"no more labels can come at {label}: {exhausted}; {short}so the quality checks cannot "
        f"be judged ({summary}); to judge such a canary lower {knob}{more}, or set "
        "on_missing: skip on the quality checks to go on without them"
    )
