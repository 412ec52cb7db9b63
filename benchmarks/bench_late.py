"""Late labels in the backtest: `always` with and without `labels.late_windows`.

    python benchmarks/bench_late.py fraud          # the standard fraud stream
    python benchmarks/bench_late.py fraud-biased   # legitimate labels come later
    python benchmarks/bench_late.py fraud-slow     # fraud labels come a week or more later

Each case writes ``benchmarks/results/late-<case>.{md,json,png}`` (the backtest's own
outputs), replaying ``always`` and ``always@late`` with one process (``--jobs 1``; the
machine is shared). ``always@late`` is the same policy with `labels.late_windows` on over
every earlier window: each label step the replay runs (`steps.label`, as in production) also
adds to history the rows of committed windows whose labels arrived since their commit. A
window is committed at ``labels.min_coverage`` (0.9 in the fraud config), so without it the
last tenth of each window's labels never reaches history.

- ``fraud``: the standard fraud stream (`retrain.backtest.standard`), chargebacks one to six
  days late whatever the label.
- ``fraud-biased``: the same, with a legitimate transaction's label dated four to six days
  after it (`bench_provisional.delay_legitimate_labels`): lateness depends on the label.
- ``fraud-slow``: the same, with a fraud's label dated `FRAUD_DELAY_DAYS` after its
  transaction (chargebacks confirmed weeks later; legitimate labels keep one to six days):
  a day reaches ``labels.min_coverage`` on its legitimate labels, so it is committed before
  any of its frauds is known, the case ``labels.late_windows`` is for.
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
from retrain.backtest.standard import FRAUD_CHANGE_DAY, FRAUD_DAYS
from retrain.config import load_config
from retrain.data.cases import generate_fraud

POLICIES = "always,always@late"
CASES = ("fraud", "fraud-biased", "fraud-slow")
#: fraud-slow: the days after its transaction a fraud's label is dated (uniform).
FRAUD_DELAY_DAYS = (7, 12)
_DAY = pd.Timedelta(days=1)


def delay_fraud_labels(case_dir: Path, seed: int = 13) -> int:
    """Re-date every fraud label (``is_fraud`` 1) to `FRAUD_DELAY_DAYS` after its
    transaction, file by file; return how many were re-dated."""
    events = pd.concat(
        [pd.read_parquet(p) for p in sorted((case_dir / "events").glob("*.parquet"))],
        ignore_index=True,
    ).set_index("transaction_id")["transacted_at"]
    rng = np.random.default_rng(seed)
    low, high = FRAUD_DELAY_DAYS
    moved = 0
    for path in sorted((case_dir / "labels").glob("*.parquet")):
        labels = pd.read_parquet(path)
        fraud = (labels["is_fraud"] == 1).to_numpy()
        at = pd.DatetimeIndex(events.loc[labels.loc[fraud, "transaction_id"]])
        seconds = rng.uniform(low, high, int(fraud.sum())) * _DAY.total_seconds()
        labels.loc[fraud, "charged_back_at"] = at + pd.to_timedelta(seconds.round(), unit="s")
        labels.to_parquet(path, index=False)
        moved += int(fraud.sum())
    return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=CASES)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="retrain-late-") as tmp:
        work = Path(tmp)
        config = generate_fraud(work / args.case, windows=FRAUD_DAYS, drift_window=FRAUD_CHANGE_DAY)
        if args.case == "fraud-biased":
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from bench_provisional import delay_legitimate_labels

            moved = delay_legitimate_labels(work / args.case)
            print(f"re-dated {moved} legitimate labels", file=sys.stderr)
        elif args.case == "fraud-slow":
            print(f"re-dated {delay_fraud_labels(work / args.case)} fraud labels", file=sys.stderr)
        change = select_windows(load_config(config))[FRAUD_CHANGE_DAY]
        run_backtest(
            load_config(config),
            parse_policies(POLICIES),
            work / "out",
            jobs=1,
            known_drift=[change],
            progress=sys.stderr,
            title=f"Backtest: {args.case}, late labels",
        )
        for ext in ("md", "json", "png"):
            target = out / f"late-{args.case}.{ext}"
            shutil.copyfile(work / "out" / f"backtest.{ext}", target)
            print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
