"""Ranking checks (average_precision_drop, recall_at_precision_<P>_drop) for rare events."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError as PydanticError
from rollout_support import T0, healthy, labelled_frame, make_cfg, register_model, write_history
from sklearn.metrics import average_precision_score, precision_recall_curve

from retrain.rollout import pool
from retrain.rollout.checks import run_checks
from retrain.rollout.machine import INCONCLUSIVE, PROMOTED, ROLLED_BACK, advance, start_rollout
from retrain.rollout.providers import ObserveRequest, ReplayProvider
from retrain.rollout.ranking import rank_evidence, score_bins, score_cells
from retrain.settings.rollout import CheckSpec, RolloutConfig
from retrain.storage import LocalStorage


def fraud_like(rng: np.random.Generator, n: int, rate: float, canary_noise: float = 1.0) -> dict:
    """Paired scores of two models on `n` rows at a positive `rate`."""
    y = rng.random(n) < rate
    latent = 2.5 * y + rng.normal(size=n) - 4.0
    sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    return {
        "y": y,
        "champion": sigmoid(latent + rng.normal(size=n)),
        "canary": sigmoid(latent + canary_noise * rng.normal(size=n)),
    }


def test_binned_metrics_match_scikit_learn_on_the_binned_scores() -> None:
    rng = np.random.default_rng(0)
    d = fraud_like(rng, 5000, 0.02, canary_noise=1.5)
    cells = score_cells(d["champion"], d["canary"], d["y"])
    assert sum(cells.values()) == 5000
    for role in ("champion", "canary"):
        # scikit-learn on the bin indices: ties within a bin, higher bin higher score.
        binned = score_bins(d[role])
        ap = rank_evidence("average_precision", cells)
        assert ap is not None
        assert getattr(ap, role) == pytest.approx(average_precision_score(d["y"], binned))
        precision, recall, _ = precision_recall_curve(d["y"], binned)
        expected = recall[precision >= 0.5].max()
        rap = rank_evidence("recall_at_precision_50", cells)
        assert rap is not None
        assert getattr(rap, role) == pytest.approx(expected)
        # The 0.1-logit bins cost little against the exact scores.
        assert abs(getattr(ap, role) - average_precision_score(d["y"], d[role])) < 0.01
    assert ap.positives == d["y"].sum() and ap.labelled == 5000


def test_bootstrap_deviation_matches_the_spread_over_fresh_samples() -> None:
    """The stratified paired bootstrap's deviation of the AP drop, from one sample, against
    the deviation of the drop over 150 independent samples of the same truth."""
    rng = np.random.default_rng(1)
    drops = []
    for _ in range(150):
        d = fraud_like(rng, 3000, 0.015, canary_noise=1.3)
        drops.append(average_precision_score(d["y"], d["champion"]))
        drops[-1] -= average_precision_score(d["y"], d["canary"])
    truth = float(np.std(drops, ddof=1))
    estimates = []
    for _ in range(5):
        d = fraud_like(rng, 3000, 0.015, canary_noise=1.3)
        ev = rank_evidence("average_precision", score_cells(d["champion"], d["canary"], d["y"]))
        assert ev is not None and ev.diff_std is not None
        estimates.append(ev.diff_std)
    assert 0.65 * truth < float(np.median(estimates)) < 1.5 * truth


def test_all_negative_sample_is_not_evaluated_for_want_of_positives() -> None:
    rng = np.random.default_rng(2)
    d = fraud_like(rng, 2000, 0.0)
    metrics = healthy(**score_cells(d["champion"], d["canary"], d["y"])).metrics
    spec = CheckSpec(name="average_precision_drop", max=0.02)
    (result,) = run_checks([spec], metrics, 0.95, min_labelled=500, min_positives=30)
    assert result.passed is None and result.waiting
    assert "not enough positives: 0, fewer than 30" in result.reason


def policy(**overrides: object) -> RolloutConfig:
    checks = [
        {"name": "error_rate", "max": 0.01},
        {"name": "average_precision_drop", "max": 0.02},
    ]
    raw = {"interval_seconds": 60, "progress_deadline_seconds": 600, "checks": checks}
    return RolloutConfig.model_validate({**raw, **overrides})


def run(rollout_policy: RolloutConfig, canary_noise: float, rate: float, seed: int) -> object:
    rng = np.random.default_rng(seed)
    state, _ = start_rollout("m", "v1", "v2", rollout_policy, T0)
    now = T0
    while not state.terminal:
        now += timedelta(seconds=rollout_policy.interval_seconds)
        d = fraud_like(rng, 2000, rate, canary_noise)
        state, _ = advance(state, healthy(**score_cells(d["champion"], d["canary"], d["y"])), now)
    return state


def test_machine_pools_cells_waits_for_positives_and_judges_the_drop() -> None:
    p = policy()
    state, _ = start_rollout("m", "v1", "v2", p, T0)
    rng = np.random.default_rng(3)
    d = fraud_like(rng, 2000, 0.005)  # ~10 positives per analysis
    obs = healthy(**score_cells(d["champion"], d["canary"], d["y"]))
    state, _ = advance(state, obs, T0 + timedelta(seconds=60))
    assert state.analyses[-1].verdict == "waiting"
    assert "not enough positives" in state.analyses[-1].reason
    # The cells are pooled in the state (and survive its round trip), not in each analysis.
    assert not any(k.startswith("cells.") for k in state.analyses[-1].metrics)
    assert sum(v for k, v in state.pool.items() if k.startswith("cells.")) == 2000
    restored = type(state).from_dict(state.as_dict())
    assert restored.pool == state.pool
    # An equal canary is promoted once positives pool; a much worse one is rolled back.
    assert run(p, 1.0, 0.015, seed=4).phase == PROMOTED  # type: ignore[attr-defined]
    worse = run(p, 3.0, 0.015, seed=5)
    assert worse.phase == ROLLED_BACK  # type: ignore[attr-defined]
    assert "average_precision canary" in worse.reason  # type: ignore[attr-defined]


def test_only_negatives_end_the_rollout_inconclusive() -> None:
    state = run(policy(), 1.0, 0.0, seed=6)
    assert state.phase == INCONCLUSIVE  # type: ignore[attr-defined]
    assert "not enough positives" in state.reason  # type: ignore[attr-defined]


def test_quality_helpers_know_the_ranking_checks() -> None:
    assert pool.is_quality("average_precision_drop")
    assert pool.is_quality("recall_at_precision_90_drop")
    assert not pool.is_quality("error_rate")


def test_config_takes_ranking_checks_and_refuses_them_for_prometheus() -> None:
    ok = policy(checks=[{"name": "recall_at_precision_80_drop", "max": 0.05}])
    assert ok.checks is not None and ok.checks[0].name == "recall_at_precision_80_drop"
    with pytest.raises(PydanticError, match="unknown check 'recall_at_precision_0_drop'"):
        policy(checks=[{"name": "recall_at_precision_0_drop", "max": 0.05}])
    with pytest.raises(PydanticError) as err:
        policy(provider="prometheus", prometheus={"url": "http://prometheus:9090"})
    text = str(err.value)
    assert "average_precision_drop need each request's score and label" in text
    assert "use provider 'replay'" in text and "loss_increase" in text


def test_replay_reports_paired_cells_of_a_binary_classifier(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, replay={"rows": 800, "batch_size": 20})
    store = LocalStorage(cfg.storage_root)
    register_model(store, cfg, "a", labelled_frame(seed=1, n=400))
    register_model(store, cfg, "b", labelled_frame(seed=2, n=400))
    write_history(store, "1", labelled_frame(seed=11, n=3000, week=1))
    obs = ReplayProvider(cfg.rollout.replay).observe(
        ObserveRequest(cfg, store, "a", "b", 50, 0, T0)
    )
    cells = {k: v for k, v in obs.metrics.items() if k.startswith("cells.")}
    assert sum(cells.values()) == obs.metrics["paired_labelled"]  # type: ignore[arg-type]
    ev = rank_evidence("average_precision", cells)
    assert ev is not None and ev.champion > 0.9 and ev.canary > 0.9
