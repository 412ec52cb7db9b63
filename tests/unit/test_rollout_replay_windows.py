"""Which windows a replay step draws from: `replay.windows: auto` (the default), an int, the
`max_windows` cap, and the step's windows kept when a new window lands mid-step."""

from __future__ import annotations

import json
from dataclasses import replace
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
    healthy,
    labelled_frame,
    make_cfg,
    register_model,
    serve,
    write_history,
)

from retrain.config import Config
from retrain.data.split import evaluation_mask
from retrain.registry import Registry
from retrain.rollout.controller import state_key
from retrain.rollout.machine import RolloutState, advance, start_rollout
from retrain.rollout.providers import ObserveRequest, ReplayProvider
from retrain.settings.rollout import RolloutConfig
from retrain.steps import rollout
from retrain.storage import LocalStorage

SMALL = 600  # rows per window: ~120 evaluation rows, a fifth of the default min_labelled


def small_windows(cfg: Config, count: int = 6) -> LocalStorage:
    """`count` windows of SMALL rows, and two equally good registered models."""
    store = LocalStorage(cfg.storage_root)
    register_model(store, cfg, "good-1", labelled_frame(seed=1, n=400))
    register_model(store, cfg, "good-2", labelled_frame(seed=2, n=400))
    for w in range(count):
        write_history(store, str(w), labelled_frame(seed=20 + w, n=SMALL, week=w))
    serve(Registry(store, cfg.name), "good-1", "good-2")
    return store


def evaluation_rows(df: pd.DataFrame) -> int:
    return int(evaluation_mask(df["id"], 0.2, "loans").sum())


def run(cfg: Config, run_id: str) -> Any:
    clock = FakeClock()
    return rollout(
        cfg.to_yaml(),
        run_id,
        None,
        applier_factory=lambda c: RecordingApplier(),
        clock=clock,
        sleep=clock.sleep,
    )


def test_small_windows_promote_a_good_canary_under_the_default_settings(tmp_path: Path) -> None:
    # One window's ~120 evaluation rows never reach min_labelled 500: with a single window
    # every rollout ended inconclusive. Auto replays the fewest newest windows that reach it.
    cfg = make_cfg(tmp_path)
    store = small_windows(cfg)
    sizes = [evaluation_rows(labelled_frame(seed=20 + w, n=SMALL)) for w in range(6)]
    assert max(sizes) < 500 <= sum(sizes)
    outcome = run(cfg, "run-auto")
    assert outcome.phase == "promoted", outcome.summary
    assert Registry(store, cfg.name).get_alias("champion").version == "good-2"
    state = json.loads(store.read_text(state_key(cfg.name)))
    # The newest windows, just enough of them (the test counts them from the data).
    k = next(k for k in range(1, 7) if sum(sizes[-k:]) >= 500)
    names = ", ".join(str(w) for w in range(6 - k, 6))
    for analysis in state["analyses"]:
        assert (
            f"window(s) {names} (auto: {k} windows to reach min_labelled 500)"
            in (analysis["source"])
        ), analysis["source"]
        assert analysis["verdict"] == "passed"


def test_an_int_windows_pins_that_many_windows_as_before(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, replay={"windows": 1})
    store = small_windows(cfg)
    newest = evaluation_rows(labelled_frame(seed=25, n=SMALL))
    outcome = run(cfg, "run-one")
    assert outcome.phase == "inconclusive"
    assert (
        f"replay has {newest} labelled evaluation rows (window(s) 5 (rollout.replay.windows 1))"
        in outcome.summary
    )
    assert "lower rollout.min_labelled or raise rollout.replay.windows," in outcome.summary
    assert Registry(store, cfg.name).get_alias("canary").version is None


def test_auto_stops_at_max_windows_and_says_so(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, replay={"max_windows": 3})
    store = small_windows(cfg)
    three = sum(evaluation_rows(labelled_frame(seed=20 + w, n=SMALL)) for w in (3, 4, 5))
    assert three < 500
    outcome = run(cfg, "run-capped")
    assert outcome.phase == "inconclusive"
    assert (
        f"replay has {three} labelled evaluation rows (window(s) 3, 4, 5 (auto: "
        "rollout.replay.max_windows 3 reached short of min_labelled 500))" in outcome.summary
    )
    assert "lower rollout.min_labelled or raise rollout.replay.max_windows" in outcome.summary
    assert Registry(store, cfg.name).get_alias("canary").version is None


def few_positives(seed: int, week: int, positives: int) -> pd.DataFrame:
    """SMALL rows, all labelled 0 except `positives` of the evaluation rows."""
    df = labelled_frame(seed=seed, n=SMALL, week=week).assign(label=0)
    evaluation = np.flatnonzero(evaluation_mask(df["id"], 0.2, "loans"))
    df.loc[evaluation[:positives], "label"] = 1
    return df


@pytest.mark.parametrize(
    ("ranked", "expected"),
    [
        (True, "3, 4, 5 (auto: 3 windows to reach min_labelled 100 and min_positives 100)"),
        (False, "5 (auto: 1 window to reach min_labelled 100)"),
    ],
)
def test_auto_replays_enough_positives_for_a_ranking_check(
    tmp_path: Path, ranked: bool, expected: str
) -> None:
    # 40 positives (classes[1]) among each window's ~120 evaluation rows: one window brings
    # min_labelled, a ranking check needs three for min_positives 100.
    checks = [{"name": "error_rate", "max": 0.01}, {"name": "loss_increase", "max": 0.02}]
    if ranked:
        checks.append({"name": "average_precision_drop", "max": 0.02})
    cfg = make_cfg(tmp_path, min_labelled=100, min_positives=100, checks=checks)
    store = small_windows(cfg, count=0)
    for w in range(6):
        write_history(store, str(w), few_positives(seed=20 + w, week=w, positives=40))
    request = ObserveRequest(cfg, store, "good-1", "good-2", 10, 0, T0, "r@1", 0, 0)
    obs = ReplayProvider(cfg.rollout.replay).observe(request)
    assert f"evaluation rows from window(s) {expected} in " in obs.source, obs.source
    windows = 3 if ranked else 1
    assert obs.metrics["canary.labelled"] == sum(
        evaluation_rows(labelled_frame(seed=20 + w, n=SMALL)) for w in range(6 - windows, 6)
    )
    assert obs.population == tuple(str(w) for w in range(6 - windows, 6))


@pytest.mark.parametrize(
    ("windows", "why"),
    [(3, "rollout.replay.windows 3"), ("auto", "auto: 3 windows to reach min_labelled 300")],
)
def test_a_window_landing_mid_step_does_not_change_the_steps_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, windows: int | str, why: str
) -> None:
    # 150 rows per analysis from the ~360 evaluation rows of the three newest windows (auto
    # needs all three for min_labelled 300): the first step takes disjoint chunks of them. A
    # window written after its first analysis once became part of the draw at the next one
    # (another population, another permutation): rows of the new window came in, and rows
    # could be pooled twice.
    import retrain.rollout.providers as providers

    replay = {"windows": windows, "rows": 150, "batch_size": 50}
    cfg = make_cfg(tmp_path, replay=replay, min_labelled=300)
    store = small_windows(cfg, count=3)
    sizes = [evaluation_rows(labelled_frame(seed=s, n=SMALL)) for s in (20, 21, 22, 99)]
    assert sum(sizes[1:3]) < 300 <= sum(sizes[:3]) and sum(sizes[2:]) < 300 <= sum(sizes[1:])
    clock = FakeClock()
    seen: list[tuple[datetime, str, bool]] = []
    scored = providers.predict_scores

    def predict_scores(model: Any, df: pd.DataFrame, c: Config) -> np.ndarray:
        for row_id, label in zip(df["id"], df["label"].notna(), strict=True):
            seen.append((clock.now, str(row_id), bool(label)))
        return scored(model, df, c)

    monkeypatch.setattr(providers, "predict_scores", predict_scores)
    landed: list[bool] = []

    def sleep(seconds: float) -> None:
        if seen and not landed:  # after the first analysis a new labelled window lands
            write_history(store, "3", labelled_frame(seed=99, n=SMALL, week=3))
            landed.append(True)
        clock.sleep(seconds)

    rollout(
        cfg.to_yaml(),
        "run-landing",
        None,
        applier_factory=lambda c: RecordingApplier(),
        clock=clock,
        sleep=sleep,
    )
    assert landed
    state = json.loads(store.read_text(state_key(cfg.name)))
    first_step = {a["at"] for a in state["analyses"] if a["step"] == 0}
    assert len(first_step) >= 2
    ids = [i for at, i, labelled in seen if labelled and at.isoformat() in first_step]
    assert {i.split("-")[0] for i in ids} == {"r20", "r21", "r22"}, "the new window joined"
    assert len(ids) == 2 * len(set(ids)), "a row was pooled twice in the step"
    for analysis in state["analyses"]:
        if analysis["at"] in first_step:
            assert "window(s) 0, 1, 2 (" in analysis["source"], analysis["source"]
    # The next step chooses again: the three newest windows are now 1, 2 and 3.
    later = [a["source"] for a in state["analyses"] if a["step"] == 1]
    assert f"window(s) 1, 2, 3 ({why})" in later[0]
    assert all("window(s) 1, 2, 3 (kept from the step's first analysis)" in s for s in later[1:])


def test_the_steps_windows_are_kept_in_the_state_and_an_older_state_loads() -> None:
    state, _ = start_rollout("loans", "v1", "v2", RolloutConfig(), T0)
    few = {"canary.labelled": 100.0, "champion.labelled": 100.0}

    def look(state: RolloutState, minutes: int, windows: tuple[str, ...], **m: float) -> Any:
        obs = replace(healthy(**m), population=windows)
        return advance(state, obs, T0 + timedelta(minutes=minutes))[0]

    state = look(state, 5, ("4", "5"), **few)
    assert state.step == 0 and state.population == ("4", "5")  # waiting for labels
    raw = json.loads(json.dumps(state.as_dict()))
    assert raw["population"] == ["4", "5"]
    assert RolloutState.from_dict(raw).population == ("4", "5")
    # A later analysis of the step keeps the step's windows (the provider was asked for them).
    state = look(state, 10, ("5", "6"), **few)
    assert state.step == 0 and state.population == ("4", "5")
    # A state written before the field existed loads; its step takes the next analysis' windows.
    raw = state.as_dict()
    del raw["population"]
    old = RolloutState.from_dict(raw)
    assert old.population == ()
    assert look(old, 15, ("6",), **few).population == ("6",)
    # A new step chooses again.
    state = look(state, 15, ("4", "5"))
    assert state.step == 1 and state.population == ()


def spy_rows(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> list[tuple[datetime, str]]:
    """(time, id) of every labelled row the replay scores from now on (once per model)."""
    import retrain.rollout.providers as providers

    seen: list[tuple[datetime, str]] = []
    scored = providers.predict_scores

    def predict_scores(model: Any, df: pd.DataFrame, c: Config) -> np.ndarray:
        for row_id, label in zip(df["id"], df["label"].notna(), strict=True):
            if label:
                seen.append((clock.now, str(row_id)))
        return scored(model, df, c)

    monkeypatch.setattr(providers, "predict_scores", predict_scores)
    return seen


def test_a_kept_window_gone_mid_step_ends_the_step_unjudged_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The step's first analysis draws from windows 0, 1, 2 (auto, for min_labelled 300). With
    # window 1 removed, the rest used to be replayed silently: a smaller population, another
    # permutation, and later chunks overlapping rows already pooled.
    cfg = make_cfg(tmp_path, replay={"rows": 150, "batch_size": 50}, min_labelled=300)
    store = small_windows(cfg, count=3)
    sizes = [evaluation_rows(labelled_frame(seed=20 + w, n=SMALL)) for w in range(3)]
    assert sum(sizes[1:]) < 300 <= sum(sizes)
    clock = FakeClock()
    seen = spy_rows(monkeypatch, clock)
    removed: list[bool] = []

    def sleep(seconds: float) -> None:
        if seen and not removed:
            (Path(cfg.storage_root) / "datasets" / "1" / "labelled.parquet").unlink()
            removed.append(True)
        clock.sleep(seconds)

    outcome = rollout(
        cfg.to_yaml(),
        "run-gone",
        None,
        applier_factory=lambda c: RecordingApplier(),
        clock=clock,
        sleep=sleep,
    )
    assert removed
    assert outcome.phase == "inconclusive", outcome.summary
    assert "window(s) 1, which this step's pooled rows were drawn from, no longer exist" in (
        outcome.summary
    )
    ids = [i for _, i in seen]
    assert len(ids) == 2 * len(set(ids)), "a row was pooled twice in the step"
    assert Registry(store, cfg.name).get_alias("canary").version is None


def test_a_state_saved_mid_step_before_windows_were_kept_goes_on_with_one_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The earlier release drew each analysis from its default `windows: 1`, and its state
    # does not say so. Under auto, the step's next analysis chose 5 windows: another
    # permutation, whose next chunk overlapped the rows the first analysis pooled.
    old = make_cfg(tmp_path, replay={"windows": 1, "rows": 50, "batch_size": 50})
    store = small_windows(old)
    clock = FakeClock()
    seen = spy_rows(monkeypatch, clock)
    first = ObserveRequest(old, store, "good-1", "good-2", 10, 0, T0, "r@1", 0, 0)
    ReplayProvider(old.rollout.replay).observe(first)
    pooled = {i for _, i in seen}
    assert len(pooled) == 50 and {i.split("-")[0] for i in pooled} == {"r25"}
    seen.clear()
    cfg = make_cfg(tmp_path, replay={"rows": 50, "batch_size": 50})
    assert cfg.rollout.replay.windows == "auto"
    later = ObserveRequest(cfg, store, "good-1", "good-2", 10, 1, T0, "r@1", 0, 1)
    obs = ReplayProvider(cfg.rollout.replay).observe(later)
    again = {i for _, i in seen}
    assert len(again) == 50 and not again & pooled, "rows pooled twice in the step"
    assert obs.population == ("5",)
    assert (
        "window(s) 5 (the newest 1 window(s), as drawn by the release that saved this step "
        "(its default windows: 1))" in obs.source
    ), obs.source


def test_auto_with_every_labelled_window_in_use_does_not_suggest_more_windows(
    tmp_path: Path,
) -> None:
    # Three windows of ~120 evaluation rows, short of min_labelled 500 well below the cap of
    # 8: raising max_windows cannot help, more windows can.
    cfg = make_cfg(tmp_path)
    store = small_windows(cfg, count=3)
    outcome = run(cfg, "run-all")
    assert outcome.phase == "inconclusive"
    assert "(auto: all 3 labelled window(s), short of min_labelled 500)" in outcome.summary
    assert "max_windows" not in outcome.summary.replace("(auto: rollout.replay.max_windows", "")
    assert (
        "lower rollout.min_labelled or wait for more labelled windows (every labelled window "
        "is in use)," in outcome.summary
    )
    assert Registry(store, cfg.name).get_alias("canary").version is None


def test_auto_names_windows_older_than_the_canarys_training_window(tmp_path: Path) -> None:
    from retrain.training.artifact import card_from_config, model_files
    from retrain.training.model import fit_model

    cfg = make_cfg(tmp_path)
    store = small_windows(cfg)
    card = card_from_config(cfg, version="good-3", parent=None, created_at=T0, window="4")
    model = fit_model(cfg, labelled_frame(seed=2, n=400))
    Registry(store, cfg.name).register("good-3", model_files(model, card))
    sizes = [evaluation_rows(labelled_frame(seed=20 + w, n=SMALL)) for w in range(6)]
    k = next(k for k in range(1, 7) if sum(sizes[-k:]) >= 500)
    assert 6 - k < 4  # auto reaches before window 4
    chosen = tuple(str(w) for w in range(6 - k, 6))
    before = ", ".join(str(w) for w in range(6 - k, 4))
    provider = ReplayProvider(cfg.rollout.replay)
    request = ObserveRequest(cfg, store, "good-1", "good-3", 10, 0, T0, "r@1", 0, 0)
    obs = provider.observe(request)
    assert obs.population == chosen  # which windows is unchanged
    assert (
        f"(auto: {k} windows to reach min_labelled 500; includes window(s) {before} before "
        "the canary's training window 4: rows of an earlier regime, which the champion may "
        "fit better)" in obs.source
    ), obs.source
    # A canary whose card names no window (good-2): nothing to say.
    plain = provider.observe(replace(request, canary="good-2"))
    assert plain.population == chosen and "earlier regime" not in plain.source


@pytest.mark.parametrize(
    ("replay", "min_labelled", "kept", "advice"),
    [
        # Auto stopped at one window, which had min_labelled when the step started.
        ({}, 100, (), "set rollout.replay.windows above 1 to replay older windows too"),
        # Kept from the first analysis: 3 windows at max_windows 3, short of min_labelled 500.
        ({"max_windows": 3}, 500, ("3", "4", "5"), "raise rollout.replay.max_windows"),
        # 3 windows at max_windows 3 too, but they had min_labelled 300: the cap did not stop it.
        (
            {"max_windows": 3},
            300,
            ("3", "4", "5"),
            "set rollout.replay.windows above 3 to replay older windows too",
        ),
        ({"windows": 2}, 500, (), "raise rollout.replay.windows"),
    ],
)
def test_an_exhausted_replay_advises_max_windows_only_when_auto_stopped_at_it(
    tmp_path: Path, replay: dict[str, Any], min_labelled: int, kept: tuple[str, ...], advice: str
) -> None:
    cfg = make_cfg(tmp_path, replay={**replay, "rows": 5000}, min_labelled=min_labelled)
    store = small_windows(cfg)
    sizes = [evaluation_rows(labelled_frame(seed=20 + w, n=SMALL)) for w in range(6)]
    assert sizes[5] >= 100 and sum(sizes[3:]) >= 300 and sum(sizes[3:]) < 500
    request = ObserveRequest(cfg, store, "good-1", "good-2", 10, 0, T0, "r@1", 0, 0, kept)
    obs = ReplayProvider(cfg.rollout.replay).observe(request)
    assert obs.exhausted, obs.source  # one analysis takes every row
    assert obs.more == advice or obs.more.startswith(f"{advice} ("), obs.more
