"""Drift verdicts: false alarms by sample size and cardinality, and power against mean shifts.

Every window is simulated, so the truth is known: "no drift" windows come from the
reference's own distribution, shifted ones from it moved by a share of a standard deviation.
Everything runs through `build_profile` and `detect_drift` at the defaults. Sizes above
`drift.max_sample_rows` (100,000) are judged on a seeded sample of that many values per numeric
column; `section(sampled_only=True)` measures only those cells (the others do not depend on
the sample).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config, config_from_dict
from retrain.drift import ReferenceProfile, build_profile, detect_drift
from retrain.settings.drift import DriftConfig

NS = (200, 1000, 10_000, 100_000, 1_000_000)
SHIFTS = (0.1, 0.2, 0.5)
POWER_NS = (1000, 2000, 10_000, 100_000, 1_000_000)
#: Numeric columns longer than this are judged on a sample of this many values.
SAMPLE_CAP = DriftConfig().max_sample_rows or 0
DATASET_NS = (500, 2000, 10_000)


def drift_config(kinds: dict[str, str], **drift: Any) -> Config:
    """A config judging `kinds` with the `drift:` section's defaults (or `drift`'s values)."""
    return config_from_dict(
        {
            "name": "m",
            "task": "classification",
            "target": "y",
            "storage_root": "store",
            "data": {"uri": "e", "id_column": "id", "time_column": "t", "features": kinds},
            "labels": {"uri": "l", "id_column": "id", "label_column": "y"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "deploy": {"deployment_name": "m"},
            "drift": drift,
        }
    )


def _zipf(k: int) -> np.ndarray:
    w = 1.0 / np.arange(1, k + 1)
    return np.asarray(w / w.sum())


def _categories(rng: np.random.Generator, k: int, n: int, name: str = "c") -> pd.Categorical:
    names = [f"{name}{i}" for i in range(k)]
    return pd.Categorical.from_codes(rng.choice(k, size=n, p=_zipf(k)), categories=names)


Draw = Callable[[np.random.Generator, int], pd.Series | pd.Categorical | np.ndarray]
LAWS: dict[str, tuple[str, Draw]] = {
    "numeric, normal": ("numeric", lambda rng, n: rng.normal(0.0, 1.0, n)),
    "numeric, lognormal rounded (ties)": (
        "numeric",
        lambda rng, n: np.round(rng.lognormal(0.0, 1.0, n), 2),
    ),
    "categorical, k = 2": ("categorical", lambda rng, n: _categories(rng, 2, n)),
    "categorical, k = 50 (Zipf)": ("categorical", lambda rng, n: _categories(rng, 50, n)),
    "categorical, k = 500 (Zipf)": ("categorical", lambda rng, n: _categories(rng, 500, n)),
}


def _windows(n: int, quick: bool) -> int:
    if quick:
        return 40 if n <= 10_000 else 10
    # Small windows cost milliseconds and sit nearest the 1% target (the permutation null's
    # own level is 10 / 1,001): 1,000 of them give the rate within about +/-0.6 points. Above
    # 100,000 values a numeric column is judged on a sample, so 1M rows cost little more.
    return 1000 if n <= 1000 else 400 if n <= 10_000 else 200


def _per_feature(quick: bool, sampled_only: bool = False) -> list[str]:
    ns = NS[:4] if quick else NS
    if sampled_only:
        ns = tuple(n for n in NS if n > SAMPLE_CAP)
    head = "| feature | " + " | ".join(f"n = {n:,}" for n in ns) + " |"
    lines = [head, "|---|" + "---:|" * len(ns)]
    for label, (kind, draw) in LAWS.items():
        cfg = drift_config({"v": kind})
        cells = []
        for n in ns:
            rng = np.random.default_rng(n + len(label))
            windows = _windows(n, quick)
            alarms = effect_only = 0
            for _ in range(windows):
                profile = build_profile(pd.DataFrame({"v": draw(rng, n)}), cfg)
                f = detect_drift(profile, pd.DataFrame({"v": draw(rng, n)}), cfg).features[0]
                alarms += f.drifted
                effect_only += f.test == "distance" and (f.statistic or 0.0) >= f.threshold
            cell = f"{alarms / windows:.1%}"
            if effect_only > alarms:
                cell += f" ({effect_only / windows:.0%})"
            cells.append(f"{cell} of {windows}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


KINDS = {
    **{f"x{i}": "numeric" for i in range(6)},
    "amount": "numeric",
    "age": "numeric",
    "plan": "categorical",
    "city": "categorical",
    "shop": "categorical",
    "tier": "categorical",
}
#: Six features, half of them categorical with many categories (where a fixed
#: Jensen-Shannon threshold flagged nearly every window).
WIDE = {
    "x0": "numeric",
    "x1": "numeric",
    "amount": "numeric",
    "city": "categorical",
    "shop": "categorical",
    "brand": "categorical",
}
CARDINALITY = {"plan": 3, "tier": 12, "city": 50, "brand": 100, "shop": 200}


def _dataset(
    n: int, seed: int, shift: float = 0.0, kinds: dict[str, str] = KINDS
) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"x{i}": rng.normal(0.0, 1.0, n) for i in range(6)})
    df["x0"] += shift
    df["amount"] = np.round(rng.lognormal(3.0, 1.0, n), 2)
    df["age"] = rng.integers(18, 90, n).astype(float)
    for name, k in CARDINALITY.items():
        df[name] = _categories(rng, k, n, name)
    df = df[list(kinds)]
    scores = 1.0 / (1.0 + np.exp(-(df["x0"].to_numpy() + 0.5 * df["x1"].to_numpy())))
    return df, scores


def _dataset_profile(n: int, kinds: dict[str, str] = KINDS) -> tuple[ReferenceProfile, Config]:
    cfg = drift_config(kinds)
    df, scores = _dataset(n, seed=1, kinds=kinds)
    labels = (np.random.default_rng(2).random(n) < scores).astype(int)
    importances = {name: (0.6 if name == "x0" else 0.4 / (len(kinds) - 1)) for name in kinds}
    profile = build_profile(
        df, cfg, scores=scores, labels=labels, classes=[0, 1], importances=importances
    )
    return profile, cfg


def _dataset_level(quick: bool) -> list[str]:
    lines = [
        "| dataset | n | windows | dataset drift (any signal) | feature share "
        "| weighted share | prediction drift | any single feature |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, kinds in (("12 features", KINDS), ("6 wide features", WIDE)):
        lines += _dataset_rows(label, kinds, quick)
    return lines


def _dataset_rows(label: str, kinds: dict[str, str], quick: bool) -> list[str]:
    lines = []
    for n in DATASET_NS:
        profile, cfg = _dataset_profile(n, kinds)
        windows = 40 if quick else 400
        fired: dict[str, int] = {}
        any_feature = detected = 0
        for seed in range(1000, 1000 + windows):
            df, scores = _dataset(n, seed, kinds=kinds)
            report = detect_drift(profile, df, cfg, scores=scores)
            detected += report.drift_detected
            any_feature += any(f.drifted for f in report.features)
            for name in report.fired:
                fired[name] = fired.get(name, 0) + 1

        def rate(count: int, windows: int = windows) -> str:
            return f"{count / windows:.1%}"

        lines.append(
            f"| {label} | {n:,} | {windows} | {rate(detected)} "
            f"| {rate(fired.get('feature_share', 0))} "
            f"| {rate(fired.get('weighted_feature_share', 0))} "
            f"| {rate(fired.get('prediction_drift', 0))} | {rate(any_feature)} |"
        )
    return lines


def _power(quick: bool, sampled_only: bool = False) -> list[str]:
    lines = [
        "| n | " + " | ".join(f"{s}σ shift" for s in SHIFTS) + " |",
        "|---:|" + "---:|" * len(SHIFTS),
    ]
    ns = POWER_NS[:3] if quick else POWER_NS
    if sampled_only:
        ns = tuple(n for n in POWER_NS if n > SAMPLE_CAP)
    for n in ns:
        profile, cfg = _dataset_profile(n)
        windows = 10 if quick else (100 if n <= 10_000 else 40)
        cells = []
        for shift in SHIFTS:
            caught = detected = 0
            for seed in range(2000, 2000 + windows):
                df, scores = _dataset(n, seed, shift=shift)
                report = detect_drift(profile, df, cfg, scores=scores)
                caught += "x0" in report.drifted_features
                detected += report.drift_detected
            cells.append(f"{caught / windows:.0%} ({detected / windows:.0%})")
        lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    return lines


def section(quick: bool = False, sampled_only: bool = False) -> str:
    """The drift section of the decisions report (Markdown); with `sampled_only`, only the
    sizes above `drift.max_sample_rows`, judged on a sample (no dataset-level table)."""
    if sampled_only:
        return _sampled_section(quick)
    parts = [
        "## Drift verdicts",
        "",
        "Method: windows simulated from the reference's own distribution (no drift) or with "
        "one feature's mean moved by a share of its standard deviation, judged by "
        "`detect_drift` at the defaults; a distance verdict needs both its effect-size "
        "threshold and its null threshold (what two samples of these sizes from one "
        "distribution exceed with chance 1%, Bonferroni-divided across the report's verdicts).",
        "",
        "### False alarms of one feature (no drift)",
        "",
        "A one-feature report, so alpha is not divided: the worst case. In brackets, where "
        "larger: how often the distance alone passed its effect-size threshold (the rule "
        "before null thresholds). Below 1,000 values numeric features use KS at 0.01.",
        "",
        *_per_feature(quick),
        "",
        "### False alarms of a dataset (no drift)",
        "",
        "12 features (6 normal, lognormal with ties, integers; 3, 12, 50 and 200 Zipf "
        "categories), and 6 wide ones (2 normal, lognormal; 50, 100 and 200 Zipf "
        "categories); the scores of a model on two of them (prediction drift), and "
        "importances that give one feature 60% (so the weighted share fires on it alone).",
        "",
        *_dataset_level(quick),
        "",
        "### Power: a normal feature's mean moves",
        "",
        "The same dataset; the shifted feature is the important one. Share of windows whose "
        "report calls it drifted (in brackets: any dataset-level signal fired).",
        "",
        *_power(quick),
    ]
    return "\n".join(parts) + "\n"


def _sampled_section(quick: bool) -> str:
    parts = [
        "## Drift verdicts above the sample cap",
        "",
        f"Only the sizes above `drift.max_sample_rows` ({SAMPLE_CAP:,}), where each numeric "
        f"column (reference, window and model scores) is judged on a seeded uniform sample of "
        f"{SAMPLE_CAP:,} values; categorical columns are counted whole. Same simulation, "
        "seeds and window counts as the full section's cells of these sizes.",
        "",
        "### False alarms of one feature (no drift)",
        "",
        *_per_feature(quick, sampled_only=True),
        "",
        "### Power: a normal feature's mean moves",
        "",
        *_power(quick, sampled_only=True),
    ]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    import sys

    print(section(quick="--quick" in sys.argv[1:], sampled_only="--sampled" in sys.argv[1:]))
