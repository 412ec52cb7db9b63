"""How often the promotion gates decide right: simulations with a known truth.

    from benchmarks.decisions.gates import section
    print(section())          # about two minutes on one core; section(quick=True): seconds

Four measurements, all through the project's own gate code (`bootstrap_difference`,
`bootstrap_decline` and `decide` with the default `evaluation` settings, or
`build_training_set` + `fit_model` + `evaluate_challenger` end to end):

1. **Recent gates, scores with a known AUC.** Two models score the same evaluation rows; a
   model's score is ``mu * y + noise`` (binormal, so its true AUC is ``Phi(mu / sqrt 2)``), and
   the two models' noises correlate at 0.8, as two models of the same data do. The champion's
   true AUC is 0.80; the challenger's is equal or better by +0.01, +0.02 or +0.05. Per cell:
   the share of runs blessed, and the median minimum detectable gain (the interval's
   half-width). Gain 0 is the false-blessing rate (nominal 2.5%); the others are the power.
2. **History gate, scores with a known loss.** The same on history rows, the challenger worse
   by 0 to 0.06 AUC: the share of runs in which the forgetting gate fails (at 0 and within the
   0.02 budget a failure is a false alarm; beyond it a pass is a miss).
3. **History gate after a change of regime.** The champion scores AUC 0.85 on history rows
   and 0.65 on recent ones (the change broke it); the challenger gains G on the recent rows
   and loses L on history. Share of runs blessed with `accept_forgetting_on_change` on (the
   champion's decline judged on its unpaired bootstrap interval, as `evaluate_challenger` does)
   and off, and, as a control, the same challenger against a champion the world did not change
   (0.80 on both): the guard must still stop forgetting there.
4. **End to end on a stationary stream.** The champion is trained the way the train step trains
   it, then a challenger of the same specification (equally good) or a better one (a logistic
   model against an overfitting forest) on the next week: the share of runs in which the
   forgetting gate passes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import norm

from retrain.config import Config, config_from_dict
from retrain.evaluation.bootstrap import bootstrap_decline, bootstrap_difference
from retrain.evaluation.gates import GateInputs, decide, evaluate_challenger
from retrain.settings.evaluation import EvaluationConfig
from retrain.settings.training import TrainingConfig
from retrain.training.mix import build_training_set
from retrain.training.model import fit_model

__all__ = ["section"]

_DEFAULTS = EvaluationConfig()
_TRAINING_DEFAULTS = TrainingConfig()
_CHAMPION_AUC = 0.80
_NOISE_CORRELATION = 0.8
_GAINS = (0.0, 0.01, 0.02, 0.05)
_SIZES = (100, 250, 500, 1000, 2500)
_LOSSES = (0.0, 0.02, 0.04, 0.06)
_HISTORY_SIZES = (500, 2000, 10_000)
#: The budget's double: the forgetting the gate should catch, whose miss rate is quoted.
_MISS_AT = 0.04


@dataclass(frozen=True)
class _Cell:
    rate: float
    runs: int
    mdg: float
    undecided: float = 0.0

    def rate_text(self) -> str:
        half = 1.96 * math.sqrt(max(self.rate * (1 - self.rate), 1e-12) / self.runs)
        return f"{self.rate:.1%} ± {half:.1%}"


def _mu(auc: float) -> float:
    """The binormal separation whose AUC is `auc`."""
    return float(math.sqrt(2.0) * norm.ppf(auc))


def _scores(
    n: int, auc_a: float, auc_b: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced labels and two models' scores with the given true AUCs and correlated noise."""
    y = (np.arange(n) % 2).astype(int)
    shared = rng.normal(size=n)
    own = rng.normal(size=(2, n))
    r = _NOISE_CORRELATION
    noise = math.sqrt(r) * shared + math.sqrt(1 - r) * own
    return y, _mu(auc_a) * y + noise[0], _mu(auc_b) * y + noise[1]


def _interval(y: np.ndarray, a: np.ndarray, b: np.ndarray, seed: int) -> tuple[float, float]:
    _, lower, upper = bootstrap_difference(
        "classification",
        "roc_auc",
        y,
        expit(a),
        expit(b),
        [0, 1],
        n=_DEFAULTS.bootstrap_samples,
        confidence=_DEFAULTS.confidence,
        seed=seed,
    )
    return lower, upper


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def _recent_cell(
    n: int, gain: float, runs: int, age: float | None = None, refresh_after: int = 0
) -> _Cell:
    """Share blessed of `runs` comparisons; `age`: the challenger trained on data that many
    windows newer than the champion's, None: not known; `refresh_after`: as the setting (a
    refresh applies when both are given and the age reaches it, on the age alone)."""
    blessed = undecided = 0
    widths = []
    for seed in range(runs):
        rng = np.random.default_rng([n, round(gain * 1000) % 100_000, seed])
        y, challenger, champion = _scores(n, _CHAMPION_AUC + gain, _CHAMPION_AUC, rng)
        ci = _interval(y, challenger, champion, seed)
        r = decide(
            GateInputs(
                "roc_auc",
                True,
                _auc(y, challenger),
                _auc(y, champion),
                ci,
                recent_rows=n,
                min_rows=_DEFAULTS.min_rows,
                champion_age=age,
                refresh_after=refresh_after,
                refresh_evidence="age",  # no history rows here: the age alone
            )
        )
        blessed += r.blessed
        undecided += r.undecided
        widths.append((ci[1] - ci[0]) / 2)
    return _Cell(blessed / runs, runs, float(np.median(widths)), undecided / runs)


def _history_cell(n: int, loss: float, runs: int) -> _Cell:
    failed = 0
    widths = []
    for seed in range(runs):
        rng = np.random.default_rng([n, round(loss * 1000), seed, 7])
        y, challenger, champion = _scores(n, _CHAMPION_AUC - loss, _CHAMPION_AUC, rng)
        ci = _interval(y, challenger, champion, seed)
        r = decide(
            GateInputs(
                "roc_auc",
                True,
                0.9,
                0.8,
                (0.05, 0.15),  # a clear recent gain: only the history gate is in question
                _auc(y, challenger),
                _auc(y, champion),
                history_ci=ci,
                max_history_loss=_DEFAULTS.max_history_loss,
            )
        )
        gate = next(g for g in r.gates if g.name == "history_bounded_loss")
        failed += not gate.passed
        widths.append((ci[1] - ci[0]) / 2)
    return _Cell(failed / runs, runs, float(np.median(widths)))


#: (champion's history AUC, champion's recent AUC, recent gain G, history loss L) per row.
_CHANGE_ROWS = (1000, 2000)  # recent, history evaluation rows
#: (champion AUC on history, on recent rows, the challenger's recent gain, its history loss,
#: recent evaluation rows).
_CHANGE_CELLS = (
    (0.85, 0.65, 0.10, 0.04, _CHANGE_ROWS[0]),
    (0.85, 0.65, 0.10, 0.00, _CHANGE_ROWS[0]),
    (0.85, 0.65, 0.05, 0.10, _CHANGE_ROWS[0]),
    (0.85, 0.65, 0.00, 0.04, _CHANGE_ROWS[0]),
    # A modest decline: it does not clearly exceed the loss.
    (0.85, 0.80, 0.05, 0.04, _CHANGE_ROWS[0]),
    (0.80, 0.80, 0.10, 0.04, _CHANGE_ROWS[0]),
    # A concept flip on a small window: the champion now ranks worse than chance.
    (0.85, 0.30, 0.40, 0.30, 70),
    (0.85, 0.30, 0.10, 0.30, 70),  # its control: the gain is smaller than the loss
)


def _change_cell(cell: tuple[float, float, float, float, int], runs: int) -> tuple[float, float]:
    """Share of runs blessed with `accept_forgetting_on_change` on, and off."""
    history_auc, recent_auc, gain, loss, n_recent = cell
    n_history = _CHANGE_ROWS[1]
    on = off = 0
    for seed in range(runs):
        rng = np.random.default_rng(
            [
                round(history_auc * 100),
                round(recent_auc * 100),
                round(gain * 1000),
                round(loss * 1000),
                seed,
                11,
            ]
        )
        y_r, ch_r, cp_r = _scores(n_recent, recent_auc + gain, recent_auc, rng)
        y_h, ch_h, cp_h = _scores(n_history, history_auc - loss, history_auc, rng)
        _, decline_lower, decline_upper = bootstrap_decline(
            "classification",
            "roc_auc",
            (y_r, expit(cp_r)),
            (y_h, expit(cp_h)),
            [0, 1],
            n=_DEFAULTS.bootstrap_samples,
            confidence=_DEFAULTS.confidence,
            seed=seed,
            stratify=False,
        )
        inputs = GateInputs(
            "roc_auc",
            True,
            _auc(y_r, ch_r),
            _auc(y_r, cp_r),
            _interval(y_r, ch_r, cp_r, seed),
            _auc(y_h, ch_h),
            _auc(y_h, cp_h),
            history_ci=_interval(y_h, ch_h, cp_h, seed),
            max_history_loss=_DEFAULTS.max_history_loss,
            recent_rows=n_recent,
            min_rows=_DEFAULTS.min_rows,
            decline_ci=(decline_lower, decline_upper),
        )
        on += decide(inputs).blessed
        off += decide(dataclasses.replace(inputs, accept_forgetting_on_change=False)).blessed
    return on / runs, off / runs


# --- end to end ---------------------------------------------------------------------------------

_FOREST = "sklearn.ensemble.RandomForestClassifier"
_LOGISTIC = "sklearn.linear_model.LogisticRegression"


def _cfg(estimator: str) -> Config:
    params: dict[str, Any] = {"n_estimators": 30} if estimator == _FOREST else {}
    return config_from_dict(
        {
            "name": "gates",
            "task": "classification",
            "target": "label",
            "storage_root": "/tmp/unused",
            "data": {
                "uri": "/tmp/unused",
                "id_column": "id",
                "time_column": "ts",
                "window_size": "7d",
                "features": {"x1": "numeric", "x2": "numeric", "x3": "numeric"},
            },
            "labels": {"uri": "/tmp/unused", "id_column": "id", "label_column": "label"},
            "model": {"estimator": estimator, "params": params},
            "deploy": {"deployment_name": "gates"},
        }
    )


def _week(week: int, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, week])
    x = rng.normal(size=(n, 3))
    z = 1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2]
    return pd.DataFrame(
        {
            "id": [f"s{seed}-w{week}-{i}" for i in range(n)],
            "ts": pd.Timestamp("2024-01-01") + pd.Timedelta(weeks=week),
            "x1": x[:, 0],
            "x2": x[:, 1],
            "x3": x[:, 2],
            "label": np.where(rng.random(n) < expit(z), "yes", "no"),
        }
    )


def _end_to_end(challenger_estimator: str, runs: int) -> tuple[float, float, int]:
    """Share of runs whose forgetting gate passes, and the median history loss."""
    champion_cfg, cfg = _cfg(_FOREST), _cfg(challenger_estimator)
    passed, losses = 0, []
    for seed in range(runs):
        w = [_week(k, 2500, seed) for k in range(3)]
        champion = fit_model(champion_cfg, build_training_set(w[1], w[0], champion_cfg, seed).train)
        ts = build_training_set(w[2], pd.concat(w[:2], ignore_index=True), cfg, seed)
        challenger = fit_model(cfg, ts.train)
        r = evaluate_challenger(
            cfg, challenger, champion, ts.recent_holdout, ts.history_holdout, seed
        )
        passed += next(g.passed for g in r.gates if g.name == "history_bounded_loss")
        losses.append(r.comparison["history_loss"])
    return passed / runs, float(np.median(losses)), runs


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _runs(quick: bool) -> dict[str, int]:
    """Runs per cell. Full: 400 for equal models (the false-blessing rate, whose nominal 2.5%
    needs many runs to tell from 3.5%), 100 for the power cells, 100 on history up to 2,000
    rows and 20 at 10,000 (each run bootstraps 10,000 rows 500 times)."""
    if quick:
        return {
            "equal": 40,
            "power": 40,
            "history": 40,
            "large_history": 10,
            "change": 20,
            "e2e": 3,
        }
    return {
        "equal": 400,
        "power": 100,
        "history": 100,
        "large_history": 20,
        "change": 100,
        "e2e": 10,
    }


def section(quick: bool = False) -> str:
    """The Markdown section: method, then the three tables."""
    runs = _runs(quick)
    sizes = _SIZES[1::2] if quick else _SIZES[:4]
    lines = [
        "## Promotion gates: false blessings, power and the forgetting guard",
        "",
        f"Simulated with a known truth through the gate code at the default settings "
        f"({_DEFAULTS.confidence:.0%} paired bootstrap, {_DEFAULTS.bootstrap_samples} resamples, "
        f"min_rows {_DEFAULTS.min_rows}, max_history_loss {_DEFAULTS.max_history_loss}). "
        f"Scores are binormal (true AUC known), champion AUC {_CHAMPION_AUC}, the two models' "
        f"noise correlated at {_NOISE_CORRELATION}, balanced classes; {runs['equal']} runs per "
        f"cell at gain 0, {runs['power']} at the other gains, ± is the 95% binomial interval of "
        "the rate. The minimum detectable gain (MDG) is the median half-width of the gain's "
        "interval.",
        "",
        "### Recent gates: share blessed by true AUC gain (gain 0: false blessings, nominal 2.5%)",
        "",
    ]
    header = ["evaluation rows", *(f"gain {g:+.2f}" for g in _GAINS), "MDG", "undecided at 0"]
    rows = []
    for n in sizes:
        cells = [_recent_cell(n, g, runs["equal"] if g == 0 else runs["power"]) for g in _GAINS]
        rows.append(
            [
                str(n),
                *(c.rate_text() for c in cells),
                f"{cells[0].mdg:.3f}",
                f"{cells[0].undecided:.0%}",
            ]
        )
    lines += _table(header, rows)
    lines += [
        "",
        "Below min_rows a comparison that shows no gain is reported undecided (not enough "
        "evaluation rows) rather than rejected; a gain the interval does show still blesses. "
        "These comparisons carry no champion age, so no refresh applies (it is off by "
        "default): the rates of the improvement gate alone.",
        "",
        "### History gate: share failing by true AUC loss on history (budget "
        f"{_DEFAULTS.max_history_loss})",
        "",
    ]
    header = ["history rows", "runs", *(f"loss {v:.2f}" for v in _LOSSES), "MDG"]
    rows, misses = [], []
    for n in _HISTORY_SIZES[:2] if quick else _HISTORY_SIZES:
        n_runs = runs["history"] if n <= 2000 else runs["large_history"]
        cells = [_history_cell(n, v, n_runs) for v in _LOSSES]
        rows.append([f"{n:,}", str(n_runs), *(c.rate_text() for c in cells), f"{cells[0].mdg:.3f}"])
        missed = 1.0 - cells[_LOSSES.index(_MISS_AT)].rate
        misses.append(f"{missed:.0%} at {n:,} rows")
    lines += _table(header, rows)
    lines += [
        "",
        "The gate fails only when the whole interval of the loss lies beyond the budget, so a "
        "loss at or under the budget almost never fails it; the share failing beyond the budget "
        "is its power to catch forgetting (the rest are misses). A loss of "
        f"{_MISS_AT} (twice the budget) is missed {', '.join(misses)}: the smallest loss caught "
        "reliably is about the budget plus twice the MDG. The gate scores every history "
        f"evaluation row up to `training.history_holdout_rows` "
        f"({_TRAINING_DEFAULTS.history_holdout_rows:,} by default).",
        "",
        "### History gate after a change of regime: share blessed",
        "",
        f"{_CHANGE_ROWS[1]:,} history evaluation rows, {runs['change']} runs per row. A "
        "history loss beyond the budget is accepted "
        "(`evaluation.accept_forgetting_on_change`, on by default) only when the champion is "
        "worse on the recent rows than on history by more than the loss's upper bound, judged "
        "on the lower bound of its decline's interval (an unpaired bootstrap: the recent and "
        "the history rows resampled independently, as they are different rows), the recent "
        "gain's lower bound is above 0, and the recent gain exceeds the history loss on the "
        "point estimates.",
        "",
    ]
    change_rows = []
    for cell in _CHANGE_CELLS:
        rate_on, rate_off = _change_cell(cell, runs["change"])
        history_auc, recent_auc, gain, loss, n_recent = cell
        change_rows.append(
            [
                f"{n_recent:,}",
                f"{history_auc:.2f} / {recent_auc:.2f}",
                f"+{gain:.2f}",
                f"{loss:.2f}",
                f"{rate_on:.0%}",
                f"{rate_off:.0%}",
            ]
        )
    lines += _table(
        [
            "recent rows",
            "champion AUC history / recent",
            "challenger's recent gain",
            "its history loss",
            "blessed (accept on change)",
            "blessed (guard alone)",
        ],
        change_rows,
    )
    lines += [
        "",
        "### End to end: the forgetting gate on a stationary stream",
        "",
        "Weekly windows of 2,500 rows; the champion is a 30-tree forest trained on week 1 plus "
        "history (week 0), the challenger is trained on week 2 plus history, both through "
        "`build_training_set`, and judged by `evaluate_challenger` on evaluation rows neither "
        "trained on.",
        "",
    ]
    same = _end_to_end(_FOREST, runs["e2e"])
    better = _end_to_end(_LOGISTIC, runs["e2e"])
    lines += _table(
        ["challenger", "runs", "forgetting gate passed", "median history loss"],
        [
            [
                "same specification (equally good)",
                str(same[2]),
                f"{same[0]:.0%}",
                f"{same[1]:+.3f}",
            ],
            [
                "logistic (better on unseen data)",
                str(better[2]),
                f"{better[0]:.0%}",
                f"{better[1]:+.3f}",
            ],
        ],
    )
    return "\n".join(lines) + "\n"
