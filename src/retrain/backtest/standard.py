"""The standard backtests behind ``make backtest``: known drift points, results for the README.

``python -m retrain.backtest.standard OUT_DIR`` writes ``backtest-loans.*`` (the demo data:
river Agrawal, abrupt concept and data drift at week 6) and ``backtest-housing.*`` (river
FriedmanDrift, global abrupt drift at week 5) as Markdown, JSON and PNG into OUT_DIR.

Both replay labels by their own times. House sales come 3 to 60 days after the listing, so a
week's labels pass ``labels.min_coverage`` (90%) only about nine weeks after it ends: the
housing stream runs for `HOUSING_WEEKS` weeks, so that windows from after the drift get
labelled within it.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from retrain.backtest.policies import parse_policies
from retrain.backtest.run import run_backtest, select_windows
from retrain.config import load_config

__all__ = ["main", "run_standard"]

POLICIES = "never,every:3,drift,continuous,always,always@weighted,full_refit"
#: Weeks of the housing stream: long enough for post-drift weeks' sales to come in.
HOUSING_WEEKS = 20


def run_standard(out_dir: Path, work: Path) -> list[Path]:
    """Generate both streams under `work`, backtest them, write the outputs into `out_dir`."""
    from retrain.data.demo import generate_housing, generate_loans

    cases = [
        ("loans", generate_loans(work / "loans"), "6", 0.8),
        ("housing", generate_housing(work / "housing", windows=HOUSING_WEEKS), None, None),
    ]
    written = []
    for name, config_path, drift, slo in cases:
        cfg = load_config(config_path)
        if drift is None:  # housing windows are weeks from 2024-01-01; drift at week 5
            drift = select_windows(cfg)[5]
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
        for path in run_standard(out, Path(tmp)):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
