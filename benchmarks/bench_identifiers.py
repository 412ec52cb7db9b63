"""Error rates of the identifier drift verdict, by simulation with a known truth.

    python benchmarks/bench_identifiers.py --output benchmarks/results/identifiers.md

Ids follow a heavy-tailed law over a population that grows: each row is, with chance `rate`,
a new id (a sign-up), else half the time a Zipf(1.4) draw over the existing ids (redrawn
uniformly beyond them) and half the time a uniform one. The reference is five windows of
such a stream (window-sized blocks on the time grid), the current window the one right after
it. Scenarios per size:

- **churn** (no drift): the window continues the stream at the same rate. Any verdict is a
  false positive.
- **churn, batch arrivals** (no drift): no id arrives within a window; at each window
  boundary a batch of new ids (a tenth of the window's rows) joins the population, as when
  sign-ups are loaded once a week. The window judged is the k-th after the reference's end
  (the windows between are generated and skipped: a reference k-1 windows old). Any verdict
  is a false positive.
- **flood**: 20% of the window's rows are ids never seen, one to three rows each (a bot
  wave, a broken join), on top of the natural churn. A miss is a false negative. Also on
  the batch stream at ages 1 and 3 (the expected unseen share grows with the age, so a flood
  of the same size stands out less).
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
REF_WINDOWS = 5
SCENARIOS = (
    ("churn", 1, False),
    ("churn", 1, True),
    ("churn", 3, True),
    ("churn", 6, True),
    ("flood", 1, False),
    ("flood", 1, True),
    ("flood", 3, True),
    ("top-k shift", 1, False),
)


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


def stream(rng: np.random.Generator, n: int, first_new: int, rate: float) -> tuple[np.ndarray, int]:
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


def batched(
    rng: np.random.Generator, windows: int, n: int, first_new: int, batch: int
) -> tuple[list[np.ndarray], int]:
    """`windows` windows of `n` ids; `batch` new ids join at each window's start, none within."""
    out = []
    for _ in range(windows):
        first_new += batch
        ids, _ = stream(rng, n, first_new, 0.0)
        out.append(ids)
    return out, first_new


def _frame(ids: np.ndarray, window: np.ndarray | int) -> pd.DataFrame:
    return pd.DataFrame({"t": window, "user": [f"u{i}" for i in ids]})


def _scenario(
    rng: np.random.Generator, n_ref: int, n_cur: int, kind: str, age: int, batch: bool
) -> tuple[np.ndarray, np.ndarray]:
    if batch:
        blocks, nxt = batched(rng, REF_WINDOWS + age, n_cur, n_ref // 4, n_cur // 10)
        ref, cur = np.concatenate(blocks[:REF_WINDOWS]), blocks[-1]
    else:
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
        # Window-sized blocks on the time grid (period windows of one): the reference is
        # windows 0..REF_WINDOWS-1, the window judged `age` windows past its end.
        ref_windows = np.arange(n_ref) // n_cur
        for kind, age, batch in SCENARIOS:
            rng = np.random.default_rng(seed)
            fired = unseen_fired = mass_fired = 0
            t0 = time.perf_counter()
            for _ in range(reps):
                ref, cur = _scenario(rng, n_ref, n_cur, kind, age, batch)
                profile = build_profile(_frame(ref, ref_windows), cfg)
                current = _frame(cur, REF_WINDOWS - 1 + age)
                [f] = detect_drift(profile, current, cfg).features
                fired += f.drifted
                unseen_fired += ": drifted" in f.note
                mass_fired += "top-k mass shifted" in f.note
            rows.append(
                {
                    "n_ref": n_ref,
                    "n_cur": n_cur,
                    "scenario": f"{kind}, batch arrivals" if batch else kind,
                    "age": age,
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
        f" Reference: {REF_WINDOWS} windows of the window's size. Batch arrivals: no new id"
        " within a window, a tenth of a window's rows in new ids joining at each boundary."
        " Windows elapsed: 1 is the window right after the reference's end."
        " Default drift settings; one feature (no Bonferroni division).",
        "",
        "| reference rows | window rows | scenario | windows elapsed | verdict rate"
        " | by unseen share | by top-k mass | what the rate is |",
        "|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        no_drift = str(r["scenario"]).startswith("churn")
        what = "false-positive rate" if no_drift else "detection rate"
        lines.append(
            f"| {r['n_ref']:,} | {r['n_cur']:,} | {r['scenario']} | {r['age']} | {r['rate']:.1%}"
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
