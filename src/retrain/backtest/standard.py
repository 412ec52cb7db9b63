"""The standard backtests behind ``make backtest``: known drift points, results for the README.

``python -m retrain.backtest.standard OUT_DIR`` writes ``backtest-loans.*`` (the demo data:
river Agrawal, abrupt concept and data drift at week 6) and ``backtest-housing.*`` (river
FriedmanDrift, global abrupt drift at week 5) and ``backtest-fraud.*`` (daily card
transactions, a new fraud pattern from day 7 of 21 whose rate rises daily) and
``backtest-shop.*`` (weekly recommendations with user and item ids, category preferences
shifting at week 6 of 12) and ``backtest-reviews.*`` (weekly product reviews, new slang carries
the sentiment from week 8 of 16) and ``backtest-concept.*`` (a rotating hyperplane: gradual
concept drift every week with the features at rest, benign drift in one feature, an abrupt
sign flip at week 22 of 30) as Markdown, JSON and PNG into OUT_DIR.
``python -m retrain.backtest.standard OUT_DIR fraud`` runs the named cases only.

Each replays labels by their own times. House sales come 3 to 60 days after the listing, so a
week's labels pass ``labels.min_coverage`` (90%) only about nine weeks after it ends: the
housing stream runs for `HOUSING_WEEKS` weeks, so that windows from after the drift get
labelled within it.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from retrain.backtest.policies import parse_policies
from retrain.backtest.run import run_backtest, select_windows
from retrain.config import load_config
from retrain.errors import ValidationError

__all__ = ["CASES", "generate_case", "main", "run_standard"]

POLICIES = "never,every:3,drift,continuous,always,always@weighted,full_refit,full_refit@train_rows"
#: Weeks of the housing stream: long enough for post-drift weeks' sales to come in.
HOUSING_WEEKS = 20


#: Days of the fraud stream and its change point (a day index). Chargebacks come one to six
#: days after a transaction, so a day is labelled (90% coverage) about six days after it
#: ends, and the first post-change day can train a model only a week after the change: two
#: weeks after it leave a week in which a recovered model is scored.
FRAUD_DAYS = 21
FRAUD_CHANGE_DAY = 7
#: Weeks of the shop stream and its change point (a week index).
SHOP_WEEKS = 12
SHOP_CHANGE_WEEK = 6
#: Weeks of the reviews stream and its change point (new slang carries the sentiment).
REVIEWS_WEEKS = 16
REVIEWS_CHANGE_WEEK = 8
#: Weeks of the concept stream and its abrupt change (the hyperplane turns every week too).
CONCEPT_WEEKS = 30
CONCEPT_CHANGE_WEEK = 22
CASES = ("loans", "housing", "fraud", "shop", "reviews", "concept")


def generate_case(name: str, work: Path) -> tuple[Path, int, float | None]:
    """Generate the standard stream `name` under `work`: its config, the index of its change
    window and its SLO (None: none).

    Raises:
        ValidationError: `name` is not one of `CASES`.
    """
    from retrain.data.case_concept import generate_concept
    from retrain.data.case_reviews import generate_reviews
    from retrain.data.case_shop import generate_shop
    from retrain.data.cases import generate_fraud
    from retrain.data.demo import generate_housing, generate_loans

    if name == "loans":
        return generate_loans(work), 6, 0.8
    if name == "housing":
        return generate_housing(work, windows=HOUSING_WEEKS), 5, None
    if name == "fraud":
        path = generate_fraud(work, windows=FRAUD_DAYS, drift_window=FRAUD_CHANGE_DAY)
        return path, FRAUD_CHANGE_DAY, None
    if name == "shop":
        return (
            generate_shop(work, windows=SHOP_WEEKS, drift_window=SHOP_CHANGE_WEEK),
            SHOP_CHANGE_WEEK,
            None,
        )
    if name == "reviews":
        path = generate_reviews(work, windows=REVIEWS_WEEKS, drift_window=REVIEWS_CHANGE_WEEK)
        return path, REVIEWS_CHANGE_WEEK, None
    if name == "concept":
        path = generate_concept(work, windows=CONCEPT_WEEKS, drift_window=CONCEPT_CHANGE_WEEK)
        return path, CONCEPT_CHANGE_WEEK, None
    raise ValidationError(f"unknown standard backtest {name!r}; choose from {CASES}")


def run_standard(out_dir: Path, work: Path, names: Sequence[str] = CASES) -> list[Path]:
    """Run the named standard backtests (all by default), writing their results into
    `out_dir`."""
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        raise ValidationError(f"unknown standard backtest(s) {unknown}; choose from {CASES}")
    written = []
    for name in [n for n in CASES if n in names]:
        config_path, drift_index, slo = generate_case(name, work / name)
        cfg = load_config(config_path)
        drift = select_windows(cfg)[drift_index]
        run_backtest(
            cfg,
            parse_policies(POLICIES),
            work / f"{name}-out",
            slo=slo,
            known_drift=[drift],
            progress=sys.stderr,
            title=f"Backtest: {name}",
        )
        for ext in ("md", "json", "png"):
            target = out_dir / f"backtest-{name}.{ext}"
            shutil.copyfile(work / f"{name}-out" / f"backtest.{ext}", target)
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "benchmarks/results")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="retrain-backtest-") as tmp:
        for path in run_standard(out, Path(tmp), args[1:] or CASES):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
