"""The reference profile: what the data and the model looked like, stored with the model.

Built once at training time and registered with the model (``profile.json``), so monitoring
reads only the current window. A training run profiles the features on the newest window the
model learned (a mix of history and new rows is mostly the old regime after a change, and
every later window would drift against it); identifier features and the ranges and
categories ingest checks against (`seen`) come from every training row. Per numeric
feature it keeps the reference-quantile bin edges and counts, mean, standard deviation, range
and a sorted sketch (a column of more than `drift.max_sample_rows` finite values: bins and
sketch of a seeded uniform sample of that many, `NumericProfile.sample_n`; counts, moments and
range of the whole column); per categorical feature the category counts;
per text feature its vocabulary with counts (`retrain.drift._text`). For the model: the
distribution of its scores on held-out rows, its metrics there, its estimated accuracy (to
check calibration against the measured one) and permutation importances.

A column (or its sample) of at most `drift.profile_sample_size` values is kept whole. A
longer one becomes a sketch: its sorted values cut into that many runs of consecutive ranks,
each kept as its mean and its count. The runs are narrow at both ends and wide in the middle
(rank cuts on an arcsine scale, as t-digest's): the extreme values, which dominate a
Wasserstein distance on skewed or heavy-tailed data, are kept exactly (single-value runs at
both ends for columns up to about 60 million values at 10,000 runs; beyond that the
outermost runs hold a few values), and no run holds more than max(pi/2 / size, 2 / n) of the
column's n values, which bounds how far the sketch's CDF is from the full column's anywhere.
Compared with the full column, the sketch's Wasserstein distance to a current window is off
by about 1e-5 of a standard deviation at 10,000 runs on normal, lognormal and Pareto(1.5)
data (evenly spaced order statistics of the same size: up to 7e-2 on the Pareto data). The
sketch is deterministic (no seed); a sampled column's sample is seeded
(`retrain.drift._columns.finite_column`), so a rebuilt profile is the same. Arrays of floats
are stored as base64 of little-endian float64, exact and about a third the size of decimal
text.
"""

from __future__ import annotations

import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrain.data.windows import window_slots
from retrain.drift._columns import (
    REFERENCE_SIDE,
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
    bin_counts,
    categorical_profile,
    category_counts,
    category_text,
    column_profile,
    finite_column,
    json_float,
    json_scalar,
    nan_if_none,
    numeric_profile,
    numeric_values,
    opt_float,
    sorted_finite,
)
from retrain.drift._identifiers import IdentifierProfile, identifier_profile
from retrain.drift._performance import (
    EstimateCalibration,
    estimate_performance,
    fit_estimate_calibration,
    metric_sd,
    score_vector,
)
from retrain.drift._text import TextProfile, text_profile
from retrain.errors import ValidationError
from retrain.evaluation.metrics import compute_metrics

if TYPE_CHECKING:
    from retrain.config import Config

__all__ = [
    "PROFILE_FILE",
    "CategoricalProfile",
    "FeatureProfile",
    "IdentifierProfile",
    "NumericProfile",
    "ReferenceProfile",
    "bin_counts",
    "build_profile",
    "category_counts",
    "numeric_profile",
    "numeric_values",
    "sorted_finite",
]

#: What the profile keeps per feature, by kind.
FeatureProfile = ColumnProfile | TextProfile

PROFILE_FILE = "profile.json"
#: The name the model's scores are sampled and reported under.
PREDICTION_COLUMN = "prediction"
PROFILE_FORMAT = 3
# Format 1 kept evenly spaced order statistics without counts; format 2 had neither `seen`
# (its features were the training rows') nor sampled columns (`sample_n`): both still
# readable. A reader of format 2 refuses format 3 by its number instead of misreading it.
_READABLE_FORMATS = (1, 2, 3)
# Fewer labelled held-out rows than this leave the label-free estimate uncalibrated: an
# isotonic map fitted on a handful of rows is mostly noise.
_MIN_CALIBRATION_ROWS = 100


# --- the profile ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Reference data and model behaviour, stored with a model version.

    Attributes:
        task: "classification" or "regression".
        rows: rows of the reference data.
        features: per feature, a `NumericProfile`, `CategoricalProfile`,
            `IdentifierProfile` or `TextProfile`.
        bins: quantile bins per numeric feature.
        sample_size: cap of the sorted sample per numeric feature.
        scores: the model's scores on held-out reference rows (see `score_vector`).
        classes: the model's classes, in the column order of its probabilities.
        metric: the primary metric; `metrics` holds every metric on those rows.
        metric_sd: the primary metric's bootstrap standard deviation on those rows (how far
            the recorded metric may be from the model's true one); None in older profiles.
        positive_class: the class the binary metrics judged (``labels.positive_class``);
            None: ``classes[1]`` (and in older profiles).
        estimated_accuracy: the label-free estimate on those rows (classifiers); with
            `estimate_calibration`, out-of-fold (see `fit_estimate_calibration`).
        importances: permutation importance per feature, as shares summing to 1.
        estimate_calibration: the confidence -> chance-of-being-right map fitted on those
            rows (`drift.calibrate_estimate`); None in profiles written without it.
        seen: the values the model was trained on, when `features` describe other rows (the
            newest window): per numeric feature its finite range `[min, max]`, per
            categorical feature its categories as text. Ingest's value reference; None in
            profiles whose features are the training rows' own.
        seen_rows: rows behind `seen`.
    """

    task: str
    rows: int
    features: dict[str, FeatureProfile]
    bins: int
    sample_size: int
    scores: NumericProfile | None = None
    classes: list[Any] | None = None
    metric: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    metric_sd: float | None = None
    positive_class: Any = None
    estimated_accuracy: float | None = None
    importances: dict[str, float] = field(default_factory=dict)
    estimate_calibration: EstimateCalibration | None = None
    seen: dict[str, list[Any]] | None = None
    seen_rows: int | None = None
    format: int = PROFILE_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "task": self.task,
            "rows": self.rows,
            "bins": self.bins,
            "sample_size": self.sample_size,
            "features": {name: col.to_dict() for name, col in self.features.items()},
            "scores": self.scores.to_dict() if self.scores is not None else None,
            "classes": self.classes,
            "metric": self.metric,
            "metrics": {k: json_float(v) for k, v in self.metrics.items()},
            "metric_sd": json_float(self.metric_sd) if self.metric_sd is not None else None,
            "positive_class": self.positive_class,
            "estimated_accuracy": self.estimated_accuracy,
            "importances": dict(self.importances),
            "estimate_calibration": (
                self.estimate_calibration.to_dict() if self.estimate_calibration else None
            ),
            "seen": self.seen,
            "seen_rows": self.seen_rows,
        }

    def to_json(self) -> str:
        """Strict JSON text (key order kept: features in config order)."""
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        """Parse `to_json` output.

        Raises:
            ValidationError: not JSON, another format version, or a malformed entry.
        """
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValidationError(f"reference profile is not valid JSON: {err}") from None
        if not isinstance(raw, dict):
            raise ValidationError("reference profile must be a JSON object")
        if raw.get("format") not in _READABLE_FORMATS:
            raise ValidationError(
                f"reference profile format {raw.get('format')!r} is not supported "
                f"(this version reads formats {', '.join(map(str, _READABLE_FORMATS))})"
            )
        where = "reference profile"
        try:
            features: dict[str, FeatureProfile] = {}
            for name, col in raw["features"].items():
                where = f"reference profile feature {name!r}"
                kind = col["kind"]
                if kind == "numeric":
                    features[name] = NumericProfile.from_dict(col)
                elif kind == "categorical":
                    features[name] = CategoricalProfile.from_dict(col)
                elif kind == "identifier":
                    features[name] = IdentifierProfile.from_dict(col)
                elif kind == "text":
                    features[name] = TextProfile.from_dict(col)
                else:
                    raise ValueError(f"unknown kind {kind!r}")
            where = "reference profile scores"
            scores = NumericProfile.from_dict(raw["scores"]) if raw["scores"] else None
            where = "reference profile estimate_calibration"
            # Absent from profiles written before the label-free estimate was calibrated.
            raw_calibration = raw.get("estimate_calibration")
            calibration = (
                EstimateCalibration.from_dict(raw_calibration) if raw_calibration else None
            )
            where = "reference profile seen"
            # Absent from profiles whose features were profiled on the training rows.
            seen = _seen_from_json(raw.get("seen"))
            seen_rows = raw.get("seen_rows")
            where = "reference profile"
            return cls(
                task=str(raw["task"]),
                rows=int(raw["rows"]),
                features=features,
                bins=int(raw["bins"]),
                sample_size=int(raw["sample_size"]),
                scores=scores,
                classes=raw["classes"],
                metric=raw["metric"],
                metrics={k: nan_if_none(v) for k, v in raw["metrics"].items()},
                metric_sd=opt_float(raw.get("metric_sd")),
                positive_class=raw.get("positive_class"),
                estimated_accuracy=opt_float(raw["estimated_accuracy"]),
                importances={str(k): float(v) for k, v in raw["importances"].items()},
                estimate_calibration=calibration,
                seen=seen,
                seen_rows=int(seen_rows) if seen_rows is not None else None,
            )
        except KeyError as err:
            raise ValidationError(f"{where} is malformed: missing key {err}") from None
        except (TypeError, ValueError, AttributeError, binascii.Error) as err:
            raise ValidationError(f"{where} is malformed: {err}") from None


def build_profile(
    df: pd.DataFrame,
    cfg: Config,
    *,
    scores: Any = None,
    labels: Any = None,
    classes: Any = None,
    importances: dict[str, float] | None = None,
    seen: pd.DataFrame | None = None,
) -> ReferenceProfile:
    """The reference profile of `df` and, optionally, of the model.

    Args:
        df: reference rows holding every feature of `cfg.data.features`: the rows later
            windows are compared with (a training run passes its newest window's).
        seen: the rows the model was trained on, when they are not `df`: identifier
            features are profiled on them (an id the model saw is not unseen, whichever
            window it came from) and their ranges and categories are recorded as `seen`,
            ingest's value reference.
        cfg: the config: feature kinds, task, primary metric, `drift.bins` and
            `drift.profile_sample_size`.
        scores: the model's scores on held-out reference rows (probabilities rows x classes,
            or positive-class probabilities, or regression predictions); need not be rows of
            `df`: scores on data the model trained on are overconfident.
        labels: the true labels of the scored rows; with them the profile records the metrics.
        classes: the model's classes in probability-column order (classification).
        importances: per feature, e.g. from `permutation_importance`; normalised to sum 1.

    Raises:
        ValidationError: missing feature columns (all listed), a numeric feature holding text,
            importances naming unknown features or negative values, labels without scores.
    """
    features = dict(cfg.data.features)
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise ValidationError(
            "reference data lacks feature columns listed in data.features",
            [f"missing column {c!r}" for c in missing],
        )
    if seen is not None:
        absent = [c for c in features if c not in seen.columns]
        if absent:
            raise ValidationError(
                "training rows lack feature columns listed in data.features",
                [f"missing column {c!r}" for c in absent],
            )
    size, bins, cap = cfg.drift.profile_sample_size, cfg.drift.bins, cfg.drift.max_sample_rows
    columns: dict[str, FeatureProfile] = {}
    for name, kind in features.items():
        if kind == "identifier" and seen is not None:
            columns[name] = _identifier_profile(seen, name, cfg)
        elif kind == "numeric":
            column = finite_column(df[name], name, cap, cfg.seed, REFERENCE_SIDE)
            columns[name] = column_profile(column, bins, size)
        elif kind == "identifier":
            columns[name] = _identifier_profile(df, name, cfg)
        elif kind == "text":
            columns[name] = text_profile(df[name], lowercase=cfg.training.text.lowercase)
        else:
            columns[name] = categorical_profile(df[name])

    score_profile = None
    metrics: dict[str, float] = {}
    sd = None
    estimated = None
    class_list = [json_scalar(c) for c in classes] if classes is not None else None
    calibration = None
    if scores is not None:
        vector = score_vector(scores, cfg.task)
        score_profile = numeric_profile(
            vector, bins, size, cap=cap, seed=cfg.seed, name=PREDICTION_COLUMN
        )
        if cfg.task == "classification":
            estimated = estimate_performance(scores).value
        if labels is not None:
            positive = cfg.labels.positive_class
            metrics = _metrics(cfg.task, labels, scores, class_list, cfg.primary_metric, positive)
            if metrics:
                sd = metric_sd(
                    cfg.task,
                    cfg.primary_metric,
                    labels,
                    scores,
                    class_list,
                    n_boot=cfg.drift.bootstrap_samples,
                    seed=cfg.seed,
                    positive=positive,
                )
        if (
            cfg.task == "classification"
            and cfg.drift.calibrate_estimate
            and labels is not None
            and class_list is not None
            and int(pd.Series(labels).notna().sum()) >= _MIN_CALIBRATION_ROWS
        ):
            calibration, estimated = fit_estimate_calibration(
                scores, labels, class_list, seed=cfg.seed
            )
    elif labels is not None:
        raise ValidationError("labels were given without scores: the metrics need both")
    return ReferenceProfile(
        task=cfg.task,
        rows=len(df),
        features=columns,
        bins=bins,
        sample_size=size,
        scores=score_profile,
        classes=class_list,
        metric=cfg.primary_metric if metrics else None,
        metrics=metrics,
        metric_sd=sd,
        positive_class=json_scalar(cfg.labels.positive_class),
        estimated_accuracy=estimated,
        importances=_importances(importances, features),
        estimate_calibration=calibration,
        seen=_seen_values(seen, features) if seen is not None else None,
        seen_rows=len(seen) if seen is not None else None,
    )


def _identifier_profile(df: pd.DataFrame, name: str, cfg: Config) -> IdentifierProfile:
    # Event-time order and grid windows for the turnover, where rows carry times.
    time = cfg.data.time_column
    order = slots = None
    if time in df.columns:
        order = df[time].reset_index(drop=True).argsort(kind="stable").to_numpy()
        slots = window_slots(cfg.data, df[time])
    return identifier_profile(df[name], order, slots)


def _seen_values(df: pd.DataFrame, features: Mapping[str, str]) -> dict[str, list[Any]]:
    """Per numeric feature its finite `[min, max]` (or `[]`), per categorical its categories."""
    seen: dict[str, list[Any]] = {}
    for name, kind in features.items():
        if kind == "numeric":
            values = numeric_values(df[name], name)
            finite = values[np.isfinite(values)]
            seen[name] = [float(finite.min()), float(finite.max())] if len(finite) else []
        elif kind == "categorical":
            seen[name] = sorted(str(c) for c in category_text(df[name]).dropna().unique())
    return seen


def _seen_from_json(raw: Any) -> dict[str, list[Any]] | None:
    """`seen` as written: per feature a numeric range ``[]`` or ``[min, max]`` of finite
    numbers, or a list of category labels (text)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("'seen' must map each feature to a list")
    for name, values in raw.items():
        if not isinstance(values, list):
            raise ValueError(f"'seen' of {name!r} must be a list")
        if all(isinstance(v, str) for v in values):
            continue
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if (
            len(numbers) != len(values)
            or len(numbers) != 2
            or not all(math.isfinite(v) for v in numbers)
            or numbers[0] > numbers[1]
        ):
            raise ValueError(
                f"'seen' of {name!r} must be a [min, max] range of finite numbers or category"
                " labels"
            )
    return {str(k): list(v) for k, v in raw.items()}


def _metrics(
    task: str,
    labels: Any,
    scores: Any,
    classes: list[Any] | None,
    metric: str,
    positive: Any = None,
) -> dict[str, float]:
    y = pd.Series(labels).reset_index(drop=True)
    s = np.asarray(scores, dtype=float)
    if len(y) != len(s):
        raise ValidationError(f"labels have {len(y)} rows but scores have {len(s)}")
    known = y.notna().to_numpy()
    if known.sum() == 0:
        return {}
    return compute_metrics(task, y[known], s[known], classes, (metric,), positive)


def _importances(raw: dict[str, float] | None, features: Mapping[str, str]) -> dict[str, float]:
    if not raw:
        return {}
    unknown = sorted(set(raw) - set(features))
    bad = sorted(k for k, v in raw.items() if not (math.isfinite(v) and v >= 0.0))
    if unknown or bad:
        raise ValidationError(
            "importances must name features with finite values >= 0",
            [f"unknown feature {k!r}" for k in unknown] + [f"bad value for {k!r}" for k in bad],
        )
    total = sum(raw.values())
    return {k: (float(raw[k]) / total if total > 0 else 0.0) for k in features if k in raw}
