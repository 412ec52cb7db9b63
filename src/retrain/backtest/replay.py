"""Replay one retraining policy over historical windows with the real steps.

Per window ``i`` (event time order), in its own store and GitOps repository:

1. the window's events arrive: `steps.ingest` checks them and runs the drift engine against
   the serving champion (the same code a production run executes);
2. the serving model (the registry's champion, loaded with `load_registered_model`)
   scores the window, before any of its labels are used for training (prequential);
3. labels arrive late. With ``labels.time_column`` (the default way), the labels known at
   window ``i``'s end are those dated at or before it, and the newest labelled window is the
   newest whose labels known then reach ``labels.min_coverage``; without a label time column,
   labels are ``label_delay`` windows late (0 unless given) and the newest labelled window is
   ``i - label_delay``. If a window newer than any labelled before is ready and the policy
   retrains, the labelled windows not yet in history go through `steps.label` (as of window
   ``i``'s end), then `steps.train` (or the shared training cache), `steps.evaluate` and, if
   blessed, `steps.deploy`. ``@provisional`` (`_provisional`) also trains at window ``i`` with
   no new window ready, on ``j`` plus the labels known so far of the windows after it;
4. a canary deployed ``canary_delay`` windows ago (0: at once) is promoted through the real
   rollout controller, so the registry, events and GitOps commits are what production writes.

The ``drift`` policy decides with the window's drift verdict and the champion's labelled check
on the newest labelled window (`retrain.backtest._trigger`) on a simulated clock (one window =
its duration; one period = one week), so every trigger rule acts as configured.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from retrain import steps
from retrain.backtest._provisional import keep_provisional, labelling_config, provisional_config
from retrain.backtest._trigger import check_note, drift_policy_decision
from retrain.backtest.cache import TrainingCache, relink_card
from retrain.backtest.policies import PROVISIONAL, PolicySpec
from retrain.backtest.records import PolicyResult, WindowRecord
from retrain.backtest.scoring import labelled_check, score_model
from retrain.backtest.timing import ReplayOptions, newest_labelled_window
from retrain.config import Config, parse_duration
from retrain.data.io import from_parquet_bytes, read_source
from retrain.data.windows import as_of_text, parse_window
from retrain.drift import PerformanceCheck, performance_fired
from retrain.errors import RetrainError
from retrain.evaluation.metrics import GREATER_IS_BETTER
from retrain.registry import Registry
from retrain.rollout.controller import RolloutController
from retrain.steps.records import NO_NEW_DATA
from retrain.storage import Storage, open_storage
from retrain.training.artifact import load_model_dir, load_registered_model
from retrain.triggers.policy import PolicyState

__all__ = [
    "PolicyResult",
    "WindowRecord",
    "policy_config",
    "replay_policy",
    "score_model",
]

#: The simulated clock's origin; only differences matter to the trigger policy.
_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
_PERIOD_SECONDS = 7 * 86400


_DEFAULT_OPTIONS = ReplayOptions()


def policy_config(cfg: Config, spec: PolicySpec, root: Path, windows: int = 0) -> Config:
    """The use case's config with the policy's own store and GitOps repository under `root`
    (``@provisional``: provisional labels on, over up to `windows` windows)."""
    # A replay never pushes anywhere.
    gitops = {"mode": "gitops", "gitops_repo": str(root / "gitops"), "gitops_remote": None}
    deploy = cfg.deploy.model_copy(update=gitops | {"kubeconfig": None})
    update: dict[str, Any] = {"storage_root": str(root / "store"), "deploy": deploy}
    # The continuous policy is the same use case with continuous mode on; the others are off.
    update["continuous"] = cfg.continuous.model_copy(update={"enabled": spec.kind == "continuous"})
    if spec.kind == "drift":
        update["triggers"] = cfg.triggers.model_copy(update={"drift": True})
    if spec.mix == PROVISIONAL:
        update["labels"] = provisional_config(cfg, windows).labels
    elif spec.mix:
        update["training"] = cfg.training.model_copy(update={"mix": spec.mix})
    return cfg.model_copy(update=update)


def _window_seconds(cfg: Config) -> int:
    if cfg.data.time_kind == "period":
        return _PERIOD_SECONDS * int(cfg.data.window_size)
    return parse_duration(cfg.data.window_size)


def replay_policy(
    cfg: Config,
    spec: PolicySpec,
    windows: list[str],
    out_dir: str | Path,
    *,
    options: ReplayOptions = _DEFAULT_OPTIONS,
    cache: TrainingCache | None = None,
    on_window: Callable[[str, int], None] | None = None,
) -> PolicyResult:
    """Replay `windows` under `spec` in ``out_dir/<policy>/`` (recreated). See the module doc."""
    cfg, options = options.resolve(cfg, provisional=spec.mix == PROVISIONAL)
    t_start = time.perf_counter()
    run = _ReplayInputs.create(cfg, spec, windows, Path(out_dir), options, cache)
    state = _ReplayState()
    for i, window in enumerate(windows):
        rec = WindowRecord(index=i, window=window)
        state.records.append(rec)
        if _ingest(run, i, rec):  # 1. the window's events arrive
            champion = _score_champion(run, state, i, rec)  # 2. before its labels train anything
            # A canary deployed `canary_delay` windows ago is promoted before the next deploy,
            # which would otherwise replace it while it is still in analysis.
            rec.promoted = _promote_due(run, state, i)
            # 3. retrain on the newest labelled window, if there is a new one and the policy
            # says so
            j = _newest_labelled(run, state, i)
            if j is None:
                rec.notes.append("no window's labels have arrived yet")
            elif j <= state.newest_trained and champion is not None and not run.grows(i, j):
                rec.notes.append(f"no newly labelled window (newest: {run.windows[j]})")
            elif _should_retrain(run, state, i, j, champion, rec):
                state.newest_trained = max(state.newest_trained, j)
                _retrain(run, state, i, j, champion, rec)
            # 4. promote a canary whose delay has passed (again: a delay of 0 promotes at once)
            rec.promoted = _promote_due(run, state, i) or rec.promoted
        _finish(on_window, spec, i)
    metric = run.cfg.primary_metric
    return PolicyResult(
        policy=spec.name,
        metric=metric,
        greater_is_better=GREATER_IS_BETTER[metric],
        windows=state.records,
        labels_consumed=state.labels_consumed,
        seconds=time.perf_counter() - t_start,
    )


@dataclass(frozen=True)
class _ReplayInputs:
    """What a policy's replay works with and never changes: its config, store and windows."""

    spec: PolicySpec
    windows: tuple[str, ...]
    cfg: Config  # the policy's config: its own store and GitOps repository
    text: str  # `cfg` as YAML, what the steps read
    label_text: str  # what `steps.label` reads: the replay gathers provisional rows itself
    store: Storage
    registry: Registry
    labels: pd.DataFrame  # the labels source, read once; each window joins its events to it
    work: Path  # per-window step outputs: work/<index>/...
    options: ReplayOptions
    cache: TrainingCache | None
    window_seconds: int  # one window on the simulated clock

    @classmethod
    def create(
        cls,
        cfg: Config,
        spec: PolicySpec,
        windows: list[str],
        out_dir: Path,
        options: ReplayOptions,
        cache: TrainingCache | None,
    ) -> _ReplayInputs:
        """Recreate ``out_dir/<policy>/`` and open the policy's store."""
        root = out_dir.resolve() / spec.name
        if root.exists():
            shutil.rmtree(root)  # history is immutable: a stale store would refuse the replay
        work = root / "work"
        work.mkdir(parents=True)
        pcfg = policy_config(cfg, spec, root, len(windows))
        text = pcfg.to_yaml()
        store = open_storage(pcfg.storage_root)
        return cls(
            spec=spec,
            windows=tuple(windows),
            cfg=pcfg,
            text=text,
            label_text=labelling_config(pcfg).to_yaml(),
            store=store,
            registry=Registry(store, pcfg.name),
            labels=read_source(pcfg.labels.uri, pcfg.labels.format),
            work=work,
            options=options,
            cache=None if pcfg.labels.provisional_windows else cache,  # data of the run's own
            window_seconds=_window_seconds(pcfg),
        )

    def as_of(self, i: int) -> str | None:
        """The run's time for the label join at window `i`: its end (None: no label times)."""
        if not self.cfg.labels.time_column:
            return None
        return as_of_text(parse_window(self.cfg.data, self.windows[i]).end)

    def grows(self, i: int, j: int) -> bool:
        """Whether window `i` adds provisional windows after labelled window `j` to train on."""
        return self.cfg.labels.provisional_windows > 0 and j < i

    def clock_at(self, i: int) -> datetime:
        """The simulated time at the end of window `i`."""
        return _EPOCH + timedelta(seconds=self.window_seconds * (i + 1))

    def window_dir(self, i: int) -> Path:
        return self.work / f"{i:05d}"

    def dataset(self, i: int) -> Path:
        return self.window_dir(i) / "dataset.parquet"

    def labelled(self, i: int) -> Path:
        return self.window_dir(i) / "labelled.parquet"


@dataclass
class _ReplayState:
    """What the replay carries from one window to the next."""

    models: dict[str, Any] = field(default_factory=dict)  # the loaded champion, by version
    labelled_windows: set[int] = field(default_factory=set)  # windows already in history
    canary_since: dict[str, int] = field(default_factory=dict)  # version -> window deployed
    trigger: PolicyState = field(default_factory=PolicyState)  # the drift policy's memory
    newest_ready: int = -1  # the newest window whose labels had arrived (label times)
    newest_trained: int = -1  # the newest labelled window a retrain started from
    # version -> (the window whose launch trained it, the labelled window it trained on)
    launched_for: dict[str, tuple[str, int]] = field(default_factory=dict)
    trainings: int = 0
    labels_consumed: int = 0
    records: list[WindowRecord] = field(default_factory=list)


def _ingest(run: _ReplayInputs, i: int, rec: WindowRecord) -> bool:
    """Check the window's events and run the drift engine; False if ingest failed."""
    try:
        ingested = steps.ingest(run.text, run.windows[i], f"bt-{i:05d}-ingest", str(run.dataset(i)))
    except RetrainError as err:
        rec.skipped = f"ingest failed: {err}"
        return False
    if NO_NEW_DATA in ingested.details:  # an empty window: nothing to score or train on
        rec.notes.append(f"no new data: {ingested.details[NO_NEW_DATA]}")
        return False
    rec.drift = ingested.details.get("drift", {}).get("drift_detected")
    return True


def _score_champion(
    run: _ReplayInputs, state: _ReplayState, i: int, rec: WindowRecord
) -> str | None:
    """Score the window with the serving champion (if any); return its version."""
    champion = run.registry.get_alias("champion").version
    rec.champion = champion
    if champion is None:
        return None
    if champion not in state.models:  # keep only the serving champion loaded
        model = load_registered_model(Registry(run.store, run.cfg.name), champion)
        state.models = {champion: model}
    events, _ = from_parquet_bytes(run.dataset(i).read_bytes())
    try:
        rec.metric, rec.rows_scored = score_model(
            run.cfg, state.models[champion], events, run.labels
        )
    except RetrainError as err:
        rec.skipped = f"scoring failed: {err}"
    return champion


def _newest_labelled(run: _ReplayInputs, state: _ReplayState, i: int) -> int | None:
    """`newest_labelled_window` over the replay's ingested windows; remembers the answer."""

    def events(k: int) -> pd.DataFrame | None:
        path = run.dataset(k)
        return from_parquet_bytes(path.read_bytes())[0] if path.exists() else None

    j = newest_labelled_window(
        run.cfg,
        run.windows,
        events,
        run.labels,
        i,
        label_delay=run.options.label_delay,
        known=state.newest_ready,
    )
    state.newest_ready = max(state.newest_ready, -1 if j is None else j)
    return j


def _should_retrain(
    run: _ReplayInputs,
    state: _ReplayState,
    i: int,
    j: int,
    champion: str | None,
    rec: WindowRecord,
) -> bool:
    """Whether the policy retrains on labelled window `j` at window `i`; notes why."""
    if champion is None:
        launch, why = True, "no champion yet"
    elif run.spec.kind == "drift":
        launch, why = _drift_decision(run, state, i, j, champion, rec)
    else:
        launch = run.spec.scheduled(state.trainings if run.spec.kind != "every" else j)
        why = "scheduled" if launch else "not scheduled"
    rec.notes.append(why)
    return launch


def _drift_decision(
    run: _ReplayInputs, state: _ReplayState, i: int, j: int, champion: str, rec: WindowRecord
) -> tuple[bool, str]:
    """Ask the trigger policy with the window's drift verdict and the champion's labelled
    check on window `j` (`drift_policy_decision`)."""
    cfg = run.cfg
    check = _champion_check(run, state, i, j, champion)
    if check is not None:
        fired = performance_fired(check, cfg.drift)
        rec.notes.append(check_note(check, champion, run.windows[j], fired))
    launched = state.launched_for.get(champion)
    champion_from = launched[0] if launched is not None and j > launched[1] else None
    trained_on = run.windows[launched[1]] if launched is not None and champion_from else None
    in_analysis = Registry(run.store, cfg.name).get_alias("canary").version
    serving = _serving_launches(state.launched_for, champion, in_analysis)
    launch, why, state.trigger = drift_policy_decision(
        cfg, state.trigger, run.windows[i], bool(rec.drift), check, run.clock_at(i),
        champion_from, serving, (run.windows[j], trained_on),
    )  # fmt: skip
    return launch, why


def _serving_launches(
    launched_for: Mapping[str, tuple[str, int]], champion: str, canary: str | None
) -> dict[str, str | None]:
    """The drift back-off's evidence, from the replay's own launches (`launched_for`: version
    -> the window whose launch made it, the labelled window it trained on): the launch behind
    the serving `champion` (``serving_from``) and behind `canary`, the version in analysis
    (``canary_from``); None where no launch of the replay made it. The monitor reads the same
    from the models' cards (`retrain.triggers._labelled_window.serving_launches`)."""
    launched = launched_for.get(champion)
    made = None if canary is None else launched_for.get(canary)
    return {
        "serving_from": None if launched is None else launched[0],
        "canary_from": None if made is None or made == launched else made[0],
    }


def _champion_check(
    run: _ReplayInputs, state: _ReplayState, i: int, j: int, champion: str
) -> PerformanceCheck | None:
    """The drift engine's labelled signal at window `i`'s end: the champion on the
    newest labelled window `j`, with the labels known then (`labelled_check`)."""
    if champion not in state.models:
        return None
    cfg = run.cfg
    as_of = parse_window(cfg.data, run.windows[i]).end if cfg.labels.time_column else None
    events, _ = from_parquet_bytes(run.dataset(j).read_bytes())
    return labelled_check(
        cfg, run.registry, champion, state.models[champion], events, run.labels, as_of
    )


def _retrain(
    run: _ReplayInputs,
    state: _ReplayState,
    i: int,
    j: int,
    champion: str | None,
    rec: WindowRecord,
) -> None:
    """Label what arrived up to `j`, train on window `j`, deploy if blessed, time the canary."""
    state.trainings += 1
    state.labels_consumed += _label_upto(run, i, j, state.labelled_windows, rec)
    if j in state.labelled_windows:
        if run.grows(i, j):  # the training run's provisional rows, as its label step keeps them
            kept = keep_provisional(run.cfg, run.store, run.windows, run.dataset, run.labels, i, j)
            rec.provisional_rows = kept.labelled
            if kept.arrival is not None and not kept.arrival.fair:
                rec.notes.append(f"provisional windows not used: {kept.arrival.detail}")
        _train_and_deploy(run, run.windows[j], run.labelled(j), i, rec)
    _record_launch(run, state, i, j, champion, rec)


def _record_launch(
    run: _ReplayInputs,
    state: _ReplayState,
    i: int,
    j: int,
    champion: str | None,
    rec: WindowRecord,
) -> None:
    """Remember what the launch at window `i` (on labelled window `j`) made, as `rec` says:
    a challenger deployed (its canary's start, and the launch behind it, which the drift
    back-off follows) and, under the drift policy, its run's status."""
    if rec.deployed and rec.deployed != champion:
        state.canary_since.setdefault(rec.deployed, i)
        state.launched_for.setdefault(rec.deployed, (run.windows[i], j))
    if run.spec.kind == "drift":
        status = "succeeded" if rec.version else "failed"
        state.trigger = state.trigger.with_snapshot_status(run.windows[i], status)


def _finish(on_window: Callable[[str, int], None] | None, spec: PolicySpec, i: int) -> None:
    if on_window is not None:
        on_window(spec.name, i)


def _label_upto(run: _ReplayInputs, i: int, j: int, done: set[int], rec: WindowRecord) -> int:
    """Label every arrived window up to `j` not yet in history, with the labels known at
    window `i`'s end; return the labelled rows."""
    rows = 0
    for k in range(j + 1):
        dataset = run.dataset(k)
        if k in done or not dataset.exists():
            continue
        labelled = run.labelled(k)
        try:
            steps.label(
                run.label_text,
                run.windows[k],
                f"bt-{k:05d}-label",
                str(dataset),
                str(labelled),
                as_of=run.as_of(i),
            )
        except RetrainError as err:
            rec.notes.append(f"label of window {run.windows[k]} failed: {err}")
            continue
        done.add(k)
        rows += int(from_parquet_bytes(labelled.read_bytes())[1].get("rows", 0))
    return rows


def _train_and_deploy(
    run: _ReplayInputs, window: str, labelled: Path, i: int, rec: WindowRecord
) -> None:
    """Train (or reuse an identical training), evaluate and, if blessed, deploy."""
    text, cfg, store, cache = run.text, run.cfg, run.store, run.cache
    wdir = run.window_dir(i)
    model_dir, holdout_dir = wdir / "model", wdir / "holdout"
    run_id = f"bt-{i:05d}-train"
    rec.retrained, rec.trained_on = True, window
    try:
        key = cache.key(cfg, store, window, labelled) if cache is not None else None
        hit = cache.get(key, model_dir, holdout_dir) if cache is not None and key else None
        if hit is not None:
            rec.cache_hit, rec.train_seconds = True, hit
            relink_card(
                model_dir,
                parent=Registry(store, cfg.name).get_alias("champion").version,
                run_id=run_id,
            )
        else:
            t0 = time.perf_counter()
            steps.train(text, window, run_id, str(labelled), str(model_dir), str(holdout_dir))
            rec.train_seconds = time.perf_counter() - t0
            if cache is not None and key:
                cache.put(key, model_dir, holdout_dir, rec.train_seconds)
        rec.version = load_model_dir(str(model_dir))[1].version
        outcome = steps.evaluate(text, run_id, str(model_dir), str(holdout_dir))
        rec.blessed = outcome.blessed
        rec.refreshed = bool((outcome.details.get("comparison") or {}).get("refresh"))
        rec.notes.append(outcome.summary)
        if outcome.blessed:
            rec.deployed = steps.deploy(text, run_id, str(model_dir)).version
    except RetrainError as err:
        rec.notes.append(f"training cycle failed: {type(err).__name__}: {err}")


def _promote_due(run: _ReplayInputs, state: _ReplayState, i: int) -> str | None:
    """Promote the canary through the real rollout controller once it has served its delay."""
    canary = Registry(run.store, run.cfg.name).get_alias("canary").version
    if canary is None or i - state.canary_since.get(canary, i) < run.options.canary_delay:
        return None
    now = run.clock_at(i)
    controller = RolloutController(run.cfg, run.store, clock=lambda: now)
    controller.promote(f"backtest: canary {canary} served its delay")
    return canary
