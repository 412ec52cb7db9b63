"""Benchmark: what judging a long numeric column on a sample costs in accuracy.

Above `drift.max_sample_rows` (100,000 by default) a numeric column is judged on a seeded
uniform sample of that many values (`retrain.drift`). For reference and current columns of
1,000,000 values (normal; lognormal rounded to 2 digits, with ties), the current one moved by
0.05 of a standard deviation, it compares the sampled verdict's Wasserstein (normalised) and KS
statistics with those of every value (`max_sample_rows: null`), over seeded repetitions, and
records the Wasserstein null threshold at the sample's size (one feature, alpha 0.01, and
Bonferroni-divided by 25 verdicts), against the 0.1 effect-size threshold. Writes
``benchmarks/results/drift-sample.md``. A measurement, not a test:

    .venv/bin/python benchmarks/bench_drift_sample.py [--reps 10]
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config
from retrain.drift import build_profile, detect_drift

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # benchmarks/ is not a package: decisions/ is
from decisions.drift import drift_config  # noqa: E402

N = 1_000_000
SHIFT = 0.05
FEATURES = {"x": "numeric"}
Law = Callable[[np.random.Generator, float], np.ndarray]
#: Standard deviation of lognormal(0, 1): sqrt((e - 1) e).
_LOGNORMAL_SD = float(np.sqrt((np.e - 1.0) * np.e))
LAWS: dict[str, Law] = {
    "normal": lambda rng, shift: rng.normal(shift, 1.0, N),
    "lognormal rounded (ties)": lambda rng, shift: (
        np.round(rng.lognormal(0.0, 1.0, N), 2) + shift * _LOGNORMAL_SD
    ),
}


def _config(**drift: Any) -> Config:
    return drift_config(FEATURES, **drift)


def _statistics(ref: pd.DataFrame, cur: pd.DataFrame, **drift: Any) -> tuple[float, float, float]:
    """(Wasserstein, its null threshold, KS) of one feature at these settings."""
    cfg = _config(**drift)
    profile = build_profile(ref, cfg)
    w = detect_drift(profile, cur, cfg).features[0]
    ks = detect_drift(profile, cur, _config(**drift, features={"x": {"method": "ks"}}))
    assert w.statistic is not None and w.null_threshold is not None
    return w.statistic, w.null_threshold, float(ks.features[0].statistic or 0.0)


def measure(reps: int) -> list[str]:
    cap = _config().drift.max_sample_rows
    lines = [
        "| law | reps | \\|ΔW\\| mean | \\|ΔW\\| max | \\|ΔKS\\| mean | \\|ΔKS\\| max "
        "| W null threshold, alpha 0.01 | alpha 0.01 / 25 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, draw in LAWS.items():
        dw, dks, nulls, divided = [], [], [], []
        for seed in range(reps):
            rng = np.random.default_rng(seed)
            ref, cur = pd.DataFrame({"x": draw(rng, 0.0)}), pd.DataFrame({"x": draw(rng, SHIFT)})
            w, null, ks = _statistics(ref, cur)
            w_all, _, ks_all = _statistics(ref, cur, max_sample_rows=None)
            dw.append(abs(w - w_all))
            dks.append(abs(ks - ks_all))
            nulls.append(null)
            divided.append(_statistics(ref, cur, null_alpha=0.01 / 25)[1])
        lines.append(
            f"| {label} | {reps} | {np.mean(dw):.4f} | {np.max(dw):.4f} | {np.mean(dks):.4f} "
            f"| {np.max(dks):.4f} | {min(nulls):.4f}–{max(nulls):.4f} "
            f"| {min(divided):.4f}–{max(divided):.4f} |"
        )
    return [
        "# Drift on a sample: accuracy",
        "",
        f"Python {platform.python_version()}, numpy {np.__version__}. Columns of {N:,} values, "
        f"judged on a sample of {cap:,} (`drift.max_sample_rows`, the default) and on every "
        f"value; the current column moved by {SHIFT} sd. ΔW, ΔKS = the sampled statistic − "
        "the one of every value (Wasserstein divided by the reference sd; KS the largest ECDF "
        "gap). The null threshold is the sampled verdict's (what two samples of the sample's "
        "size from one law exceed with chance alpha), to set beside the 0.1 effect-size "
        "threshold of the normalised Wasserstein distance.",
        "",
        *lines,
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--output", default=str(HERE / "results" / "drift-sample.md"))
    args = p.parse_args(argv)
    out = Path(args.output)
    out.write_text("\n".join(measure(args.reps)))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
