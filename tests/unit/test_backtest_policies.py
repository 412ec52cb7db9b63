from __future__ import annotations

import io

import pytest

from retrain.backtest import PolicySpec, ProgressBar, parse_policies, summarise
from retrain.backtest.replay import PolicyResult, WindowRecord
from retrain.errors import ValidationError


def test_parse_policies_keeps_order_and_arguments() -> None:
    got = parse_policies("never, every:3,drift,continuous,always")
    assert [p.name for p in got] == ["never", "every-3", "drift", "continuous", "always"]
    assert got[1] == PolicySpec("every", 3)


@pytest.mark.parametrize("text", ["", "sometimes", "every", "every:0", "never:2", "always,always"])
def test_parse_policies_rejects_bad_input(text: str) -> None:
    with pytest.raises(ValidationError, match="--policies"):
        parse_policies(text)


def test_schedules() -> None:
    every3 = PolicySpec("every", 3)
    assert [every3.scheduled(i) for i in range(7)] == [True, False, False, True, False, False, True]
    assert [PolicySpec("never").scheduled(i) for i in range(3)] == [True, False, False]
    assert all(PolicySpec("always").scheduled(i) for i in range(3))
    assert not PolicySpec("always").scheduled(-1)


def _result(metrics: list[float | None], greater: bool = True) -> PolicyResult:
    windows = [WindowRecord(index=i, window=str(i), metric=m) for i, m in enumerate(metrics)]
    windows[1].retrained, windows[1].deployed, windows[1].train_seconds = True, "v1", 1.5
    return PolicyResult("p", "roc_auc" if greater else "rmse", greater, windows, 10, 1.0)


def test_summarise_counts_slo_breaches_in_the_metric_direction() -> None:
    s = summarise(_result([None, 0.9, 0.7, 0.6]), slo=0.8, drift_index=2)
    assert s.windows_scored == 3 and s.mean == pytest.approx(0.7333333)
    assert (s.worst, s.worst_window, s.below_slo) == (0.6, "3", 2)
    assert s.mean_after_drift == pytest.approx(0.65)
    assert (s.retrains, s.deploys, s.train_seconds) == (1, 1, 1.5)
    low = summarise(_result([None, 3.0, 5.0, 4.0], greater=False), slo=4.5)
    assert (low.worst, low.below_slo) == (5.0, 1)


def test_progress_bar_ends_with_a_newline() -> None:
    out = io.StringIO()
    bar = ProgressBar(2, out, width=4)
    bar.advance("a")
    bar.advance("b")
    assert "2/2" in out.getvalue() and out.getvalue().endswith("\n")


def test_cli_rejects_an_unknown_policy_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from retrain.cli import main

    assert main(["backtest", "--config", "missing.yaml", "--policies", "sometimes"]) == 2
    assert "--policies" in capsys.readouterr().err
