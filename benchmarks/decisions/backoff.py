"""What the drift back-off saves and what it costs: a simulation of the trigger policy.

    from benchmarks.decisions.backoff import section
    print(section())          # about a minute on one core; section(quick=True): seconds

A model serves 52 weekly windows through the project's pure trigger policy (`decide`, default
`triggers` settings). From week 4 its features drift on every window with probability 0.95
(an assumption: a drift that goes on is seen in most windows; before week 4 a window fires
with probability 0.008, the measured dataset-level false alarm rate), and each drift signal
carries the launch that made the serving champion, as the monitor's does. Which challenger
is deployed, and what the labels show, follows a known truth:

* the drift is **benign** until week `h` (never, in the first scenario): a challenger trained
  then is no better than the champion, deployed at the gates' false-blessing rate (2.5%);
* from week `h` (uniform in 8..44) the drift **hurts** the champion. A challenger trained on
  a window from `h` on is deployed with probability `p_deploy` (the gates' power: 0.78 for a
  +0.05 AUC gain at 250 recent evaluation rows, the decisions table above). Labels arrive two
  weeks late; a labelled window from `h` on shows the champion's drop beyond noise with
  probability `p_label` (0.83: an AUC drop of 0.10 at 300 labelled rows; 0: a loss below
  ``performance_drop``, which only the features can reveal), and then fires the performance
  rule (no hysteresis) and joins the drift signal (``labelled_fired``), as in the monitor.

A run ends at the first deployed model after `h` (a harm from week 44 leaves eight weeks, so
the last column counts some runs the year ends on). Counted: drift-rule launches in the benign
weeks (what the back-off saves), and weeks from `h` to the first deployed model (what it may
cost), with ``drift_backoff_limit`` at its default (4), at 8, and off (null), on the same
draws.
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
) -> tuple[int, int | None]:
    """One run: (drift-rule launches before the harm, weeks from the harm to the first
    deployed model, None if none by the end)."""
    draws = rng.random((WEEKS, 3))  # drift verdict, label check, deployment
    state, serving = PolicyState(), "w-first"
    benign_launches = 0
    for week in range(WEEKS):
        harmful = harm_at is not None and week >= harm_at
        drifted = bool(draws[week, 0] < (P_DRIFT if week >= DRIFT_FROM else P_FALSE_ALARM))
        seen = harm_at is not None and week - LABEL_DELAY >= harm_at
        labelled = bool(seen and draws[week, 1] < p_label)
        now = T0 + timedelta(weeks=week)
        snapshot = f"w{week:02d}"
        details = {"serving_from": serving, "labelled_fired": labelled}
        d, state = decide(
            Signal("drift", snapshot, drifted=drifted or labelled, details=details),
            state,
            cfg,
            now,
        )
        if not d.launch and labelled:
            # The monitor's performance signal names the labelled window it measured: a
            # window launched before (by drift) is a duplicate.
            snapshot = f"w{week - LABEL_DELAY:02d}"
            drop = {"metric": "roc_auc", "reference": 0.85, "drop_lower": 0.02}
            signal = Signal("performance", snapshot, value=0.10, details=drop)
            d, state = decide(signal, state, cfg, now)
        if not d.launch:
            continue
        if d.rule == "drift" and not harmful:
            benign_launches += 1
        state = state.with_snapshot_status(snapshot, "succeeded")
        if draws[week, 2] < (p_deploy if harmful else P_FALSE_BLESS):
            serving = snapshot
            if harmful:
                return benign_launches, week - harm_at
    return benign_launches, None


def _row(name: str, runs: list[tuple[int, int | None]], harmful: bool) -> str:
    launches = np.array([r[0] for r in runs], dtype=float)
    if not harmful:
        return f"{name} | {launches.mean():.1f} | - | - | - |"
    delays = np.array([np.nan if r[1] is None else r[1] for r in runs])
    found = delays[~np.isnan(delays)]
    missed = 1.0 - len(found) / len(delays)
    return (
        f"{name} | {launches.mean():.1f} | {np.median(found):.0f} | "
        f"{np.percentile(found, 90):.0f} | {missed:.1%} |"
    )


def section(quick: bool = False) -> str:
    runs = 100 if quick else 2000
    cases = [
        ("benign all year", None, 0.0, 0.0),
        ("hurts from week h, labels show it (p_label 0.83)", "h", 0.78, 0.83),
        ("hurts from week h, below performance_drop (p_label 0)", "h", 0.78, 0.0),
    ]
    settings = [
        ("limit 4 (default)", TriggerConfig()),
        ("limit 8", TriggerConfig(drift_backoff_limit=8)),
        ("off", TriggerConfig(drift_backoff_limit=None)),
    ]
    lines = [
        "## Drift back-off: launches saved, deployments delayed",
        "",
        (__doc__ or "").split("\n\n", 2)[2].strip(),
        "",
        f"{runs} runs per row, the same random draws for every setting.",
        "",
        "| case | back-off | drift launches in benign weeks (mean) | weeks from harm to a"
        " deployed model (median) | (90th percentile) | not deployed by week 52 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, harm, p_deploy, p_label in cases:
        for label, cfg in settings:
            rng = np.random.default_rng(20261203)
            results = []
            for _ in range(runs):
                harm_at = None if harm is None else int(rng.integers(8, 45))
                results.append(simulate(cfg, harm_at, p_deploy, p_label, rng))
            lines.append(f"| {name} | " + _row(label, results, harm is not None))
    return "\n".join(lines) + "\n"
