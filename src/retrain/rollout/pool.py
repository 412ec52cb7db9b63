"""Labelled evidence pooled over the analyses of one traffic step.

One analysis rarely sees `min_labelled` labels per predictor at modest traffic (split traffic
gives the canary only its share), so the quality checks (accuracy_drop, loss_increase) are
judged on sums accumulated over the current step's analyses: per predictor the labelled count,
the correct count and the loss sum and sum of squares; for paired providers also the per-row
difference sums. The pooled sums give back the metrics the checks read (accuracy, loss,
loss_std, labelled, paired_labelled, ...), so the checks themselves do not change.

Repeated looks at accumulating data inflate false alarms (every look is another chance for
noise to cross the bound). The pool is therefore judged only at *looks*: the first analysis
at which the pooled count reaches a first-look count (see `judge`; never below
`min_labelled`), then at most once per doubling of the pooled count (a group-sequential
schedule with looks at n, 2n, 4n, ...), and each look spends a share of the rollout's alpha
(`look_confidence`), so an equal canary fails any look of the rollout at most
``1 - confidence`` of the time however many looks there are. This matters at low traffic,
where a failed look cannot be confirmed by a second one before the progress deadline (which
then rolls back). Between looks a quality check repeats the last look's pass (the evidence
has not weakened) and otherwise waits; it never repeats a failure, which would count one
look's evidence twice against the canary. The simulation (benchmarks/decisions/canary.py)
measures the resulting rates.

A provider whose population is used up (`Observations.exhausted`: a replay of a small window)
can add nothing more to the step, so its last analysis is a *final* look: the first look at
`min_labelled` (as at the deadline), a later one at once if anything was pooled since the
previous look. Each look still spends its own share of alpha (`look_confidence`); a pool
short of `min_labelled` stays not evaluated, and the machine ends the step on it at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from retrain.rollout.checks import CheckResult, run_checks
from retrain.rollout.ranking import is_cell
from retrain.settings.rollout import CheckSpec, is_rank_check

__all__ = [
    "QUALITY_CHECKS",
    "Looks",
    "add",
    "analyses",
    "is_quality",
    "judge",
    "labelled",
    "look_confidence",
    "next_look_at",
    "pooled_metrics",
    "without_cells",
]

#: The checks judged on pooled evidence (with the ranking checks, `is_quality`); the others
#: are judged per analysis.
QUALITY_CHECKS = frozenset({"accuracy_drop", "loss_increase"})
ROLES = ("canary", "champion")
#: Under split traffic the first look waits for this many times `min_labelled` (see `judge`).
SPLIT_FIRST_LOOK = 4
#: The pool's count of the analyses added to it (not evidence: `analyses`).
ANALYSES = "analyses"


def is_quality(name: str) -> bool:
    """Whether a check is judged on the pooled evidence: accuracy, loss or a ranking check."""
    return name in QUALITY_CHECKS or is_rank_check(name)


def _get(metrics: Mapping[str, float | None], key: str) -> float | None:
    value = metrics.get(key)
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _square_sum(mean: float, std: float | None, n: float) -> float | None:
    """Sum of squares of `n` values from their mean and (ddof=1) standard deviation."""
    if std is None:
        return None
    return std**2 * max(n - 1.0, 0.0) + n * mean**2


def _sums(metrics: Mapping[str, float | None]) -> dict[str, float]:
    """One analysis' observations as additive sums (keys absent where a metric is); paired
    score cells (`retrain.rollout.ranking`) are counts already."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if is_cell(key) and value:
            out[key] = float(value)
    for role in ROLES:
        n = _get(metrics, f"{role}.labelled")
        if n is None or n <= 0:
            continue
        accuracy = _get(metrics, f"{role}.accuracy")
        if accuracy is not None:
            out[f"{role}.acc_n"] = n
            out[f"{role}.correct"] = accuracy * n
        loss = _get(metrics, f"{role}.loss")
        if loss is not None:
            out[f"{role}.loss_n"] = n
            out[f"{role}.loss_sum"] = loss * n
            sq = _square_sum(loss, _get(metrics, f"{role}.loss_std"), n)
            if sq is not None:
                out[f"{role}.loss_sq_n"] = n
                out[f"{role}.loss_sq"] = sq
    paired = _get(metrics, "paired_labelled")
    if paired is None or paired <= 0:
        return out
    diffs = {
        # champion-correct minus canary-correct; canary loss minus champion loss
        "acc": (
            _get(metrics, "champion.accuracy"),
            _get(metrics, "canary.accuracy"),
            _get(metrics, "accuracy_diff_std"),
        ),
        "loss": (
            _get(metrics, "canary.loss"),
            _get(metrics, "champion.loss"),
            _get(metrics, "loss_diff_std"),
        ),
    }
    for name, (a, b, std) in diffs.items():
        if a is None or b is None or std is None:
            continue
        mean = a - b
        sq = _square_sum(mean, std, paired)
        assert sq is not None
        out[f"paired.{name}_n"] = paired
        out[f"paired.{name}_sum"] = mean * paired
        out[f"paired.{name}_sq"] = sq
    return out


def add(pool: Mapping[str, float], metrics: Mapping[str, float | None]) -> dict[str, float]:
    """The pool with one more analysis' observations added (and counted)."""
    out = dict(pool)
    for key, value in _sums(metrics).items():
        out[key] = out.get(key, 0.0) + value
    out[ANALYSES] = out.get(ANALYSES, 0.0) + 1.0
    return out


def analyses(pool: Mapping[str, float]) -> int:
    """How many analyses were added to the pool: the step's ready analyses so far."""
    return int(pool.get(ANALYSES, 0.0))


def _std(total: float, squares: float, n: float) -> float | None:
    if n < 2:
        return None
    return math.sqrt(max(squares - total**2 / n, 0.0) / (n - 1))


def pooled_metrics(pool: Mapping[str, float]) -> dict[str, float | None]:
    """The quality metrics the checks read, computed from the pooled sums.

    Every quality key is present (None where the pool has nothing), so merged over one
    analysis' metrics it replaces that analysis' quality evidence entirely. The paired keys are
    given only when every pooled analysis was paired (else the two samples are treated as
    independent, which is conservative).
    """
    out: dict[str, float | None] = {}
    for role in ROLES:
        acc_n = pool.get(f"{role}.acc_n", 0.0)
        loss_n = pool.get(f"{role}.loss_n", 0.0)
        sq_n = pool.get(f"{role}.loss_sq_n", 0.0)
        out[f"{role}.labelled"] = max(acc_n, loss_n)
        out[f"{role}.accuracy"] = pool[f"{role}.correct"] / acc_n if acc_n > 0 else None
        out[f"{role}.loss"] = pool[f"{role}.loss_sum"] / loss_n if loss_n > 0 else None
        out[f"{role}.loss_std"] = (
            _std(pool[f"{role}.loss_sum"], pool[f"{role}.loss_sq"], loss_n)
            if loss_n > 0 and sq_n == loss_n
            else None
        )
    # The ranking checks resample the pooled cells themselves.
    out.update({key: value for key, value in pool.items() if is_cell(key)})
    out["paired_labelled"] = None
    out["accuracy_diff_std"] = None
    out["loss_diff_std"] = None
    for name, key, role_n in (
        ("acc", "accuracy_diff_std", "acc_n"),
        ("loss", "loss_diff_std", "loss_n"),
    ):
        n = pool.get(f"paired.{name}_n", 0.0)
        if n <= 0 or any(pool.get(f"{r}.{role_n}", 0.0) != n for r in ROLES):
            continue
        out["paired_labelled"] = n
        out[key] = _std(pool[f"paired.{name}_sum"], pool[f"paired.{name}_sq"], n)
    return out


def without_cells(metrics: Mapping[str, float | None]) -> dict[str, float | None]:
    """`metrics` without the paired score cells (which the pool keeps, not each analysis)."""
    return {key: value for key, value in metrics.items() if not is_cell(key)}


def labelled(pool: Mapping[str, float]) -> float:
    """The pooled labelled count the checks judge by: paired if paired (paired score cells
    count their rows), else the smaller."""
    metrics = pooled_metrics(pool)
    paired = metrics["paired_labelled"]
    if paired is not None:
        return paired
    cells = sum(value for key, value in pool.items() if is_cell(key))
    if cells:
        return cells
    return min(metrics[f"{r}.labelled"] or 0.0 for r in ROLES)


@dataclass(frozen=True)
class Looks:
    """The step's looks so far: how many, the pooled count of the next (0: the first, not yet
    taken) and the quality checks that passed the last one."""

    count: int = 0
    next_at: float = 0.0
    held: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "next_at": self.next_at, "held": list(self.held)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> Looks:
        raw = raw or {}
        return cls(
            count=int(raw.get("count", 0)),
            next_at=float(raw.get("next_at", 0.0)),
            held=tuple(str(h) for h in raw.get("held", [])),
        )


def look_confidence(confidence: float, canary_steps: int, look: int) -> float:
    """The confidence of a step's `look`-th look (0 = first): alpha spending.

    The rollout's alpha ``1 - confidence`` is shared equally by the canary steps; a step spends
    half of its share on its first look and half of the remainder on each further look
    (``alpha / (steps * 2 ** (look + 1))``), so the looks of a step spend at most its share
    however many there are. At low traffic a failed look cannot be confirmed before the
    progress deadline, so any failed look may end the rollout; by the union bound an equal
    canary is then rolled back on quality at most ``1 - confidence`` of the time (asymptotically:
    the bound is a normal approximation), not ``1 - confidence`` per look.
    """
    return 1.0 - (1.0 - confidence) / (max(canary_steps, 1) * 2.0 ** (look + 1))


def next_look_at(
    pool: Mapping[str, float],
    looks: Looks,
    min_labelled: int,
    last_chance: bool = False,
    final: bool = False,
) -> float:
    """The pooled labelled count at which the quality checks are next judged (see `judge`)."""
    if looks.count:
        n = labelled(pool)
        # A final look takes whatever was pooled since the previous one (at next_at / 2).
        return n if final and 2 * n > looks.next_at else looks.next_at
    paired = pooled_metrics(pool)["paired_labelled"] is not None or any(map(is_cell, pool))
    first = paired or last_chance or final
    return float(min_labelled if first else SPLIT_FIRST_LOOK * min_labelled)


def judge(
    specs: Sequence[CheckSpec],
    metrics: Mapping[str, float | None],
    pool: Mapping[str, float],
    looks: Looks,
    confidence: float,
    min_labelled: int,
    canary_steps: int = 1,
    last_chance: bool = False,
    min_positives: int = 0,
    final: bool = False,
) -> tuple[tuple[CheckResult, ...], Looks]:
    """Every check: health on this analysis' `metrics`, quality on the `pool` (which already
    includes this analysis), at the confidence `look_confidence` gives.

    The quality checks are judged when the pooled count reaches ``looks.next_at``, or for the
    first look `min_labelled` if paired, else `SPLIT_FIRST_LOOK` times that (`min_labelled`
    when this is the `last_chance` before the deadline); the next look is then at twice the
    count, and `held` names the quality checks that passed. Between looks a held check passes
    again and any other judged quality check waits. When no more labels can come (`final`)
    the look is now: the first at `min_labelled`, a later one if the pool grew since the last
    look. Returns the results and the updated looks.
    """
    n = labelled(pool)
    merged = {**metrics, **pooled_metrics(pool)}
    # Two independent samples (split traffic): the first look waits for SPLIT_FIRST_LOOK x
    # `min_labelled` unless this analysis is the step's last before its progress deadline.
    # Judged earlier, a 5-point-worse canary at a 0.6 accuracy passed its looks (and so its
    # steps) too often: promoted in 10.9 % of simulated rollouts at 1000 labels per analysis
    # and 5.8 % at 2000 with 2x, 1.9 % and 0.2 % with 4x (for an equal canary's rollbacks
    # 1.9 -> 3.0 % and 0.8 -> 1.5 %). A paired comparison has the power at `min_labelled`.
    at = next_look_at(pool, looks, min_labelled, last_chance, final)
    level = look_confidence(confidence, canary_steps, looks.count)
    results = run_checks(specs, merged, level, min_labelled, min_positives)
    if n >= at:
        passed = tuple(r.name for r in results if is_quality(r.name) and r.passed)
        return results, Looks(looks.count + 1, 2 * n, passed)
    out = []
    for r in results:
        if not is_quality(r.name):
            out.append(r)
        elif r.waiting or r.passed is None:
            out.append(r)  # too few labels pooled (the count is the pool's), or skipped
        elif r.name in looks.held:
            reason = (
                f"{r.name} passed at the last pooled look ({at / 2:.0f} labelled per "
                f"predictor); {n:.0f} pooled now, next look at {at:.0f}"
            )
            out.append(replace(r, passed=True, reason=reason))
        else:
            later = "no more can come" if final else f"next look at {at:.0f}"
            reason = f"{r.name} not evaluated: {n:.0f} labelled per predictor pooled, {later}"
            out.append(replace(r, passed=None, waiting=True, reason=reason))
    return tuple(out), looks
