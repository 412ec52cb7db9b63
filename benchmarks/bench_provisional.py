"""Provisional labels in the backtest: `always` with and without them, beside the plain refit.

    python benchmarks/bench_provisional.py fraud          # ~20 min on the shared machine
    python benchmarks/bench_provisional.py fraud-biased   # legitimate labels come later
    python benchmarks/bench_provisional.py loans          # or housing, shop, reviews

Each case writes ``benchmarks/results/provisional-<case>.{md,json,png}`` (the backtest's own
outputs), replaying ``always``, ``always@provisional`` (`labels.provisional_windows` on) and
``full_refit@train_rows`` (a scikit-learn refit each window on whatever labels have arrived,
evaluation rows left out) with one process (``--jobs 1``; the machine is shared):

- ``fraud``: the standard fraud stream (`retrain.backtest.standard`: 21 days, card testing
  from day 7), chargebacks one to six days late whatever the label: arrival does not depend
  on the value, the case where provisional labels are valid.
- ``fraud-biased``: the same events and labels, but a legitimate transaction's label is
  dated four to six days after it (frauds keep one to six): early labels over-represent
  fraud, as they do in real card fraud, where a legitimate transaction is confirmed only
  when the dispute window closes. This measures what the bias the README warns of costs.
- ``loans``: the demo stream (river Agrawal, concept change at week 6), labels one to two
  weeks late (`make backtest`'s loans case).
- ``housing``, ``shop``, ``reviews``: the other standard streams (`retrain.backtest.standard`),
  labels by their own times (sales 3 to 60 days after listing, purchases one to ten days
  after the showing, moderators labelling a review two to ten days after it).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from retrain.backtest.policies import parse_policies
from retrain.backtest.run import run_backtest, select_windows
from retrain.backtest.standard import generate_case
from retrain.config import load_config

POLICIES = "always,always@provisional,full_refit@train_rows"
CASES = ("fraud", "fraud-biased", "loans", "housing", "shop", "reviews")
#: fraud-biased: the days after its transaction a legitimate label is dated (uniform).
LEGIT_DELAY_DAYS = (4, 6)
_DAY = pd.Timedelta(days=1)


def delay_legitimate_labels(case_dir: Path, seed: int = 11) -> int:
    """Re-date every legitimate label (``is_fraud`` 0) to `LEGIT_DELAY_DAYS` after its
    transaction, file by file; return how many were re-dated."""
    events = pd.concat(
        [pd.read_parquet(p) for p in sorted((case_dir / "events").glob("*.parquet"))],
        ignore_index=True,
    ).set_index("transaction_id")["transacted_at"]
    rng = np.random.default_rng(seed)
    low, high = LEGIT_DELAY_DAYS
    moved = 0
    for path in sorted((case_dir / "labels").glob("*.parquet")):
        labels = pd.read_parquet(path)
        legit = (labels["is_fraud"] == 0).to_numpy()
        at = pd.DatetimeIndex(events.loc[labels.loc[legit, "transaction_id"]])
        seconds = rng.uniform(low, high, int(legit.sum())) * _DAY.total_seconds()
        labels.loc[legit, "charged_back_at"] = at + pd.to_timedelta(seconds.round(), unit="s")
        labels.to_parquet(path, index=False)
        moved += int(legit.sum())
    return moved


def _generate(case: str, work: Path) -> tuple[Path, str, float | None]:
    """The case's config, its change window and its SLO."""
    stream = "fraud" if case == "fraud-biased" else case
    path, change, slo = generate_case(stream, work / case)
    if case == "fraud-biased":
        print(f"re-dated {delay_legitimate_labels(work / case)} legitimate labels", file=sys.stderr)
    return path, select_windows(load_config(path))[change], slo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=CASES)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="retrain-provisional-") as tmp:
        work = Path(tmp)
        config, change, slo = _generate(args.case, work)
        run_backtest(
            load_config(config),
            parse_policies(POLICIES),
            work / "out",
            jobs=1,
            slo=slo,
            known_drift=[change],
            progress=sys.stderr,
            title=f"Backtest: {args.case}, provisional labels",
        )
        for ext in ("md", "json", "png"):
            target = out / f"provisional-{args.case}.{ext}"
            shutil.copyfile(work / "out" / f"backtest.{ext}", target)
            print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
