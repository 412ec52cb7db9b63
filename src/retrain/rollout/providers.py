"""Metrics providers: where an analysis gets its numbers.

A provider turns "champion v1 and canary v2 serve at 25 %" into `Observations`. Two ship:

- `ReplayProvider` (the embedded default): recent labelled *evaluation* rows (the share of ids
  `retrain.data.split.evaluation_mask` keeps out of every training set, so neither model was
  trained on them) of the windows `retrain.rollout.population` chooses (by default the fewest
  newest that reach ``min_labelled``; the step's first analysis chooses them, the rollout state
  keeps them for the rest of the step) are cut into requests of `batch_size` rows, and every
  request is answered by both registered models, on one thread, in an order drawn per
  request. Scoring both on the same rows is a paired comparison: the champion-vs-canary
  difference carries no noise from two different samples, so the quality checks need far
  fewer rows than with split traffic.
  The analyses of one traffic step take disjoint rows (the step's pool counts each row once):
  consecutive chunks of ``replay.rows`` from a permutation of the evaluation rows fixed by the
  seed, the rollout and the step. The analysis that takes the last rows says the population
  is `exhausted`, so the step is judged on them instead of waiting for more; an analysis
  after it replays rows without their labels, for the health checks alone.
  The traffic share therefore changes nothing in a replay (it is reported in the source). An
  exception while predicting is a failed request (so the error rate is real, unlike a server
  that swallows errors), latency is measured per request, and the labels give accuracy and
  loss with their labelled and paired counts (a label is the model's class it is by
  `retrain.data.targets.label_key`: text "1" is the class 1).
- `PrometheusProvider` (`retrain.rollout.prometheus`): PromQL over Seldon's executor metrics
  and the serving image's feedback and score metrics.

Providers are looked up by ``rollout.provider``; a new one is one entry in `PROVIDERS`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from retrain.config import Config
from retrain.data.targets import class_positions
from retrain.errors import RetrainError, ValidationError
from retrain.evaluation.metrics import positive_position
from retrain.registry import Registry
from retrain.rollout.checks import metric
from retrain.rollout.machine import Observations
from retrain.rollout.observe import MetricsProvider, ObserveRequest
from retrain.rollout.population import Population, replay_population
from retrain.rollout.prometheus import PrometheusProvider
from retrain.rollout.ranking import score_cells
from retrain.rollout.shift import MIN_PREDICTIONS, score_histograms, shift
from retrain.settings.rollout import ReplaySettings
from retrain.storage import Storage
from retrain.training.artifact import load_registered_model
from retrain.training.model import predict_scores

__all__ = [
    "PROVIDERS",
    "PredictorSample",
    "ReplayProvider",
    "paired_cells",
    "paired_metrics",
    "predictor_metrics",
    "provider_for",
]

ModelLoader = Callable[[Storage, Config, str], Any]


@dataclass
class PredictorSample:
    """What one predictor did with the replayed requests; `rows` are the positions of the rows
    it answered (aligned with `labels` and the concatenated `outputs`)."""

    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    outputs: list[np.ndarray] = field(default_factory=list)
    classes: np.ndarray | None = None
    rows: list[int] = field(default_factory=list)


def _row_quality(
    sample: PredictorSample, task: str
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray] | None:
    """Per labelled row answered: its position, whether it was right (classification), and its
    loss. None without labelled rows (or for a classifier whose output cannot be read)."""
    labelled = [i for i, y in enumerate(sample.labels) if not pd.isna(y)]
    if not labelled or not sample.outputs:
        return None
    outputs = np.concatenate(sample.outputs)[labelled]
    y = np.asarray(sample.labels, dtype=object)[labelled]
    rows = np.asarray(sample.rows, dtype=int)[labelled]
    if task != "classification":
        return rows, None, (outputs.astype(float) - y.astype(float)) ** 2
    if sample.classes is None:  # a classifier without classes_: no way to read its output
        return None
    # Each label as the class it is by `label_key` (text "1" is the class 1).
    at = class_positions(y, sample.classes.tolist())
    correct = np.argmax(outputs, axis=1) == at
    # Log loss by hand: a label the model never saw gets the floor probability instead of an
    # exception.
    p_true = np.where(at >= 0, outputs[np.arange(len(at)), np.maximum(at, 0)], 0.0)
    return rows, correct.astype(float), -np.log(np.clip(p_true.astype(float), 1e-15, 1.0))


def predictor_metrics(sample: PredictorSample, task: str) -> dict[str, float | None]:
    """requests, error_rate, latency_p95, accuracy, loss (with its spread) and the number of
    labelled predictions of one predictor's sample."""
    out: dict[str, float | None] = {
        "requests": float(sample.requests),
        "error_rate": sample.errors / sample.requests if sample.requests else None,
        "latency_p95": float(np.percentile(sample.latencies, 95)) if sample.latencies else None,
        "accuracy": None,
        "loss": None,
        "loss_std": None,
        "labelled": 0.0,
    }
    labelled = sum(1 for y in sample.labels if not pd.isna(y))
    out["labelled"] = float(labelled) if sample.outputs else 0.0
    quality = _row_quality(sample, task)
    if quality is None:
        return out
    _, correct, losses = quality
    if correct is not None:
        out["accuracy"] = float(np.mean(correct))
    out["loss"] = float(np.mean(losses))
    out["loss_std"] = float(np.std(losses, ddof=1)) if len(losses) > 1 else None
    return out


def paired_metrics(
    champion: PredictorSample, canary: PredictorSample, task: str
) -> dict[str, float | None]:
    """The paired count and the spread of the per-row differences, over the labelled rows both
    predictors answered (see `retrain.rollout.checks.METRICS`)."""
    out: dict[str, float | None] = {
        "paired_labelled": 0.0,
        "accuracy_diff_std": None,
        "loss_diff_std": None,
    }
    a, b = _row_quality(champion, task), _row_quality(canary, task)
    if a is None or b is None:
        return out
    _, ia, ib = np.intersect1d(a[0], b[0], return_indices=True)
    out["paired_labelled"] = float(len(ia))
    if len(ia) < 2:
        return out
    if a[1] is not None and b[1] is not None:
        out["accuracy_diff_std"] = float(np.std(a[1][ia] - b[1][ib], ddof=1))
    out["loss_diff_std"] = float(np.std(b[2][ib] - a[2][ia], ddof=1))
    return out


def _positive_scores(
    sample: PredictorSample, positive: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Per labelled row answered by a binary classifier: its position, P(positive) and
    whether its label is the positive class (`positive`, ``labels.positive_class``; None:
    classes[1]). None otherwise."""
    if sample.classes is None or len(sample.classes) != 2 or not sample.outputs:
        return None
    outputs = np.concatenate(sample.outputs)
    if outputs.ndim != 2 or outputs.shape[1] != 2:
        return None
    classes = sample.classes.tolist()
    at = 1 if positive is None else positive_position(positive, classes)
    labelled = [i for i, y in enumerate(sample.labels) if not pd.isna(y)]
    y = np.asarray(sample.labels, dtype=object)[labelled]
    rows = np.asarray(sample.rows, dtype=int)[labelled]
    is_positive = class_positions(y, classes) == at
    return rows, outputs[labelled, at].astype(float), is_positive


def paired_cells(
    champion: PredictorSample, canary: PredictorSample, positive: Any = None
) -> dict[str, float]:
    """The labelled rows both binary classifiers answered, as paired score cells for the
    ranking checks (`retrain.rollout.ranking`) of the `positive` class; empty for other
    tasks."""
    a, b = _positive_scores(champion, positive), _positive_scores(canary, positive)
    if a is None or b is None:
        return {}
    _, ia, ib = np.intersect1d(a[0], b[0], return_indices=True)
    if not len(ia):
        return {}
    return score_cells(a[1][ia], b[1][ib], a[2][ia])


def _scores(sample: PredictorSample, task: str) -> np.ndarray:
    """One score per prediction for the shift check: P(positive), the class, or the value."""
    if not sample.outputs:
        return np.empty(0)
    outputs: np.ndarray = np.concatenate(sample.outputs)
    if task != "classification":
        return outputs.astype(float)
    if outputs.shape[1] == 2:
        return outputs[:, 1].astype(float)
    return np.asarray(np.argmax(outputs, axis=1), dtype=float)


def _default_loader(store: Storage, cfg: Config, version: str) -> Any:
    return load_registered_model(Registry(store, cfg.name), version)


class ReplayProvider:
    """Replays recent labelled history through the registered champion and canary.

    Args:
        settings: rows per analysis, rows per request, threads (the windows to draw from
            are `retrain.rollout.population`'s, from the config of each request).
        shift_method: "js" or "psi" for the prediction-shift metric.
        loader: loads a registered version (default:
            `retrain.training.artifact.load_registered_model`,
            which verifies the model's sha256 and trusted types first).
    """

    name = "replay"

    def __init__(
        self,
        settings: ReplaySettings | None = None,
        shift_method: str = "js",
        loader: ModelLoader | None = None,
    ) -> None:
        self.settings = settings or ReplaySettings()
        self.shift_method = shift_method
        self.loader = loader or _default_loader
        self._models: dict[str, Any] = {}

    def _model(self, store: Storage, cfg: Config, version: str) -> Any:
        if version not in self._models:
            self._models[version] = self.loader(store, cfg, version)
        return self._models[version]

    def observe(self, request: ObserveRequest) -> Observations:
        cfg, store = request.cfg, request.store
        try:
            canary = self._model(store, cfg, request.canary)
        except RetrainError as err:
            # A model server that cannot load its model never becomes ready.
            return Observations(ready=False, source=f"canary {request.canary} did not load: {err}")
        champion_error = ""
        try:
            champion = self._model(store, cfg, request.champion)
        except RetrainError as err:
            champion, champion_error = None, f"; champion {request.champion} did not load: {err}"

        classes = getattr(canary, "classes_", None)
        chosen = replay_population(
            store, cfg, request.population, classes, request.pooled, request.canary
        )
        if chosen.missing:
            gone = ", ".join(chosen.missing)
            return Observations(
                ready=True,
                source=f"replay: window(s) {gone} of this step no longer in the history store",
                lost=f"window(s) {gone}, which this step's pooled rows were drawn from, no "
                "longer exist in the history store: drawing from the rest would change the "
                "step's permutation and pool rows already pooled again",
            )
        if chosen.refused:
            return Observations(
                ready=True,
                source=f"replay: the labels of window(s) {', '.join(chosen.windows)} disagree",
                lost=f"the replay cannot score these windows' labels as one target: "
                f"{chosen.refused}",
            )
        if chosen.rows.empty:
            return Observations(
                ready=True,
                source="replay: no labelled evaluation rows in the history store",
            )
        named = f"{', '.join(chosen.windows)} ({chosen.why})"
        rows, note, exhausted = self._draw(chosen.rows, named, cfg, request)
        size = self.settings.batch_size
        starts = range(0, len(rows), size)
        # Which model answers first, per request, so neither is always timed on a warm cache.
        rng = np.random.default_rng([cfg.seed, request.analysis])
        canary_first = rng.random(len(starts)) < 0.5
        samples = {"canary": PredictorSample(), "champion": PredictorSample()}
        models = {"canary": canary, "champion": champion}
        # A model server answers a request on one thread. Left to OpenMP, a 4 ms prediction
        # took 0.6-2.4 s at p95 on a busy 2-core machine (its thread team waits for a
        # descheduled thread), which measures the machine, not the model.
        with threadpool_limits(limits=self.settings.threads):
            for start, first in zip(starts, canary_first, strict=True):
                batch = rows.iloc[start : start + size]
                for role in ("canary", "champion") if first else ("champion", "canary"):
                    _serve(models[role], batch, start, cfg, samples[role])
        metrics: dict[str, float | None] = {}
        for role, sample in samples.items():
            for name, value in predictor_metrics(sample, cfg.task).items():
                metrics[metric(role, name)] = value
        metrics.update(paired_metrics(samples["champion"], samples["canary"], cfg.task))
        if cfg.task == "classification":
            positive = cfg.labels.positive_class
            metrics.update(paired_cells(samples["champion"], samples["canary"], positive))
        champ_scores = _scores(samples["champion"], cfg.task)
        canary_scores = _scores(samples["canary"], cfg.task)
        if min(len(champ_scores), len(canary_scores)) >= MIN_PREDICTIONS:
            ref, cur = score_histograms(champ_scores, canary_scores)
            metrics["prediction_shift"] = shift(self.shift_method, ref, cur)
        else:
            metrics["prediction_shift"] = None
        source = (
            f"replay of {len(rows)} {note}evaluation rows from window(s) "
            f"{named} in {len(starts)} requests of up to {size} rows, each answered "
            f"by both models (canary at {request.traffic}% in production){champion_error}"
        )
        return Observations(
            ready=True,
            metrics=metrics,
            source=source,
            exhausted=exhausted,
            population=chosen.windows,
            more=_more(cfg, chosen) if exhausted else "",
        )

    def _draw(
        self, population: pd.DataFrame, windows: str, cfg: Config, request: ObserveRequest
    ) -> tuple[pd.DataFrame, str, str]:
        """This analysis' rows, how they are labelled (in words) and, once the step has used
        every row, why no more labels can come.

        The step's analyses so far (`request.pooled`) took the chunks before this one of a
        permutation fixed by the seed, the rollout and the step, so no row is pooled twice in a
        step. With none left the rows of the first chunk are replayed without their labels:
        the health checks still get requests, the pool no new evidence.
        """
        identity = f"{request.rollout_id}/{request.step}".encode()
        key = int.from_bytes(hashlib.sha256(identity).digest()[:8], "big")
        order = np.random.default_rng([cfg.seed, key]).permutation(len(population))
        size, start = self.settings.rows, request.pooled * self.settings.rows
        chunk, note = order[start : start + size], "labelled "
        rows = population.iloc[np.sort(chunk)].reset_index(drop=True)
        if rows.empty:
            rows = population.iloc[np.sort(order[:size])].reset_index(drop=True)
            rows[cfg.target] = None
            note = "unlabelled (every label is already pooled in this step) "
        if start + size < len(population):
            return rows, note, ""
        labelled = int(population[cfg.target].notna().sum())
        exhausted = (
            f"replay has {labelled} labelled evaluation rows (window(s) {windows}), "
            "all of them now in this step's evidence"
        )
        return rows, note, exhausted


def _more(cfg: Config, chosen: Population) -> str:
    """What would bring a replay more labels: older windows, by the setting that limited it."""
    if not chosen.older:
        return "wait for more labelled windows (every labelled window is in use)"
    if chosen.capped:  # auto stopped at the cap short of its need
        return "raise rollout.replay.max_windows"
    if cfg.rollout.replay.windows != "auto":
        return "raise rollout.replay.windows"
    n = len(chosen.windows)
    return (
        f"set rollout.replay.windows above {n} to replay older windows too (auto took the "
        "fewest newest windows that reached min_labelled when the step started)"
    )


def _serve(
    model: Any, batch: pd.DataFrame, start: int, cfg: Config, sample: PredictorSample
) -> None:
    """Answer one request (rows from position `start`) with `model` (None: it did not load),
    timing it like a server."""
    if cfg.task == "classification" and sample.classes is None and model is not None:
        classes = getattr(model, "classes_", None)
        sample.classes = None if classes is None else np.asarray(classes)
    sample.requests += 1
    t0 = time.perf_counter()
    try:
        if model is None:
            raise ValueError("the model did not load")
        out = np.asarray(predict_scores(model, batch, cfg), dtype=float)
        if out.shape[0] != len(batch) or not np.all(np.isfinite(out)):
            raise ValueError("the model returned missing or non-finite predictions")
    except Exception:  # any failure to answer is a failed request, as a server sees it
        sample.latencies.append(time.perf_counter() - t0)
        sample.errors += 1
        return
    sample.latencies.append(time.perf_counter() - t0)
    if out.ndim == 1 and cfg.task == "classification":
        out = out.reshape(-1, 1)
    sample.outputs.append(out)
    sample.labels.extend(batch[cfg.target].tolist())
    sample.rows.extend(range(start, start + len(batch)))


def _replay_for(cfg: Config) -> MetricsProvider:
    return ReplayProvider(cfg.rollout.replay, cfg.rollout.shift_method)


def _prometheus_for(cfg: Config) -> MetricsProvider:
    return PrometheusProvider.from_config(cfg)


#: Provider factories by ``rollout.provider``.
PROVIDERS: dict[str, Callable[[Config], MetricsProvider]] = {
    "replay": _replay_for,
    "prometheus": _prometheus_for,
}


def provider_for(cfg: Config) -> MetricsProvider:
    """The provider named by ``cfg.rollout.provider``."""
    name = cfg.rollout.provider
    if name not in PROVIDERS:
        raise ValidationError(
            f"rollout.provider {name!r} is not available; choose one of {sorted(PROVIDERS)}"
        )
    return PROVIDERS[name](cfg)
