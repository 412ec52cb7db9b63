"""Join late-arriving ground truth to a window's events.

Labels come from their own source, keyed by the event id. The join reports coverage (share of
events with a label), sends unlabelled events to a labelling queue, keeps the latest label when
an id was labelled twice, and counts labels dated before their event: a label known before the
event happened usually means the label leaks information the model will not have at serving time.

Labels arrive late, and a source read today may hold labels that a run for an older time could
not have seen. With ``labels.time_column`` set and an ``as_of`` time, the join uses only labels
dated at or before ``as_of``: later ones (even a later relabelling of an id) have not arrived,
so their events stay in the labelling queue and count against coverage. Labels without a
readable time are kept, as they are when de-duplicating (undated means old).

Two labels of an event's id dated the same (its latest time) with different values are
refused: neither is the later correction, and taking the one the source happens to list last
would change the label when the source is written again in another order. Equal ones are
harmless duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config
from retrain.data.io import json_value
from retrain.data.schema import as_category_strings
from retrain.data.windows import as_of_text, event_times
from retrain.errors import ValidationError, sample_text
from retrain.labels._ids import id_mismatch_hint

__all__ = [
    "COVERAGE_SHORTFALL",
    "MAX_LEAKAGE_SHARE",
    "MAX_REGRESSION_LABEL",
    "LabelResult",
    "id_mismatch_hint",
    "join_labels",
    "known_labels",
    "label_columns",
    "without_coverage_floor",
]

#: Above this share of labelled rows dated before their event, the join fails.
MAX_LEAKAGE_SHARE = 0.01
#: The largest regression label magnitude: squares of errors stay far below float64's limit
#: (about 1.8e308) summed over any number of rows, so metrics and summaries stay finite.
MAX_REGRESSION_LABEL = 1e100
#: The words a failed join uses for too few labels (a monitor re-launches such runs later).
COVERAGE_SHORTFALL = "is below labels.min_coverage"
#: What a filtered read's label counts cover.
_SCOPE_IDS_ONLY = (
    "the labels of this window's ids only (filtered read): duplicates and null labels among "
    "them; labels for other events not measured"
)


@dataclass
class LabelResult:
    """Labelled events, the labelling queue, and what the join found."""

    labelled: pd.DataFrame
    queue: pd.DataFrame
    coverage: float
    leakage: int
    report: dict[str, Any]
    markdown: str


def label_columns(cfg: Config) -> list[str]:
    """The label source's columns the join uses: id, label and (when set) label time."""
    names = [cfg.labels.id_column, cfg.labels.label_column]
    return names + ([cfg.labels.time_column] if cfg.labels.time_column else [])


def _join_keys(ids: pd.Series) -> pd.Series:
    # Ids read from different files can differ in type (int in one, text in the other).
    return as_category_strings(ids)


def _check_columns(cfg: Config, events: pd.DataFrame, labels: pd.DataFrame) -> None:
    problems = []
    if cfg.data.id_column not in events.columns:
        problems.append(f"events have no id column {cfg.data.id_column!r}")
    if cfg.target in events.columns:
        problems.append(
            f"events already have a column named {cfg.target!r} (the target); labels must come "
            "from the label source"
        )
    needed = [cfg.labels.id_column, cfg.labels.label_column]
    if cfg.labels.time_column:
        needed.append(cfg.labels.time_column)
    missing = [c for c in needed if c not in labels.columns]
    if missing:
        problems.append(
            f"labels have no column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(c) for c in missing)} (found: {', '.join(map(repr, labels.columns))})"
        )
    if cfg.labels.time_column and cfg.data.time_column not in events.columns:
        problems.append(
            f"events have no time column {cfg.data.time_column!r}, needed for the leakage check"
        )
    if problems:
        raise ValidationError("cannot join labels", problems)


@dataclass
class _Arrived:
    """The labels known as of the run's time, one per id, and what was left out or dropped."""

    latest: pd.DataFrame
    duplicates: int
    null_labels: int
    unreadable_times: int
    late_keys: pd.Index  # ids whose only labels are dated after as_of
    # Labels of ids whose latest time holds several values: one row per label, keyed.
    conflicts: pd.DataFrame


def _latest_labels(cfg: Config, labels: pd.DataFrame, as_of: Any) -> _Arrived:
    """One label per id (the latest by label time among those dated at or before `as_of`),
    plus counts of duplicates, null labels and unreadable label times."""
    lab = labels.copy()
    lab["_key"] = _join_keys(lab[cfg.labels.id_column])
    lab = lab[lab["_key"].notna()]
    null_labels = int(lab[cfg.labels.label_column].isna().sum())
    lab = lab[lab[cfg.labels.label_column].notna()]
    unreadable = 0
    late_keys = pd.Index([])
    if cfg.labels.time_column:
        raw = lab[cfg.labels.time_column]
        # Label times share the events' time kind; an unreadable one counts as unknown.
        lab["_label_time"] = event_times(raw, cfg.data.time_kind, errors="coerce")
        unreadable = int((lab["_label_time"].isna() & raw.notna()).sum())
        if as_of is not None:
            # Not arrived yet at the run's time; NaT compares False, so undated labels stay.
            late = (lab["_label_time"] > as_of).to_numpy()
            arrived_keys = pd.Index(lab.loc[~late, "_key"].unique())
            late_keys = pd.Index(lab.loc[late, "_key"].unique())
            late_keys = late_keys[arrived_keys.get_indexer(late_keys) < 0]
            lab = lab[~late]
        # Stable sort: unknown times lose; among undated labels the later row in the source
        # wins (equal dated times of different values are `conflicts`, refused by the join).
        lab = lab.sort_values("_label_time", kind="mergesort", na_position="first")
    dup = lab["_key"].duplicated(keep="last")
    conflicts = _conflicts(cfg, lab) if cfg.labels.time_column else lab.iloc[:0]
    return _Arrived(lab[~dup], int(dup.sum()), null_labels, unreadable, late_keys, conflicts)


def _conflicts(cfg: Config, lab: pd.DataFrame) -> pd.DataFrame:
    """The labels of ids whose latest dated labels (of one time) hold different values: the
    source does not say which is the correction, and its row order (file order, row order)
    changes when it is written again."""
    repeated = lab[lab["_key"].duplicated(keep=False) & lab["_label_time"].notna()]
    latest = repeated.groupby("_key", sort=False)["_label_time"].transform("max")
    tied = repeated[repeated["_label_time"] == latest]
    values = tied.groupby("_key", sort=False)[cfg.labels.label_column].nunique()
    return tied[tied["_key"].isin(values.index[values > 1])]


def _conflict_problem(cfg: Config, conflicts: pd.DataFrame) -> str:
    """The error for `conflicts` (labels of the events' ids only), naming a few ids."""
    ids, label, when = cfg.labels.id_column, cfg.labels.label_column, cfg.labels.time_column
    keys = conflicts["_key"].unique()
    examples = []
    for key in keys[:3]:
        rows = conflicts[conflicts["_key"] == key]
        values = sorted((json_value(v) for v in pd.unique(rows[label].astype(object))), key=str)
        stamp = sample_text([json_value(rows[when].iloc[0])], width=30)
        named = sample_text([json_value(rows[ids].iloc[0])])
        examples.append(f"{named} ({sample_text(values, width=20)} at {stamp})")
    return (
        f"{len(keys)} ids have {len(conflicts)} labels that disagree at their latest {when!r} "
        f"(the same time, different values), e.g. {'; '.join(examples)}: which one is the "
        "correction cannot be told (the label source's row order changes when it is written "
        f"again); keep one label per id and time in {cfg.labels.uri}, or date the correction "
        "later"
    )


def _label_summary(cfg: Config, values: pd.Series) -> dict[str, Any]:
    if values.empty:
        return {}
    if cfg.task == "classification":
        counts = values.value_counts()
        return {
            "classes": {
                str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))
            }
        }
    return {
        "mean": json_value(values.mean()),
        "std": json_value(values.std(ddof=0)),
        "min": json_value(values.min()),
        "max": json_value(values.max()),
    }


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Labels",
        "",
        f"- events: {report['events']}",
        f"- labelled: {report['labelled']} (coverage {report['coverage']:.1%}, "
        f"minimum {report['min_coverage']:.1%})",
        f"- labelling queue: {report['queue']} events without a label",
        f"- labels as of: {report['as_of'] or 'any time (no cut)'}"
        + (
            f"; {report['not_yet_arrived']} events have a label dated later (not arrived yet)"
            if report["as_of"]
            else ""
        ),
        f"- duplicate labels dropped (kept the latest): {report['duplicate_labels_dropped']}",
        f"- labels without a value (ignored): {report['null_labels']}",
        "- labels for other events: "
        + (
            "not measured (filtered read)"
            if report["unmatched_labels"] is None
            else str(report["unmatched_labels"])
        ),
        f"- labels counted: {report['label_counts_scope']}",
    ]
    if report["leakage_checked"]:
        lines.append(
            f"- labels dated before their event: {report['leakage']} "
            f"({report['leakage_share']:.2%} of labelled rows)"
        )
    for warning in report["warnings"]:
        lines.append(f"- warning: {warning}")
    summary = report["label_summary"]
    if "classes" in summary:
        lines += ["", "| class | rows |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in summary["classes"].items()]
    elif summary:
        lines += [
            "",
            "| mean | std | min | max |",
            "|---:|---:|---:|---:|",
            "| " + " | ".join(f"{summary[k]:.4g}" for k in ("mean", "std", "min", "max")) + " |",
        ]
    return "\n".join(lines) + "\n"


def without_coverage_floor(cfg: Config) -> Config:
    """`cfg` with ``labels.min_coverage`` 0: for joins that take whatever labels have arrived
    (a monitor's current window, a labelled check, a baseline refit, provisional windows)."""
    return cfg.model_copy(update={"labels": cfg.labels.model_copy(update={"min_coverage": 0.0})})


def join_labels(
    cfg: Config,
    events: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    as_of: Any = None,
    events_ids_only: bool = False,
    id_sample: pd.DataFrame | None = None,
) -> LabelResult:
    """Attach labels to events by id; unlabelled events form the labelling queue.

    `as_of` is the run's time from `retrain.data.windows.parse_as_of` (a period number or a
    UTC timestamp): with ``labels.time_column`` set, labels dated after it have not arrived and
    are left out. None, or no ``labels.time_column``, uses every label in the source.
    `events_ids_only` says `labels` holds only the labels of the events' ids (a filtered read):
    labels for other events are then not measured (``unmatched_labels`` None), and duplicates
    and null labels are counted among the labels given (``label_counts_scope`` says which).
    `id_sample`: a few rows of the label source, for the hint when such a filtered read found
    no label (`id_mismatch_hint`: labels exist, but not one id matches an event id).

    Raises:
        ValidationError: missing columns, no events, coverage under ``labels.min_coverage``,
            non-numeric, infinite or huge (beyond 1e100) regression labels, labels of one
            event id that disagree at its latest ``labels.time_column`` (the same time,
            different values), or more than 1% of labelled rows labelled before their event.
            All failures found are listed together.
    """
    _check_columns(cfg, events, labels)
    if events.empty:
        raise ValidationError("cannot join labels: there are no events")
    cut = as_of if cfg.labels.time_column else None
    arrived = _latest_labels(cfg, labels, cut)
    latest, duplicates = arrived.latest, arrived.duplicates
    null_labels, unreadable_times = arrived.null_labels, arrived.unreadable_times

    keys = _join_keys(events[cfg.data.id_column])
    by_key = latest.set_index("_key")  # one row per key: the latest label
    matched, rows = _match(by_key.index, keys)
    label_values = by_key[cfg.labels.label_column].to_numpy()[rows]

    labelled = events.loc[matched].copy()
    labelled[cfg.target] = label_values
    labelled = labelled.reset_index(drop=True)
    queue = events.loc[~matched].reset_index(drop=True)
    coverage = float(matched.mean())
    # Queued events whose label exists but is dated after as_of: coverage still to come.
    waiting = int(((arrived.late_keys.get_indexer(pd.Index(keys)) >= 0) & ~matched).sum())

    hint = None
    if not matched.any():  # 0%: not arrived yet, or ids that cannot match
        sample = id_sample if labels.empty and id_sample is not None else None
        hint = id_mismatch_hint(
            cfg, events, labels if sample is None else sample, sampled=sample is not None
        )
    problems = []
    # Only the labels the join uses: a conflict among other ids' labels does not stop this
    # window, so a whole read and a filtered read (the events' ids) agree.
    conflicts = arrived.conflicts
    conflicts = conflicts[pd.Index(keys.dropna().unique()).get_indexer(conflicts["_key"]) >= 0]
    if len(conflicts):
        problems.append(_conflict_problem(cfg, conflicts))
    if cfg.task == "regression" and len(labelled):
        numbers = pd.to_numeric(labelled[cfg.target], errors="coerce").astype("float64")
        bad = int(numbers.isna().sum())
        # inf passes to_numeric; no model fits it and every metric on it is inf or NaN.
        values = numbers.to_numpy()
        infinite = int(np.isinf(values).sum())
        # Finite but huge: squares of errors and spreads overflow float64 near 1e154.
        huge = np.isfinite(values) & (np.abs(values) > MAX_REGRESSION_LABEL)
        if bad:
            problems.append(
                f"{bad} labels in {cfg.labels.label_column!r} are not numbers (task is regression)"
            )
        if infinite:
            problems.append(
                f"{infinite} labels in {cfg.labels.label_column!r} are infinite (task is "
                "regression): a regression target must be finite"
            )
        if huge.any():
            problems.append(
                f"{int(huge.sum())} labels in {cfg.labels.label_column!r} exceed "
                f"{MAX_REGRESSION_LABEL:.0e} in magnitude (task is regression; largest "
                f"{float(np.abs(values[huge]).max()):.3g}): a regression target must stay "
                "within that, as the squares in rmse, r2 and the labels' spread overflow to "
                "infinity near 1e154; rescale it (e.g. to thousands, or its log)"
            )
        if not bad and not infinite and not huge.any():
            labelled[cfg.target] = numbers
    if coverage < cfg.labels.min_coverage:
        late_note = (
            f"; as of {as_of_text(cut)}, {waiting} more events have labels dated later, not "
            "arrived yet (run this window later, or set labels.delay for scheduled runs)"
            if cut is not None and waiting
            else ""
        )
        problems.append(
            f"label coverage {coverage:.1%} ({len(labelled)} of {len(events)} events) "
            f"{COVERAGE_SHORTFALL} {cfg.labels.min_coverage:.1%}{late_note}"
            + (f"; {hint}" if hint else "")
        )
        hint = None  # said in the error

    leakage, warnings = 0, [hint] if hint else []
    if unreadable_times:
        warnings.append(
            f"{unreadable_times} labels have an unreadable {cfg.labels.time_column!r}; they are "
            "treated as undated (oldest when de-duplicating, never counted as leakage)"
        )
    leak_share = 0.0
    checked = bool(cfg.labels.time_column)
    if checked and len(labelled):
        label_t = by_key["_label_time"].iloc[rows].reset_index(drop=True)
        event_t = event_times(events.loc[matched, cfg.data.time_column], cfg.data.time_kind)
        # Missing times compare False: an undated label is not counted as leakage.
        leakage = int((label_t < event_t.reset_index(drop=True)).sum())
        leak_share = leakage / len(labelled)
        if leakage:
            message = (
                f"{leakage} labels ({leak_share:.2%} of labelled rows) are dated before their "
                f"event ({cfg.labels.time_column!r} < {cfg.data.time_column!r}): check for leakage"
            )
            if leak_share > MAX_LEAKAGE_SHARE:
                problems.append(message + f"; more than {MAX_LEAKAGE_SHARE:.0%} is an error")
            else:
                warnings.append(message)
    if problems:
        raise ValidationError("label join failed", problems)

    report: dict[str, Any] = {
        "events": len(events),
        "labelled": len(labelled),
        "queue": len(queue),
        "coverage": coverage,
        "min_coverage": cfg.labels.min_coverage,
        "as_of": as_of_text(cut) if cut is not None else None,
        "not_yet_arrived": waiting,
        "duplicate_labels_dropped": duplicates,
        "null_labels": null_labels,
        "unmatched_labels": None
        if events_ids_only
        else int((pd.Index(keys.dropna().unique()).get_indexer(latest["_key"]) < 0).sum()),
        "label_counts_scope": _SCOPE_IDS_ONLY if events_ids_only else "the whole label source",
        "leakage_checked": checked,
        "leakage": leakage,
        "leakage_share": leak_share,
        "warnings": warnings,
        "label_summary": _label_summary(cfg, labelled[cfg.target]),
    }
    return LabelResult(
        labelled=labelled,
        queue=queue,
        coverage=coverage,
        leakage=leakage,
        report=report,
        markdown=_markdown(report),
    )


def known_labels(
    cfg: Config, events: pd.DataFrame, labels: pd.DataFrame, as_of: Any
) -> tuple[pd.Series, float]:
    """The labels `join_labels` would give `events` as of `as_of`, without its checks (for
    re-enacting what was known at some earlier time): one value per labelled event, the latest
    dated by then, undated labels counting as known; an id whose latest labels disagree is left
    unlabelled. And the share of the events labelled."""
    arrived = _latest_labels(cfg, labels, as_of if cfg.labels.time_column else None)
    latest = arrived.latest
    if len(arrived.conflicts):
        latest = latest[
            pd.Index(arrived.conflicts["_key"].unique()).get_indexer(latest["_key"]) < 0
        ]
    matched, rows = _match(pd.Index(latest["_key"]), _join_keys(events[cfg.data.id_column]))
    values = latest[cfg.labels.label_column].to_numpy()[rows]
    return pd.Series(values), float(matched.mean()) if len(events) else 0.0


def _match(label_keys: pd.Index, event_keys: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Which events have a label among `label_keys` (one per key), and the position of each
    one's label. By hash lookup: Series.isin on pandas-3 strings goes value by value."""
    position = label_keys.get_indexer(pd.Index(event_keys))
    matched = (position >= 0) & event_keys.notna().to_numpy()
    return matched, position[matched]
