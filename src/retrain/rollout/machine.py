"""The canary rollout as a pure state machine, stepped one analysis at a time.

    state, actions = start_rollout(model, champion, canary, policy, now)
    state, actions = advance(state, observations, now)      # every interval
    state, actions = promote_now(state, now, reason)        # manual
    state, actions = roll_back_now(state, now, reason)      # manual

Nothing here reads a clock, a store or a metric: the caller passes them in and carries out
the returned actions (`SetTraffic`, `Promote`, `RollBack`). The policy (steps, interval,
checks, limits) is copied into the state when the rollout starts, so a rollout finishes under
the rules it began with and its persisted state says which rules those were.

Rules, Flagger-style:
- an analysis is due `interval_seconds` after the previous one (or after the start);
- a canary that is not ready is not analysed (neither a pass nor a failure);
- `analyses_per_step` passing analyses in a row move to the next step (after the last: promotion);
- `failure_limit` failed analyses in a row roll back; a missing metric is a failed check;
- the quality checks are judged on the labelled evidence pooled over the step's analyses
  (`retrain.rollout.pool`), at the analysis whose pooled count reaches `min_labelled` and then
  once per doubling of it; with too few labels, or between looks (unless the last look
  passed), a quality check is not evaluated: that analysis neither passes nor fails (it does
  not break a run of failures either), and the step waits;
- a step that has not progressed within `progress_deadline_seconds` rolls back (a canary never
  ready, or whose metrics cannot be read); while its checks wait for labels that keep coming,
  the deadline follows the label rate up to `max_step_seconds` (`retrain.rollout.wait`); a
  step still short of labels then ends `inconclusive`: the canary leaves traffic unjudged
  (rolled back instead if a failed look stands against it);
- a provider that can bring no more labels in the step (`Observations.exhausted`, e.g. a replay
  of a small window) makes its analysis the step's final look, and a step still waiting
  then ends at once as at the deadline, the reason naming the shortfall and the fix; so does
  a step whose evidence cannot go on (`Observations.lost`, e.g. a replayed window gone).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from retrain.errors import ValidationError
from retrain.rollout import pool as evidence
from retrain.rollout import wait
from retrain.rollout.actions import (
    Action,
    Promote,
    RollBack,
    SetTraffic,
    action_dict,
    action_from_dict,
)
from retrain.rollout.analysis import Analysis, Observations, from_iso, iso
from retrain.rollout.checks import summarise
from retrain.settings.rollout import RolloutConfig

__all__ = [
    "ABORTED",
    "INCONCLUSIVE",
    "PROGRESSING",
    "PROMOTED",
    "ROLLED_BACK",
    "TERMINAL",
    "Action",
    "Analysis",
    "Observations",
    "Promote",
    "RollBack",
    "RolloutState",
    "SetTraffic",
    "abort",
    "action_from_dict",
    "advance",
    "is_due",
    "metrics_unreachable",
    "promote_now",
    "roll_back_now",
    "start_rollout",
]

PROGRESSING = "progressing"
PROMOTED = "promoted"
ROLLED_BACK = "rolled_back"
ABORTED = "aborted"
#: Ended for want of labels: the canary left traffic without a verdict on its quality.
INCONCLUSIVE = "inconclusive"
TERMINAL = frozenset({PROMOTED, ROLLED_BACK, ABORTED, INCONCLUSIVE})

#: Analyses kept in the state (the oldest are dropped; the registry's events keep the outcome).
MAX_ANALYSES = 50


@dataclass(frozen=True)
class RolloutState:
    """One canary's rollout. `pending` holds decided actions not yet confirmed as carried out.

    `seq` counts decisions that produced actions; with `rollout_id` it names each decision, so
    a re-run after a crash can tell an action it already carried out from a new one. `pool`
    holds the current step's pooled labelled sums and `looks` the quality checks' looks at
    them (`retrain.rollout.pool`); `step_deadline` is the step's deadline once label traffic
    moved it (`retrain.rollout.wait`); `population` what the step's draws come from
    (`Observations.population`). All four are reset when the step changes.
    """

    rollout_id: str
    model: str
    champion: str
    canary: str
    policy: RolloutConfig
    phase: str
    step: int
    started_at: datetime
    step_started_at: datetime
    last_analysis_at: datetime | None = None
    passed_in_step: int = 0
    failures: int = 0
    reason: str = ""
    finished_at: datetime | None = None
    analyses: tuple[Analysis, ...] = ()
    pending: tuple[Action, ...] = ()
    seq: int = 0
    pool: Mapping[str, float] = field(default_factory=dict)
    looks: evidence.Looks = field(default_factory=evidence.Looks)
    step_deadline: datetime | None = None
    population: tuple[str, ...] = ()

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL

    @property
    def traffic(self) -> int:
        """The canary's share now: the current step's, 100 once promoted, 0 once removed."""
        if self.phase == PROMOTED:
            return 100
        if self.phase in TERMINAL:
            return 0
        return self.policy.steps[self.step]

    @property
    def next_analysis_at(self) -> datetime:
        base = self.last_analysis_at or self.started_at
        return base + timedelta(seconds=self.policy.interval_seconds)

    @property
    def deadline(self) -> datetime:
        """When the current step ends if it has not progressed."""
        if self.step_deadline is not None:
            return self.step_deadline
        return self.step_started_at + timedelta(seconds=self.policy.progress_deadline_seconds)

    def step_label(self) -> str:
        """E.g. ``step 2/3 (25%)``: the canary step the rollout is (or ended) at."""
        canary_steps = len(self.policy.steps) - 1
        step = min(self.step, canary_steps - 1)
        return f"step {step + 1}/{canary_steps} ({self.policy.steps[step]}%)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "rollout_id": self.rollout_id,
            "model": self.model,
            "champion": self.champion,
            "canary": self.canary,
            "phase": self.phase,
            "step": self.step,
            "step_label": self.step_label(),
            "traffic": self.traffic,
            "started_at": self.started_at.isoformat(),
            "step_started_at": self.step_started_at.isoformat(),
            "last_analysis_at": iso(self.last_analysis_at),
            "next_analysis_at": None if self.terminal else self.next_analysis_at.isoformat(),
            "deadline": None if self.terminal else self.deadline.isoformat(),
            "passed_in_step": self.passed_in_step,
            "failures": self.failures,
            "reason": self.reason,
            "finished_at": iso(self.finished_at),
            "seq": self.seq,
            "pending": [action_dict(a) for a in self.pending],
            "policy": self.policy.model_dump(mode="json"),
            "analyses": [a.as_dict() for a in self.analyses],
            "pool": dict(self.pool),
            "looks": self.looks.as_dict(),
            "step_deadline": iso(self.step_deadline),
            "population": list(self.population),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RolloutState:
        try:
            return cls(
                rollout_id=str(raw["rollout_id"]),
                model=str(raw["model"]),
                champion=str(raw["champion"]),
                canary=str(raw["canary"]),
                policy=RolloutConfig.model_validate(raw["policy"]),
                phase=str(raw["phase"]),
                step=int(raw["step"]),
                started_at=datetime.fromisoformat(raw["started_at"]),
                step_started_at=datetime.fromisoformat(raw["step_started_at"]),
                last_analysis_at=from_iso(raw.get("last_analysis_at")),
                passed_in_step=int(raw.get("passed_in_step", 0)),
                failures=int(raw.get("failures", 0)),
                reason=str(raw.get("reason", "")),
                finished_at=from_iso(raw.get("finished_at")),
                analyses=tuple(Analysis.from_dict(a) for a in raw.get("analyses", [])),
                pending=tuple(action_from_dict(a) for a in raw.get("pending", [])),
                seq=int(raw.get("seq", 0)),
                pool={str(k): float(v) for k, v in raw.get("pool", {}).items()},
                looks=evidence.Looks.from_dict(raw.get("looks")),
                step_deadline=from_iso(raw.get("step_deadline")),
                population=tuple(str(w) for w in raw.get("population", ())),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValidationError(f"rollout state is malformed: {err!r}") from None


def start_rollout(
    model: str,
    champion: str,
    canary: str,
    policy: RolloutConfig,
    now: datetime,
    task: str = "classification",
) -> tuple[RolloutState, tuple[Action, ...]]:
    """A new rollout at the first step; the checks are resolved for `task` and frozen in."""
    _aware(now)
    if champion == canary:
        raise ValidationError(f"canary {canary!r} is already the champion: nothing to roll out")
    policy = policy.model_copy(update={"checks": policy.checks_for(task)})
    traffic = policy.steps[0]
    state = RolloutState(
        rollout_id=f"{canary}@{now.strftime('%Y%m%dT%H%M%S.%fZ')}",
        model=model,
        champion=champion,
        canary=canary,
        policy=policy,
        phase=PROGRESSING,
        step=0,
        started_at=now,
        step_started_at=now,
        reason=f"canary {canary} started at {traffic}% beside champion {champion}; "
        f"{wait.needs(policy)}",
    )
    return _decide(state, (SetTraffic(traffic),))


def is_due(state: RolloutState, now: datetime) -> bool:
    """Whether an analysis should run at `now`."""
    return not state.terminal and now >= state.next_analysis_at


def advance(
    state: RolloutState, observations: Observations, now: datetime
) -> tuple[RolloutState, tuple[Action, ...]]:
    """One analysis tick. Returns the state unchanged (and no actions) if none is due."""
    _aware(now)
    if not is_due(state, now):
        return state, ()
    policy = state.policy
    label = state.step_label()
    if not observations.ready:
        analysis = Analysis(
            now,
            state.step,
            state.traffic,
            "not_ready",
            "canary is not ready",
            source=observations.source,
        )
        state = _record(state, analysis)
        if now >= state.deadline:
            waited = (now - state.step_started_at).total_seconds()
            return _roll_back(
                state,
                now,
                f"canary never became ready at {label}: waited {waited:.0f}s, progress "
                f"deadline {policy.progress_deadline_seconds:.0f}s",
            )
        left = (state.deadline - now).total_seconds()
        return replace(
            state, reason=f"canary not ready at {label}; waiting ({left:.0f}s to the deadline)"
        ), ()

    if policy.checks is None:
        raise ValidationError("rollout state has no checks: start rollouts with start_rollout")
    if lost := observations.lost:
        why = f"and the step's evidence cannot go on ({lost})"
        return _end_unjudged(state, now, why, f"at {label}: {lost}", lost)
    pool = evidence.add(state.pool, observations.metrics)
    count = evidence.labelled(pool)
    if _quality_undecided(state):
        deadline = wait.extended_deadline(
            policy,
            state.step_started_at,
            state.deadline,
            count > evidence.labelled(state.pool),
            count,
            evidence.next_look_at(pool, state.looks, policy.min_labelled),
            now,
        )
        state = replace(state, step_deadline=deadline)
    results, looks = evidence.judge(
        policy.checks,
        observations.metrics,
        pool,
        state.looks,
        policy.confidence,
        policy.min_labelled,
        len(policy.steps) - 1,
        now + timedelta(seconds=policy.interval_seconds) > state.deadline,
        policy.min_positives,
        final=bool(observations.exhausted),
    )
    state = replace(
        state, pool=pool, looks=looks, population=state.population or observations.population
    )
    failed = any(r.passed is False for r in results)
    waiting = not failed and any(r.waiting for r in results)
    summary = summarise(results)
    analysis = Analysis(
        now,
        state.step,
        state.traffic,
        "failed" if failed else "waiting" if waiting else "passed",
        summary,
        results,
        evidence.without_cells(observations.metrics),
        observations.source,
    )
    state = _record(state, analysis)

    if waiting:
        spent = observations.exhausted  # no more labels can come: end the step now
        if spent or now >= state.deadline:
            waited = (now - state.step_started_at).total_seconds()
            when = f"and no more labels can come ({spent})" if spent else "at the deadline"
            why = f"too few labels at {label} after {waited:.0f}s: {summary}"
            why = wait.spent(policy, label, count, observations, summary) if spent else why
            return _end_unjudged(state, now, when, why, summary)
        left = (state.deadline - now).total_seconds()
        short = wait.projection(policy, state.step_started_at, count, now)
        return replace(
            state,
            reason=f"waiting at {label} ({left:.0f}s to the deadline): {summary}"
            + (f"; {short}" if short else ""),
        ), ()

    if failed:
        failures = state.failures + 1
        state = replace(state, failures=failures, passed_in_step=0)
        if failures >= policy.failure_limit:
            return _roll_back(
                state,
                now,
                f"{failures} failed analyses in a row at {label} "
                f"(limit {policy.failure_limit}): {summary}",
            )
        if now >= state.deadline:
            return _roll_back(state, now, f"no progress at {label} by the deadline: {summary}")
        return replace(
            state,
            reason=f"analysis failed at {label} ({failures} of {policy.failure_limit} allowed "
            f"in a row): {summary}",
        ), ()

    passed = state.passed_in_step + 1
    state = replace(state, failures=0, passed_in_step=passed)
    if passed < policy.analyses_per_step:
        if now >= state.deadline:
            return _roll_back(state, now, f"no progress at {label} by the deadline: {summary}")
        return replace(
            state,
            reason=f"analysis {passed}/{policy.analyses_per_step} passed at {label}: {summary}",
        ), ()

    next_step = state.step + 1
    next_traffic = policy.steps[next_step]
    if next_traffic >= 100:
        healthy = sum(1 for a in state.analyses if a.verdict == "passed")
        return _promote(
            state,
            now,
            f"canary {state.canary} healthy through {len(policy.steps) - 1} steps "
            f"({healthy} passing analyses); last: {summary}",
        )
    state = replace(
        state,
        step=next_step,
        step_started_at=now,
        passed_in_step=0,
        pool={},
        looks=evidence.Looks(),
        step_deadline=None,
        population=(),
        reason=f"{label} passed ({summary}); canary to {next_traffic}%",
    )
    return _decide(state, (SetTraffic(next_traffic),))


def promote_now(
    state: RolloutState, now: datetime, reason: str
) -> tuple[RolloutState, tuple[Action, ...]]:
    """Promote by hand, skipping the remaining steps."""
    _aware(now)
    _refuse_terminal(state, "promote")
    analysis = Analysis(now, state.step, state.traffic, "manual", f"manual promotion: {reason}")
    return _promote(_record(state, analysis), now, f"promoted by hand: {reason}")


def roll_back_now(
    state: RolloutState, now: datetime, reason: str
) -> tuple[RolloutState, tuple[Action, ...]]:
    """Roll back by hand."""
    _aware(now)
    _refuse_terminal(state, "roll back")
    analysis = Analysis(now, state.step, state.traffic, "manual", f"manual rollback: {reason}")
    return _roll_back(_record(state, analysis), now, f"rolled back by hand: {reason}")


def metrics_unreachable(
    state: RolloutState, now: datetime, error: str
) -> tuple[RolloutState, tuple[Action, ...]]:
    """The metrics backend could not be read at or past the step's deadline: roll back."""
    _aware(now)
    _refuse_terminal(state, "roll back")
    why = f"metrics unreachable at {state.step_label()} past the progress deadline: {error}"
    analysis = Analysis(now, state.step, state.traffic, "failed", why, source="unreachable")
    return _roll_back(_record(state, analysis), now, why)


def abort(state: RolloutState, now: datetime, reason: str) -> RolloutState:
    """End a rollout whose canary was replaced or removed by someone else (no actions)."""
    _aware(now)
    if state.terminal:
        return state
    return replace(state, phase=ABORTED, finished_at=now, reason=reason, pending=())


def _promote(
    state: RolloutState, now: datetime, reason: str
) -> tuple[RolloutState, tuple[Action, ...]]:
    state = replace(state, phase=PROMOTED, finished_at=now, reason=reason)
    return _decide(state, (Promote(state.canary, reason),))


def _roll_back(
    state: RolloutState, now: datetime, reason: str
) -> tuple[RolloutState, tuple[Action, ...]]:
    state = replace(state, phase=ROLLED_BACK, finished_at=now, reason=reason)
    return _decide(state, (RollBack(state.canary, reason),))


def _inconclusive(
    state: RolloutState, now: datetime, reason: str
) -> tuple[RolloutState, tuple[Action, ...]]:
    """End without a verdict: the canary leaves traffic as in a rollback, named as what it is."""
    reason = f"inconclusive, canary taken out of traffic unjudged: {reason}"
    state = replace(state, phase=INCONCLUSIVE, finished_at=now, reason=reason)
    return _decide(state, (RollBack(state.canary, reason),))


def _end_unjudged(
    state: RolloutState, now: datetime, when: str, reason: str, summary: str
) -> tuple[RolloutState, tuple[Action, ...]]:
    """End a step no evidence can come to: a rollback if a failed look stands, else inconclusive."""
    if not state.failures:
        return _inconclusive(state, now, reason)
    earlier = (a for a in reversed(state.analyses) if a.verdict == "failed")
    why = next((a.reason for a in earlier if a.step == state.step), summary)
    return _roll_back(state, now, f"a failed look at {state.step_label()} stands {when}: {why}")


def _quality_undecided(state: RolloutState) -> bool:
    """Whether the step still waits for a look that passes its quality checks."""
    checks = state.policy.checks or ()
    quality = {c.name for c in checks if evidence.is_quality(c.name)}
    return bool(quality) and not quality <= set(state.looks.held)


def _decide(
    state: RolloutState, actions: tuple[Action, ...]
) -> tuple[RolloutState, tuple[Action, ...]]:
    return replace(state, pending=actions, seq=state.seq + 1), actions


def _record(state: RolloutState, analysis: Analysis) -> RolloutState:
    analyses = (*state.analyses, analysis)[-MAX_ANALYSES:]
    return replace(state, analyses=analyses, last_analysis_at=analysis.at)


def _refuse_terminal(state: RolloutState, what: str) -> None:
    if state.terminal:
        raise ValidationError(
            f"cannot {what} canary {state.canary}: its rollout already ended ({state.phase}: "
            f"{state.reason})"
        )


def _aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValidationError("the rollout clock returned a naive datetime; use timezone-aware")
