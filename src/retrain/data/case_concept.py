"""The concept case: gradual concept drift, where P(y|x) moves while the features stay put.

Like `retrain.data.cases`, `generate_concept` writes ``events/`` (one Parquet file per weekly
window), ``labels/`` and a config beside them; same arguments, same bytes; drawn with numpy.

A rotating hyperplane. Seven informative features ``x1`` to ``x7`` are standard normal in
every week; the label is 1 where ``w(t) . x + segment offset + noise > 0`` (Gaussian noise of
`NOISE`, so even the true hyperplane ranks with a ROC AUC of about 0.9). The unit normal vector
``w(t)`` turns by `TURN_PER_WEEK` radians (about 2.9 degrees) every week, in one fixed plane
(`concept_weights`): no week looks different from the last, but a model of week 0 is 60
degrees off by week 21. Around that:

- ``x8`` drifts and does not matter: its mean moves by `BENIGN_STEP` standard deviations a
  week and it carries no weight (benign drift, which a monitor sees and should not act on);
- ``segment`` (four values, each with a small fixed offset) changes its shares at half the
  stream (`segment_shares`), so the positive rate moves a little;
- at `drift_window` the weight of ``x1`` (the largest) changes sign: an abrupt change, late.

The features' distributions (but for ``x8`` and the segment shares) never change, so the
gradual part is visible only in labels. Labels arrive one to three weeks after each row
(`labelled_at`), and about 3% never.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrain.data.demo import (
    _check_sizes,
    _ids,
    _write_config,
    write_late_labelled,
)

__all__ = [
    "BENIGN_STEP",
    "INFORMATIVE",
    "NOISE",
    "SEGMENTS",
    "TURN_PER_WEEK",
    "concept_weights",
    "generate_concept",
    "segment_shares",
]

_START = pd.Timestamp("2024-01-01", tz="UTC")  # a Monday: windows are ISO weeks
_WEEK_SECONDS = 7 * 86400
#: The features the label depends on (standard normal in every week).
INFORMATIVE = ("x1", "x2", "x3", "x4", "x5", "x6", "x7")
#: Radians the hyperplane's normal vector turns each week.
TURN_PER_WEEK = 0.05
#: Standard deviation of the noise added to the score before the threshold.
NOISE = 0.6
#: Weekly move of the benign feature ``x8``'s mean, in standard deviations.
BENIGN_STEP = 0.08
SEGMENTS = ("north", "south", "east", "west")
_SEGMENT_OFFSET = np.array([0.3, 0.0, -0.2, -0.4])
_SHARES_BEFORE = np.array([0.4, 0.3, 0.2, 0.1])
_SHARES_AFTER = np.array([0.2, 0.3, 0.2, 0.3])
# The normal vector at week 0 and the direction it turns towards (orthonormalised below);
# x1 carries the largest weight throughout the turn before the change point.
_START_NORMAL = np.array([1.0, 0.0, 0.6, -0.5, 0.4, 0.3, -0.2])
_TURN_TOWARDS = np.array([0.3, 1.0, -0.4, 0.5, 0.0, -0.5, 0.3])


def _plane() -> tuple[np.ndarray, np.ndarray]:
    u = _START_NORMAL / np.linalg.norm(_START_NORMAL)
    v = _TURN_TOWARDS - (_TURN_TOWARDS @ u) * u
    return u, v / np.linalg.norm(v)


def concept_weights(week: int, drift_window: int) -> np.ndarray:
    """The hyperplane's unit normal vector (weights of `INFORMATIVE`, in order) in a week:
    turned by `TURN_PER_WEEK` radians a week, with the weight of ``x1`` negated from
    `drift_window` on."""
    u, v = _plane()
    angle = TURN_PER_WEEK * week
    w = np.cos(angle) * u + np.sin(angle) * v
    if week >= drift_window:
        w[0] = -w[0]
    return np.asarray(w)


def segment_shares(week: int, windows: int) -> np.ndarray:
    """Each segment's share of rows (in `SEGMENTS` order): they change at half the stream."""
    return (_SHARES_AFTER if week >= windows // 2 else _SHARES_BEFORE).copy()


def _week(rng: np.random.Generator, week: int, n: int, windows: int, drift_window: int) -> Any:
    x = rng.standard_normal((n, len(INFORMATIVE)))
    segment = rng.choice(len(SEGMENTS), n, p=segment_shares(week, windows))
    score = x @ concept_weights(week, drift_window) + _SEGMENT_OFFSET[segment]
    label = (score + rng.normal(0.0, NOISE, n) > 0).astype(np.int64)
    seconds = np.sort(rng.integers(0, _WEEK_SECONDS, n))
    frame = pd.DataFrame(
        {"scored_at": _START + pd.to_timedelta(week * _WEEK_SECONDS + seconds, unit="s")}
    )
    for j, name in enumerate(INFORMATIVE):
        frame[name] = x[:, j].round(4)
    frame["x8"] = (BENIGN_STEP * week + rng.standard_normal(n)).round(4)
    frame["segment"] = np.asarray(SEGMENTS)[segment]
    frame["outcome"] = label
    frame["week"] = week
    return frame


def generate_concept(
    out_dir: Path,
    *,
    windows: int = 30,
    rows_per_window: int = 1500,
    drift_window: int = 22,
    seed: int = 7,
) -> Path:
    """Write the concept case (a rotating hyperplane, weekly windows); return its config."""
    _check_sizes(windows, rows_per_window, drift_window)
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    frames = [_week(rng, w, rows_per_window, windows, drift_window) for w in range(windows)]
    events = pd.concat(frames, ignore_index=True)
    events.insert(0, "row_id", _ids("row", len(events)))
    write_late_labelled(
        out_dir,
        events,
        rng,
        id_column="row_id",
        time_column="scored_at",
        target="outcome",
        label_time_column="labelled_at",
        window_column="week",
        delay_days=(7, 21),
        windows=windows,
    )

    features = {name: "numeric" for name in (*INFORMATIVE, "x8")}
    features["segment"] = "categorical"
    config: dict[str, Any] = {
        "name": "concept",
        "task": "classification",
        "target": "outcome",
        "storage_root": "store",
        "seed": seed,
        "data": {
            "uri": "events",
            "format": "parquet",
            "id_column": "row_id",
            "time_column": "scored_at",
            "time_kind": "timestamp",
            "window_size": "7d",
            "window_anchor": _START.strftime("%Y-%m-%d"),
            "features": features,
            "min_rows": min(100, rows_per_window),
        },
        "labels": {
            "uri": "labels",
            "format": "parquet",
            "id_column": "row_id",
            "label_column": "outcome",
            "time_column": "labelled_at",
            "min_coverage": 0.9,
        },
        # The concept is a hyperplane: a linear model is the one that fits it.
        "model": {
            "estimator": "sklearn.linear_model.LogisticRegression",
            "params": {"C": 1.0, "max_iter": 200},
        },
        # A week's evaluation rows are a fifth of its labelled rows (about 19% of them): the
        # minimum stays below that, so a week can be judged on its own.
        "evaluation": {"metric": "roc_auc", "min_rows": min(500, rows_per_window // 6)},
        "deploy": {"deployment_name": "concept", "gitops_repo": "gitops"},
        # Small test runs replay fewer rows than the default min_labelled (see loans).
        "rollout": {
            "interval_seconds": 1,
            "progress_deadline_seconds": 60,
            "min_labelled": 50,
        },
    }
    return _write_config(out_dir / "concept.yaml", config)
