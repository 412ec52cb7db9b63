"""Backtest retraining policies on history: which policy, how often, at what cost."""

from __future__ import annotations

from retrain.backtest.cache import TrainingCache
from retrain.backtest.policies import POLICY_KINDS, PolicySpec, parse_policies
from retrain.backtest.replay import (
    PolicyResult,
    WindowRecord,
    policy_config,
    replay_policy,
    score_model,
)
from retrain.backtest.report import PolicySummary, summarise, write_outputs
from retrain.backtest.run import BacktestResult, ProgressBar, run_backtest, select_windows
from retrain.backtest.timing import ReplayOptions

__all__ = [
    "POLICY_KINDS",
    "BacktestResult",
    "PolicyResult",
    "PolicySpec",
    "PolicySummary",
    "ProgressBar",
    "ReplayOptions",
    "TrainingCache",
    "WindowRecord",
    "parse_policies",
    "policy_config",
    "replay_policy",
    "run_backtest",
    "score_model",
    "select_windows",
    "summarise",
    "write_outputs",
]
