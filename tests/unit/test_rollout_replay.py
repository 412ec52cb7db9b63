"""Replay provider and the `rollout` loop with real registered models (no scripted metrics)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rollout_support import (
    T0,
    FakeClock,
    RecordingApplier,
    events_of,
    labelled_frame,
    make_cfg,
    register_model,
    serve,
    write_history,
)

from retrain.config import Config
from retrain.data.split import evaluation_mask
from retrain.errors import Terminated
from retrain.registry import Registry
from retrain.rollout.controller import state_key
from retrain.rollout.machine import Observations
from retrain.rollout.providers import (
    ObserveRequest,
    PredictorSample,
    ReplayProvider,
    predictor_metrics,
)
from retrain.rollout.shift import counts_from_buckets, js_distance, psi, score_histograms
from retrain.steps import rollout
from retrain.storage import LocalStorage


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return make_cfg(tmp_path, replay={"rows": 800, "batch_size": 20})


@pytest.fixture
def store(cfg: Config) -> LocalStorage:
    store = LocalStorage(cfg.storage_root)
    train = labelled_frame(seed=1, n=400)
    register_model(store, cfg, "good-1", train)
    register_model(store, cfg, "good-2", labelled_frame(seed=2, n=400))
    register_model(store, cfg, "flipped", train, flip=True)  # learns the opposite concept
    write_history(store, "0", labelled_frame(seed=10, n=500, week=0))
    # ~600 evaluation rows (a 0.2 share of the ids): enough labels for the quality check.
    write_history(store, "1", labelled_frame(seed=11, n=3000, week=1))
    return store


def observe(
    cfg: Config, store: LocalStorage, canary: str, traffic: int = 50, n: int = 0
) -> Observations:
    request = ObserveRequest(cfg, store, "good-1", canary, traffic, n, T0)
    return ReplayProvider(cfg.rollout.replay).observe(request)


def test_replay_measures_both_models_on_the_newest_window(cfg: Config, store: LocalStorage) -> None:
    obs = observe(cfg, store, "good-2")
    m = obs.metrics
    evaluation = int(evaluation_mask(labelled_frame(seed=11, n=3000)["id"], 0.2, "loans").sum())
    assert obs.ready
    requests = -(-evaluation // 20)
    # The newest window alone brings min_labelled, so `windows: auto` replays only it.
    assert (
        f"{evaluation} labelled evaluation rows from window(s) 1 (auto: 1 window to reach "
        f"min_labelled 500) in {requests} requests" in obs.source
    )
    assert m["canary.requests"] == m["champion.requests"] == requests
    assert m["canary.error_rate"] == 0.0 and m["champion.error_rate"] == 0.0
    assert 0 < m["canary.latency_p95"] < 1  # type: ignore[operator]
    assert m["canary.accuracy"] > 0.85 and m["champion.accuracy"] > 0.85  # type: ignore[operator]
    assert m["prediction_shift"] is not None and m["prediction_shift"] < 0.3


def test_replay_is_reproducible_per_analysis(cfg: Config, store: LocalStorage) -> None:
    a, b = (observe(cfg, store, "good-2", n=0) for _ in range(2))
    drop = ("canary.latency_p95", "champion.latency_p95")
    strip = lambda m: {k: v for k, v in m.items() if k not in drop}  # noqa: E731
    assert strip(a.metrics) == strip(b.metrics)


def test_replay_uses_evaluation_rows_only(cfg: Config, store: LocalStorage) -> None:
    # Every row a model may have trained on gets the wrong label: if replay used any of them,
    # the accuracy would fall towards 0.05 x 0.2 + 0.95 x 0.8 wrong.
    rows = labelled_frame(seed=13, n=3000, week=2)
    evaluation = evaluation_mask(rows["id"], 0.2, "loans")
    rows.loc[~evaluation, "label"] = 1 - rows.loc[~evaluation, "label"]
    write_history(store, "2", rows)
    m = observe(cfg, store, "good-2").metrics
    assert m["canary.labelled"] == m["champion.labelled"] == evaluation.sum()
    assert m["canary.accuracy"] > 0.85 and m["champion.accuracy"] > 0.85  # type: ignore[operator]


def test_replay_scores_both_models_on_the_same_requests(cfg: Config, store: LocalStorage) -> None:
    # A canary fitted on the champion's own rows predicts exactly what the champion does: on
    # paired requests every per-row difference is 0; on split traffic the two samples differ.
    register_model(store, cfg, "twin", labelled_frame(seed=1, n=400))
    for traffic in (10, 50):
        m = observe(cfg, store, "twin", traffic=traffic).metrics
        assert m["canary.accuracy"] == m["champion.accuracy"]
        assert m["canary.loss"] == pytest.approx(m["champion.loss"], abs=1e-12)
        assert m["paired_labelled"] == m["canary.labelled"] == m["champion.labelled"]
        assert m["accuracy_diff_std"] == 0.0
        assert m["loss_diff_std"] == pytest.approx(0.0, abs=1e-12)


def test_a_canary_that_cannot_load_is_not_ready(cfg: Config, store: LocalStorage) -> None:
    reg = Registry(store, cfg.name)
    reg.register("corrupt", {"model.skops": b"not a model", "model.json": b"{}"})
    obs = observe(cfg, store, "corrupt")
    assert not obs.ready and "canary corrupt did not load" in obs.source


def test_a_canary_that_raises_counts_as_errors(cfg: Config, store: LocalStorage) -> None:
    # The newest window (enough evaluation rows alone) lacks a feature: every prediction raises.
    bad_rows = labelled_frame(seed=12, n=3000, week=2).drop(columns=["colour"])
    write_history(store, "2", bad_rows)
    m = observe(cfg, store, "good-2").metrics
    assert m["canary.error_rate"] == 1.0 and m["champion.error_rate"] == 1.0
    assert m["canary.accuracy"] is None and m["prediction_shift"] is None


def test_predictor_metrics_for_regression() -> None:
    sample = PredictorSample(
        requests=2,
        errors=0,
        latencies=[0.01, 0.03],
        labels=[1.0, 3.0],
        outputs=[np.array([2.0]), np.array([3.0])],
        rows=[0, 1],
    )
    m = predictor_metrics(sample, "regression")
    assert m["loss"] == pytest.approx(0.5) and m["accuracy"] is None
    assert m["error_rate"] == 0.0


def test_shift_distances() -> None:
    same = np.array([10.0, 20.0, 30.0])
    assert js_distance(same, same) == pytest.approx(0.0, abs=1e-9)
    assert js_distance([100, 0], [0, 100]) > 0.99
    assert psi([50, 50], [90, 10]) == pytest.approx(0.4 * np.log(0.9 / 0.5) + 0.4 * np.log(5), 1e-3)
    ref, cur = score_histograms(np.linspace(0, 1, 1000), np.linspace(0, 1, 1000))
    assert len(ref) == 10 and np.array_equal(ref, cur)
    assert list(counts_from_buckets([(0.5, 3), (0.1, 1), (float("inf"), 4)])) == [1, 2, 1]


def test_rollout_promotes_a_good_canary(cfg: Config, store: LocalStorage) -> None:
    reg = Registry(store, cfg.name)
    serve(reg, "good-1", "good-2")
    clock, applier = FakeClock(), RecordingApplier()
    outcome = rollout(
        cfg.to_yaml(),
        "run-good",
        None,
        applier_factory=lambda c: applier,
        clock=clock,
        sleep=clock.sleep,
    )
    assert outcome.phase == "promoted" and outcome.version == "good-2"
    assert reg.get_alias("champion").version == "good-2"
    assert applier.split() == {"champion": 100}
    record = json.loads(store.read_text("runs/run-good/rollout.json"))
    assert record["status"] == "succeeded" and record["phase"] == "promoted"
    report = store.read_text("runs/run-good/rollout.md")
    assert "# Rollout: promoted" in report and "| accuracy_drop |" in report
    assert clock.now - T0 >= timedelta(seconds=180)  # three analyses, 60 s apart


def test_rollout_rolls_back_a_canary_with_worse_quality(cfg: Config, store: LocalStorage) -> None:
    reg = Registry(store, cfg.name)
    serve(reg, "good-1", "flipped")
    clock, applier = FakeClock(), RecordingApplier()
    outcome = rollout(
        cfg.to_yaml(),
        "run-bad",
        None,
        applier_factory=lambda c: applier,
        clock=clock,
        sleep=clock.sleep,
    )
    assert outcome.phase == "rolled_back"
    # The window's ~600 evaluation rows fail the first look; a second analysis has no new rows
    # to confirm it by (it once re-counted the same rows as a second failure).
    assert "a failed look at step 1/3 (10%) stands and no more labels can come" in (outcome.summary)
    assert "accuracy canary" in outcome.summary
    assert reg.get_alias("champion").version == "good-1"
    assert reg.get_alias("canary").version is None
    assert applier.versions() == {"champion": "good-1"}
    assert len(events_of(reg, "rolled_back")) == 1


def test_a_sigterm_mid_analysis_stops_the_step_after_the_tick_not_inside_it(
    cfg: Config, store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Raised inside the analysis, the stop was taken for the canary failing a request (or,
    # past the deadline, for metrics unreachable): a healthy canary could be rolled back.
    import os
    import signal

    import retrain.rollout.providers as providers

    reg = Registry(store, cfg.name)
    serve(reg, "good-1", "good-2")
    clock, applier = FakeClock(), RecordingApplier()
    scored = providers.predict_scores
    sent: list[bool] = []

    def predict_scores(*args: object, **kwargs: object) -> object:
        if not sent:  # the step's own handler (recorded_step) receives it
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        return scored(*args, **kwargs)

    monkeypatch.setattr(providers, "predict_scores", predict_scores)
    with pytest.raises(Terminated, match="after the work in progress finished"):
        rollout(
            cfg.to_yaml(),
            "run-stopped",
            None,
            applier_factory=lambda c: applier,
            clock=clock,
            sleep=clock.sleep,
        )
    assert sent
    record = json.loads(store.read_text("runs/run-stopped/rollout.json"))
    assert record["status"] == "failed" and record["exit_code"] == 75  # re-run to go on
    state = json.loads(store.read_text(state_key(cfg.name)))
    (analysis,) = state["analyses"]  # the one tick in progress finished, and no other ran
    assert analysis["verdict"] == "passed", analysis
    assert state["traffic"] == 25 and reg.get_alias("canary").version == "good-2"


def test_rollout_with_no_canary_does_nothing(cfg: Config, store: LocalStorage) -> None:
    serve(Registry(store, cfg.name), "good-1")
    clock, applier = FakeClock(), RecordingApplier()
    outcome = rollout(
        cfg.to_yaml(),
        "run-none",
        None,
        applier_factory=lambda c: applier,
        clock=clock,
        sleep=clock.sleep,
    )
    assert outcome.phase == "none" and outcome.ticks == 1
    assert outcome.summary.startswith("nothing to roll out: ")
    assert "no canary in flight" in outcome.summary
    # With no rollout in flight a tick only makes the deployment serve what the aliases say.
    assert applier.split() == {"champion": 100} and applier.versions() == {"champion": "good-1"}


def test_rollout_out_of_time_leaves_the_canary_in_flight(cfg: Config, store: LocalStorage) -> None:
    serve(Registry(store, cfg.name), "good-1", "good-2")
    clock = FakeClock()
    outcome = rollout(
        cfg.to_yaml(),
        "run-short",
        None,
        max_seconds=90,
        applier_factory=lambda c: RecordingApplier(),
        clock=clock,
        sleep=clock.sleep,
    )
    assert outcome.phase == "in_progress"
    assert "still in flight at 25%" in outcome.summary
    assert outcome.decisions[-1].startswith("out of time after 90s")


def test_rollout_of_a_canary_that_never_loads_ends_at_the_deadline(
    cfg: Config, store: LocalStorage
) -> None:
    reg = Registry(store, cfg.name)
    reg.register("corrupt", {"model.skops": b"not a model", "model.json": b"{}"})
    serve(reg, "good-1", "corrupt")
    clock, applier = FakeClock(), RecordingApplier()
    outcome = rollout(
        cfg.to_yaml(),
        "run-never-ready",
        None,
        applier_factory=lambda c: applier,
        clock=clock,
        sleep=clock.sleep,
    )
    assert outcome.phase == "rolled_back"
    assert "canary never became ready at step 1/3 (10%): waited 600s" in outcome.summary
    assert clock.now - T0 == timedelta(seconds=600)
    assert applier.versions() == {"champion": "good-1"}


def spy_on_rows(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> list[tuple[datetime, str, bool]]:
    """Record (analysis time, id, labelled) for every row a model is asked to score."""
    import retrain.rollout.providers as providers

    seen: list[tuple[datetime, str, bool]] = []
    scored = providers.predict_scores

    def predict_scores(model: Any, df: pd.DataFrame, cfg: Config) -> np.ndarray:
        for row_id, label in zip(df["id"], df["label"].notna(), strict=True):
            seen.append((clock.now, str(row_id), bool(label)))
        return scored(model, df, cfg)

    monkeypatch.setattr(providers, "predict_scores", predict_scores)
    return seen


def test_a_steps_replay_analyses_never_pool_a_row_twice(
    tmp_path: Path, store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ~585 evaluation rows, 150 per analysis: a step's three analyses pool 450 rows, each once.
    cfg = make_cfg(tmp_path, replay={"rows": 150, "batch_size": 50}, min_labelled=400)
    serve(Registry(store, cfg.name), "good-1", "good-2")
    clock = FakeClock()
    seen = spy_on_rows(monkeypatch, clock)
    outcome = rollout(
        cfg.to_yaml(),
        "run-disjoint",
        None,
        applier_factory=lambda c: RecordingApplier(),
        clock=clock,
        sleep=clock.sleep,
    )
    # As before on a window this large: looks at 450 pooled rows, promoted after 3 x 3.
    assert outcome.phase == "promoted"
    state = json.loads(store.read_text(state_key(cfg.name)))
    steps = {a["at"]: a["step"] for a in state["analyses"]}
    assert sorted(steps.values()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for step in (0, 1, 2):
        # Each row is scored by both models: once per model, never again in its step.
        ids = [i for at, i, labelled in seen if labelled and steps[at.isoformat()] == step]
        assert len(ids) == 2 * 450
        assert len(set(ids)) == 450, f"step {step} pooled a row twice"
    looked = [a["checks"][2]["reason"] for a in state["analyses"] if a["verdict"] == "passed"]
    assert len(looked) == 3 and all(r.endswith("450 labelled)") for r in looked), looked


def test_replay_chunks_are_reproducible_and_an_empty_one_adds_no_labels(
    cfg: Config, store: LocalStorage
) -> None:
    provider = ReplayProvider(cfg.rollout.replay.model_copy(update={"rows": 400}))

    def at(pooled: int, step: int = 0) -> Observations:
        request = ObserveRequest(cfg, store, "good-1", "good-2", 10, 7, T0, "r@1", step, pooled)
        return provider.observe(request)

    evaluation = int(evaluation_mask(labelled_frame(seed=11, n=3000)["id"], 0.2, "loans").sum())
    first, again, rest, after = at(0), at(0), at(1), at(2)
    # A re-run of the same analysis (after a crash) replays the same rows.
    assert first.metrics["canary.loss"] == again.metrics["canary.loss"]
    assert first.metrics["paired_labelled"] == 400 and not first.exhausted
    assert rest.metrics["paired_labelled"] == evaluation - 400
    assert rest.exhausted.startswith(f"replay has {evaluation} labelled evaluation rows")
    # Past the last row: requests for the health checks, no labelled evidence.
    assert after.metrics["canary.requests"] and after.metrics["canary.error_rate"] == 0.0
    assert after.metrics["canary.labelled"] == 0 and after.metrics["paired_labelled"] == 0
    assert after.exhausted and "unlabelled" in after.source
    # Another step draws another permutation.
    assert at(0, step=1).metrics["canary.loss"] != first.metrics["canary.loss"]


def test_a_small_replay_window_ends_the_step_at_once_and_says_why(
    tmp_path: Path, store: LocalStorage
) -> None:
    # One window pinned (`windows: auto` would add the older window 1 and reach min_labelled).
    cfg = make_cfg(tmp_path, replay={"rows": 800, "batch_size": 20, "windows": 1})
    small = labelled_frame(seed=14, n=300, week=2)
    write_history(store, "2", small)  # the newest window: a few dozen evaluation rows
    evaluation = int(evaluation_mask(small["id"], 0.2, "loans").sum())
    assert evaluation < 100
    reg = Registry(store, cfg.name)
    serve(reg, "good-1", "good-2")
    clock = FakeClock()
    outcome = rollout(
        cfg.to_yaml(),
        "run-small",
        None,
        applier_factory=lambda c: RecordingApplier(),
        clock=clock,
        sleep=clock.sleep,
    )
    # One analysis, not a wait to the deadline while the same rows are counted again.
    assert outcome.phase == "inconclusive"
    assert clock.now - T0 == timedelta(seconds=60)
    assert (
        f"replay has {evaluation} labelled evaluation rows (window(s) 2 (rollout.replay.windows "
        "1))" in outcome.summary
    )
    assert f"{evaluation} labelled, fewer than rollout.min_labelled 500" in outcome.summary
    assert "lower rollout.min_labelled or raise rollout.replay.windows" in outcome.summary
    assert "on_missing: skip" in outcome.summary
    assert reg.get_alias("canary").version is None
