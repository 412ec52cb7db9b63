"""What the drift back-off saves and what it costs: a simulation of the trigger policy.

    from benchmarks.decisions.backoff import section
    print(section())          # under a minute on one core; section(quick=True): seconds

A model serves 52 weekly windows through the project's pure trigger policy (`decide`, default
`triggers` settings), driven as `retrain monitor` drives it. From week 4 its features drift on
every window with probability 0.95 (an assumption: a drift that goes on is seen in most
windows; before week 4 a window fires with probability 0.008, the measured dataset-level
false alarm rate). Labels arrive two weeks late, so a drift run launched for the newest
window fails on label coverage and the ``labels`` rule re-runs it two weeks later, when it
trains and is judged; a performance launch trains on the labelled window it measured at once,
and a drift launch gives way to it when both qualify in one check (rule ``deferred``). Each
drift signal carries the launch that made the serving champion (``serving_from``) and the
check's performance signal, as the monitor's does. Which challenger is deployed, and what the
labels show, follows a known truth:

* the drift is **benign** until week `h` (never, in the first case): a challenger trained on a
  window before `h` is no better than the champion, deployed at the gates' false-blessing rate
  (2.5%);
* from week `h` (uniform in 8..44) the drift **hurts** the champion. A challenger trained on a
  window from `h` on is deployed with probability `p_deploy`: 0.78 when the harm is one the
  labels show (the gates' power for a +0.05 AUC gain at 250 recent evaluation rows, the
  decisions table above), 0.43 when it is below ``performance_drop`` (a smaller gain: the
  power for +0.05 at 100 rows stands in for it). A labelled window from `h` on shows the
  champion's drop beyond noise with probability `p_label` (0.83: an AUC drop of 0.10 at 300
  labelled rows), which fires the performance rule (no hysteresis) and joins the drift signal
  (``labelled_fired``), as in the monitor. A harm below ``performance_drop`` never fires it;
  its drop is shown beyond noise (the interval above zero, which ends the back-off) with
  probability `p_small` per labelled window: 0.5, an assumption, or 0 (only the features
  reveal it: the worst case).

A run ends at the first deployed model trained on a window from `h` on. Counted: launches by
the drift rule on benign weeks (what the back-off saves; a ``labels`` re-run completes a drift
launch and is not counted again), and weeks from `h` to the first such deployment (what it
may cost). A run with none by week 52 counts the weeks to the year's end there (a lower bound:
a harm from week 44 leaves eight), and the last column says how many. ``drift_backoff_limit``
at its default (twice ``drift_windows``: 4), at 8, and the back-off off
(``drift_backoff: false``), on the same draws.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np

from retrain.settings.triggers import TriggerConfig
from retrain.triggers.policy import PolicyState, Signal, decide

__all__ = ["section", "simulate"]

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
WEEKS, DRIFT_FROM, LABEL_DELAY = 52, 4, 2
P_DRIFT, P_FALSE_ALARM, P_FALSE_BLESS = 0.95, 0.008, 0.025


def simulate(
    cfg: TriggerConfig,
    harm_at: int | None,
    p_deploy: float,
    p_label: float,
    rng: np.random.Generator,
    p_small: float = 0.0,
) -> tuple[int, int, bool]:
    """One year: (drift-rule launches on benign weeks, weeks from the harm to the first
    deployed model trained after it (to the year's end if none), whether one was)."""
    draws = rng.random((WEEKS, 4))  # drift verdict, label check, two deployments
    state, serving = PolicyState(), "w-first"
    benign_launches = 0
    waiting: dict[int, str] = {}  # week its labels arrive -> drift run waiting for them

    def judged(week: int, trained_on: int, draw: float) -> bool:
        """A run trained on window `trained_on` succeeded; whether its model is deployed."""
        nonlocal state, serving
        state = state.with_snapshot_status(f"w{trained_on:02d}", "succeeded")
        harmful = harm_at is not None and trained_on >= harm_at
        if draw < (p_deploy if harmful else P_FALSE_BLESS):
            serving = f"w{trained_on:02d}"
            return harmful
        return False

    for week in range(WEEKS):
        now = T0 + timedelta(weeks=week)
        drifted = bool(draws[week, 0] < (P_DRIFT if week >= DRIFT_FROM else P_FALSE_ALARM))
        measured = week - LABEL_DELAY  # the newest labelled window
        shown = harm_at is not None and measured >= harm_at and bool(draws[week, 1] < p_label)
        # The monitor's performance signal names the window it measured; the drift signal
        # carries it, and a drift launch gives way to it when it launches (rule `deferred`).
        perf = None
        if shown:
            drop = {"metric": "roc_auc", "reference": 0.85, "drop_lower": 0.02}
            perf = Signal("performance", f"w{measured:02d}", value=0.10, details=drop)
        elif harm_at is not None and measured >= harm_at and draws[week, 1] < p_small:
            small = {"metric": "roc_auc", "reference": 0.85, "drop_lower": 0.005}
            perf = Signal("performance", f"w{measured:02d}", value=0.03, details=small)
        # Every failed run here failed on coverage: the monitor reads that from its records.
        awaiting = tuple(x for x in state.drift_pending if state.snapshots.get(x) == "failed")
        details = {
            "serving_from": serving,
            "labelled_fired": shown,
            "awaiting_labels": awaiting,
            "performance": None if perf is None else perf.to_dict(),
        }
        signal = Signal("drift", f"w{week:02d}", drifted=drifted or shown, details=details)
        d, state = decide(signal, state, cfg, now)
        if d.launch:  # the newest window has no labels yet: the run fails on coverage
            benign_launches += int(harm_at is None or week < harm_at)
            state = state.with_snapshot_status(signal.snapshot, "failed")
            waiting[week + LABEL_DELAY] = signal.snapshot
        if perf is not None:  # handed next, launched or not (a small drop never launches)
            d, state = decide(perf, state, cfg, now)
            if d.launch and judged(week, measured, draws[week, 2]):
                return benign_launches, week - harm_at, True  # type: ignore[operator]
        snapshot = waiting.pop(week, None)
        if snapshot is not None:  # its labels arrived: the labels rule re-runs it
            relabel = Signal("labels", snapshot, value=0.95, details={"min_coverage": 0.9})
            d, state = decide(relabel, state, cfg, now + timedelta(hours=13))
            if d.launch and judged(week, int(snapshot[1:]), draws[week, 3]):
                return benign_launches, week - harm_at, True  # type: ignore[operator]
    return benign_launches, 0 if harm_at is None else WEEKS - harm_at, False


def _row(name: str, runs: list[tuple[int, int, bool]], harmful: bool) -> str:
    launches = np.array([r[0] for r in runs], dtype=float)
    if not harmful:
        return f"{name} | {launches.mean():.1f} | - | - | - |"
    delays = np.array([r[1] for r in runs], dtype=float)
    missed = 1.0 - np.mean([r[2] for r in runs])
    return (
        f"{name} | {launches.mean():.1f} | {np.median(delays):.0f} | "
        f"{np.percentile(delays, 90):.0f} | {missed:.1%} |"
    )


def section(quick: bool = False) -> str:
    runs = 100 if quick else 2000
    cases = [
        ("benign all year", False, 0.0, 0.0, 0.0),
        ("hurts from week h, labels show it", True, 0.78, 0.83, 0.0),
        ("hurts below performance_drop, shown beyond noise half the time", True, 0.43, 0.0, 0.5),
        ("hurts below performance_drop, only the features see it", True, 0.43, 0.0, 0.0),
    ]
    settings = [
        ("limit 4 (default)", TriggerConfig()),
        ("limit 8", TriggerConfig(drift_backoff_limit=8)),
        ("off", TriggerConfig(drift_backoff=False)),
    ]
    lines = [
        "## Drift back-off: launches saved, deployments delayed",
        "",
        (__doc__ or "").split("\n\n", 2)[2].strip(),
        "",
        f"{runs} simulated years per row, the same random draws for every setting.",
        "",
        "| case | back-off | drift launches on benign weeks (mean) | weeks from harm to a"
        " deployed model (median) | (90th percentile) | none by week 52 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, harmful, p_deploy, p_label, p_small in cases:
        for label, cfg in settings:
            rng = np.random.default_rng(20261203)
            results = []
            for _ in range(runs):
                harm_at = int(rng.integers(8, 45)) if harmful else None
                results.append(simulate(cfg, harm_at, p_deploy, p_label, rng, p_small))
            lines.append(f"| {name} | " + _row(label, results, harmful))
    return "\n".join(lines) + "\n"
