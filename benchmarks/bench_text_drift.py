"""Benchmark: text drift verdicts on simulated windows whose truth is known.

False positives: a reference and a window drawn from the same text law, for two corpora: the
reviews case before its change point (`retrain.data.case_reviews`), and a harder one of 2,000
Zipf-distributed words with topics (the words of a text are related). Detection: a window
where new slang carries part of the sentiment (the reviews case's change point: 50% of the
sentiment words; and a subtler 10%). A verdict fires when the Jensen-Shannon distance is at
least 0.1 and its null threshold (alpha 0.01, one feature); beside it, how often a fixed 0.1
cut-off alone would fire. Writes ``benchmarks/results/text-drift.md``. A measurement, not a
test:

    .venv/bin/python benchmarks/bench_text_drift.py [--reps 100] [--sizes 200,1000,5000]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from retrain.data.case_reviews import sample_reviews
from retrain.drift._text import compare_text, text_profile

HERE = Path(__file__).resolve().parent
ALPHA = 0.01
THRESHOLD = 0.1
Corpus = Callable[[int, np.random.Generator], pd.Series]


def reviews(slang: float) -> Corpus:
    def draw(n: int, rng: np.random.Generator) -> pd.Series:
        return pd.Series(sample_reviews(rng, rng.random(n) < 0.6, slang))

    return draw


def topical(n: int, rng: np.random.Generator) -> pd.Series:
    vocab = np.array([f"w{i}" for i in range(2000)])
    zipf = 1.0 / np.arange(1, 2001)
    zipf /= zipf.sum()
    topics = np.arange(2000).reshape(40, 50)
    out = []
    for _ in range(n):
        k = int(rng.poisson(10))
        topic = topics[rng.integers(40)]
        idx = np.where(rng.random(k) < 0.3, rng.choice(topic, k), rng.choice(2000, k, p=zipf))
        out.append(" ".join(vocab[idx]))
    return pd.Series(out)


def rates(ref_law: Corpus, cur_law: Corpus, n: int, reps: int) -> tuple[float, float, float]:
    """(verdict rate, fixed-cut-off rate, mean seconds per comparison)."""
    fired = fixed = 0
    seconds = 0.0
    for r in range(reps):
        rng = np.random.default_rng(1000 + r)
        ref = text_profile(ref_law(n, rng))
        window = cur_law(n, rng)
        t0 = time.perf_counter()
        c = compare_text(ref, window, ALPHA)
        seconds += time.perf_counter() - t0
        assert c.distance is not None and c.null_threshold is not None
        fired += c.distance >= max(THRESHOLD, c.null_threshold)
        fixed += c.distance >= THRESHOLD
    return fired / reps, fixed / reps, seconds / reps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--reps", type=int, default=100)
    p.add_argument("--sizes", default="200,1000,5000")
    p.add_argument("--output", default=str(HERE / "results" / "text-drift.md"))
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    cases: list[tuple[str, Corpus, Corpus]] = [
        ("same law: reviews before the change", reviews(0.0), reviews(0.0)),
        ("same law: Zipf words with topics", topical, topical),
        ("slang carries 50% of sentiment words", reviews(0.0), reviews(0.5)),
        ("slang carries 10% of sentiment words", reviews(0.0), reviews(0.1)),
    ]
    lines = [
        "# Text drift: measured verdict rates\n",
        f"Python {platform.python_version()} on {platform.machine()}; {args.reps} simulated "
        f"reference/window pairs per cell (texts per side = n); alpha {ALPHA}, Jensen-Shannon "
        f"threshold {THRESHOLD}. `verdict` is the rate the text drift verdict fires; `fixed "
        f"0.1` the rate a fixed cut-off alone would. Same law: false positives; slang: "
        "detection.\n",
        "| case | n | verdict | fixed 0.1 | ms per comparison |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, ref_law, cur_law in cases:
        for n in sizes:
            fired, fixed, sec = rates(ref_law, cur_law, n, args.reps)
            lines.append(f"| {name} | {n:,} | {fired:.1%} | {fixed:.1%} | {sec * 1000:.0f} |")
            print(lines[-1], flush=True)
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
