"""`rollout`: advance a canary until it is promoted, rolled back, or time runs out.

This is the pipeline step after deploy (and what the demo calls): it ticks the controller,
sleeping until the next analysis is due. It holds the lock only during a tick, so a person can
promote or roll back by hand between two analyses. Out of time, the rollout simply stays where
it is: its state is in the store, and the next `rollout` or `retrain deploy advance` resumes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from retrain.config import config_from_text
from retrain.rollout import wait
from retrain.rollout.controller import RolloutController, TickResult
from retrain.rollout.lock import LockBusy
from retrain.rollout.machine import PROGRESSING, RolloutState
from retrain.rollout.observe import MetricsProvider
from retrain.steps.records import StepOutcome, finish_step, recorded_step
from retrain.steps.signals import sigterm_after
from retrain.storage import open_storage

if TYPE_CHECKING:
    from retrain.config import Config
    from retrain.deploy import Applier

__all__ = ["RolloutOutcome", "rollout", "rollout_markdown"]

#: Shortest wait between ticks, so a zero interval cannot spin.
_MIN_WAIT_S = 0.05
#: Wait before retrying a tick while someone else holds the lock.
_BUSY_WAIT_S = 5.0


@dataclass
class RolloutOutcome(StepOutcome):
    """How the rollout ended: "promoted", "rolled_back", "inconclusive" (too few
    labels: the canary left traffic unjudged), "aborted", "in_progress" or "none"."""

    phase: str = "none"
    version: str | None = None
    ticks: int = 0
    decisions: list[str] = field(default_factory=list)


def rollout(
    config_yaml: str,
    run_id: str,
    report_path: str | None = None,
    *,
    max_seconds: float | None = None,
    provider: MetricsProvider | None = None,
    applier_factory: Callable[[Config], Applier] | None = None,
    clock: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] | None = None,
    html_path: str | None = None,
) -> RolloutOutcome:
    """Tick the model's canary rollout until it ends or `max_seconds` have passed.

    `clock` and `sleep` are injectable together (a simulated clock whose sleep moves time on
    runs a whole rollout instantly). Records ``runs/<run_id>/rollout.{json,md}`` in the store.
    """
    cfg = config_from_text(config_yaml, source="pipeline parameter config_yaml")
    store = open_storage(cfg.storage_root)
    now = clock or (lambda: datetime.now(timezone.utc))
    wait = sleep or time.sleep
    controller = RolloutController(
        cfg,
        store,
        provider=provider,
        applier=applier_factory(cfg) if applier_factory else None,
        clock=now,
    )
    if max_seconds is None:
        max_seconds = cfg.rollout.step_budget_seconds
    with recorded_step(store, run_id, "rollout") as rec:
        start = now()
        seen: dict[str, RolloutState] = {}
        decisions: list[str] = []
        ticks = 0
        last: TickResult | None = None
        while True:
            try:
                # A SIGTERM mid-tick would be recorded as the canary's fault (a failed request,
                # a backend unreachable past the deadline): the tick finishes, then it stops.
                with sigterm_after():
                    last = controller.tick()
            except LockBusy as busy:
                decisions.append(f"{now().isoformat(timespec='seconds')} waiting: {busy}")
                last = None
            ticks += 1
            if last is not None:
                if last.state is not None and (last.in_flight or last.actions):
                    seen[last.state.rollout_id] = last.state
                if last.actions or not last.in_flight:
                    decisions.append(f"{now().isoformat(timespec='seconds')} {last.message}")
                if not last.in_flight:
                    break
            elapsed = (now() - start).total_seconds()
            if max_seconds is not None and elapsed >= max_seconds:
                decisions.append(f"out of time after {elapsed:.0f}s; the rollout stays in flight")
                break
            pause = _BUSY_WAIT_S
            if last is not None and last.state is not None:
                pause = (last.state.next_analysis_at - now()).total_seconds()
            if max_seconds is not None:
                pause = min(pause, max_seconds - elapsed)
            wait(max(pause, _MIN_WAIT_S))

        outcome = _outcome(seen, last, ticks, decisions)
        markdown = rollout_markdown(cfg, outcome, list(seen.values()))
        rec["phase"] = outcome.phase
        finish_step(
            rec, report_path, outcome.summary, outcome.details, markdown, html_path=html_path
        )
        return outcome


def _outcome(
    seen: dict[str, RolloutState], last: TickResult | None, ticks: int, decisions: list[str]
) -> RolloutOutcome:
    if not seen:
        message = last.message if last is not None else "no tick completed"
        return RolloutOutcome(
            "rollout",
            f"nothing to roll out: {message}",
            {"phase": "none"},
            phase="none",
            ticks=ticks,
            decisions=decisions,
        )
    state = list(seen.values())[-1]
    phase = "in_progress" if state.phase == PROGRESSING else state.phase
    if phase == "in_progress":
        summary = f"canary {state.canary} still in flight at {state.traffic}%: {state.reason}"
    else:
        summary = f"canary {state.canary} {phase.replace('_', ' ')}: {state.reason}"
    details: dict[str, Any] = {
        "phase": phase,
        "rollouts": [s.as_dict() for s in seen.values()],
        "decisions": decisions,
    }
    return RolloutOutcome(
        "rollout",
        summary,
        details,
        phase=phase,
        version=state.canary,
        ticks=ticks,
        decisions=decisions,
    )


def rollout_markdown(cfg: Config, outcome: RolloutOutcome, states: list[RolloutState]) -> str:
    """The step report: outcome, every analysis with its reason, the last checks, the policy."""
    lines = [f"# Rollout: {outcome.phase.replace('_', ' ')}", "", outcome.summary, ""]
    for state in states:
        p = state.policy
        lines += [
            f"## Canary `{state.canary}` (champion `{state.champion}` at start)",
            "",
            f"Steps {' -> '.join(f'{s}%' for s in p.steps)}, one analysis every "
            f"{p.interval_seconds:g}s, {p.analyses_per_step} passing per step, rollback after "
            f"{p.failure_limit} failed in a row or {p.progress_deadline_seconds:g}s without "
            f"progress (up to {p.max_step_seconds:g}s while labels keep arriving). Label "
            f"traffic: {wait.needs(p)}. Outcome: **{state.phase}**: {state.reason}",
            "",
            "| time | traffic | verdict | reason |",
            "|---|---|---|---|",
        ]
        for a in state.analyses:
            reason = a.reason.replace("|", "\\|")
            lines.append(
                f"| {a.at.isoformat(timespec='seconds')} | {a.traffic}% | {a.verdict} | {reason} |"
            )
        checked = [a for a in state.analyses if a.checks]
        if checked:
            lines += [
                "",
                "Last analysis checks:",
                "",
                "| check | value | max | result |",
                "|---|---|---|---|",
            ]
            for c in checked[-1].checks:
                value = "no data" if c.value is None else f"{c.value:.4g}"
                result = {True: "pass", False: "FAIL", None: "skipped"}[c.passed]
                lines.append(f"| {c.name} | {value} | {c.max:g} | {result} |")
            if checked[-1].source:
                lines += ["", f"Source: {checked[-1].source}"]
        lines.append("")
    if outcome.decisions:
        lines += ["## Decisions", ""] + [f"- {d}" for d in outcome.decisions] + [""]
    lines.append(f"Deployment `{cfg.deploy.namespace}/{cfg.deploy.deployment_name}`.")
    return "\n".join(lines) + "\n"
