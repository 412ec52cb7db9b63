"""Error rates of the identifier drift verdict, by simulation with a known truth.

    python benchmarks/bench_identifiers.py --output benchmarks/results/identifiers.md

Ids follow a heavy-tailed law over a population that grows: each row is, with chance `rate`,
a new id (a sign-up), else half the time a Zipf(1.4) draw over the existing ids (redrawn
uniformly beyond them) and half the time a uniform one. The reference is a stretch of such a
stream, the current window the stretch right after it. Three scenarios per size:

- **churn** (no drift): the window continues the stream at the same rate. Any verdict is a
  false positive.
- **flood**: 20% of the window's rows are ids never seen, one to three rows each (a bot
  wave, a broken join), on top of the natural churn. A miss is a false negative.
- **top-k shift**: the reference's ten heaviest ids lose half their rows to the rest of the
  population (no new ids beyond churn). A miss is a false negative.

Each window is judged by `retrain.drift.detect_drift` with the default drift settings on a
profile built by `build_profile` (the column is the only feature, so no Bonferroni division).
Written as Markdown; the README quotes it.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from retrain.config import Config, config_from_dict
from retrain.drift import detect_drift
from retrain.drift._profile import build_profile

SIZES = ((5000, 1000), (50_000, 10_000))
FLOOD_SHARE = 0.2


def _config() -> Config:
    return config_from_dict(
        {
            "name": "ids",
            "task": "classification",
            "target": "y",
            "storage_root": "/tmp/unused",
            "data": {
                "uri": "/tmp/unused",
                "id_column": "id",
                "time_column": "t",
                "time_kind": "period",
                "features": {"user": "identifier"},
            },
            "labels": {"uri": "/tmp/unused", "id_column": "id", "label_column": "y"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "deploy": {"deployment_name": "ids"},
        }
    )


def stream(
    rng: np.random.Generator, n: int, first_new: int, rate: float
) -> tuple[np.ndarray, int]:
    """`n` ids continuing a stream whose next new id is `first_new`; and the next one after."""
    new = rng.random(n) < rate
    population = first_new + np.cumsum(new) - new  # ids that exist when each row arrives
    uniform = np.floor(rng.random(n) * population).astype(np.int64)
    # A Zipf draw beyond the population is redrawn uniformly (clipping it would pile its mass
    # on the newest id: a heavy id that moves, which is a shift, not churn).
    zipf = rng.zipf(1.4, n) - 1
    zipf = np.where(zipf < population, zipf, uniform)
    drawn = np.where(rng.random(n) < 0.5, zipf, uniform)
    ids = np.where(new, population, drawn)
    return ids, int(first_new + new.sum())


def _frame(ids: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"t": np.arange(len(ids)), "user": [f"u{i}" for i in ids]})


def _scenario(
    rng: np.random.Generator, n_ref: int, n_cur: int, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    ref, nxt = stream(rng, n_ref, n_ref // 4, 0.03)
    cur, _ = stream(rng, n_cur, nxt, 0.03)
    if kind == "flood":
        k = int(FLOOD_SHARE * n_cur)
        flood = np.repeat(np.arange(k), rng.integers(1, 4, k))[:k] + 10**9
        cur[rng.choice(n_cur, k, replace=False)] = flood
    elif kind == "top-k shift":
        heavy = pd.Series(ref).value_counts().index[:10].to_numpy()
        hit = np.isin(cur, heavy) & (rng.random(n_cur) < 0.5)
        cur[hit] = rng.integers(10, nxt, int(hit.sum()))
    return ref, cur


def run(reps: int, seed: int) -> list[dict[str, object]]:
    cfg = _config()
    rows: list[dict[str, object]] = []
    for n_ref, n_cur in SIZES:
        for kind in ("churn", "flood", "top-k shift"):
            rng = np.random.default_rng(seed)
            fired = unseen_fired = mass_fired = 0
            t0 = time.perf_counter()
            for _ in range(reps):
                ref, cur = _scenario(rng, n_ref, n_cur, kind)
                profile = build_profile(_frame(ref), cfg)
                [f] = detect_drift(profile, _frame(cur), cfg).features
                fired += f.drifted
                unseen_fired += ": drifted" in f.note
                mass_fired += "top-k mass shifted" in f.note
            rows.append(
                {
                    "n_ref": n_ref,
                    "n_cur": n_cur,
                    "scenario": kind,
                    "reps": reps,
                    "rate": fired / reps,
                    "unseen_rate": unseen_fired / reps,
                    "mass_rate": mass_fired / reps,
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(rows[-1], flush=True)
    return rows


def markdown(rows: list[dict[str, object]], reps: int, seed: int) -> str:
    lines = [
        "# Identifier drift: false positives under churn, detection of floods and shifts",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by"
        f" `benchmarks/bench_identifiers.py --reps {reps} --seed {seed}`. Ids: 3% of rows are"
        " new ids (sign-ups), the rest half Zipf(1.4), half uniform over existing ids."
        " Default drift settings; one feature (no Bonferroni division).",
        "",
        "| reference rows | window rows | scenario | verdict rate | by unseen share"
        " | by top-k mass | what the rate is |",
        "|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        what = "false-positive rate" if r["scenario"] == "churn" else "detection rate"
        lines.append(
            f"| {r['n_ref']:,} | {r['n_cur']:,} | {r['scenario']} | {r['rate']:.1%}"
            f" | {r['unseen_rate']:.1%} | {r['mass_rate']:.1%} | {what} ({r['reps']} windows) |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--output", default="benchmarks/results/identifiers.md")
    args = p.parse_args()
    rows = run(args.reps, args.seed)
    Path(args.output).write_text(markdown(rows, args.reps, args.seed))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
