"""Ingest one window: cut it from the source, check it, and describe it.

`ingest_window` is pure (frames in, result out); reading the source and writing the dataset
happen around it. A window that fails any check raises one ValidationError listing every
problem, so the operator fixes the data once, not one complaint per run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config
from retrain.data.io import json_value
from retrain.data.schema import Schema, as_category_strings, check_window, infer_schema
from retrain.data.windows import Window, _examples, event_times
from retrain.errors import ValidationError

__all__ = ["EmptyWindow", "IngestResult", "ingest_window"]

_TOP_CATEGORIES = 5


class EmptyWindow(ValidationError):
    """The window has no rows: no new data, which the ingest step reports as an outcome."""


@dataclass
class IngestResult:
    """The window's rows (id, time, features and prediction only) and its reports."""

    data: pd.DataFrame
    schema: Schema
    schema_inferred: bool
    report: dict[str, Any]
    markdown: str


def _output_frame(df: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Only the known columns, in a fixed order, with one dtype per feature kind.

    Numeric features become float64, categorical ones text; event time becomes integer
    periods or UTC timestamps, so every window's dataset has the same column types.
    """
    out: dict[str, pd.Series] = {
        cfg.data.id_column: df[cfg.data.id_column],
        cfg.data.time_column: _time_values(df[cfg.data.time_column], cfg),
    }
    for name, kind in cfg.data.features.items():
        if kind == "numeric":
            out[name] = pd.to_numeric(df[name], errors="coerce").astype("float64")
        else:
            out[name] = as_category_strings(df[name])
    pred = cfg.data.prediction_column
    if pred and pred in df.columns:
        out[pred] = df[pred]
    return pd.DataFrame(out).reset_index(drop=True)


def _time_values(series: pd.Series, cfg: Config) -> pd.Series:
    times = event_times(series, cfg.data.time_kind)
    if cfg.data.time_kind == "period" and (times == np.floor(times)).all():
        return times.astype("int64")
    return times


def _time_text(value: Any) -> str:
    v = json_value(value)
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _feature_summary(df: pd.DataFrame, cfg: Config) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for name, kind in cfg.data.features.items():
        s = df[name]
        entry: dict[str, Any] = {
            "kind": kind,
            "nulls": int(s.isna().sum()),
            "null_rate": float(s.isna().mean()) if len(s) else 0.0,
        }
        if kind == "numeric":
            present = s.dropna()
            entry.update(
                {
                    "mean": json_value(present.mean()) if len(present) else None,
                    "std": json_value(present.std(ddof=0)) if len(present) else None,
                    "min": json_value(present.min()) if len(present) else None,
                    "p50": json_value(present.median()) if len(present) else None,
                    "max": json_value(present.max()) if len(present) else None,
                }
            )
        else:
            counts = s.dropna().value_counts()
            top = counts.iloc[np.lexsort((counts.index.to_numpy(dtype=str), -counts.to_numpy()))]
            entry["distinct"] = len(counts)
            entry["top"] = [
                {"value": str(v), "count": int(n)} for v, n in top.iloc[:_TOP_CATEGORIES].items()
            ]
        summary[name] = entry
    return summary


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _markdown(report: dict[str, Any]) -> str:
    w = report["window"]
    lines = [
        f"# Ingest: window `{w['id']}`",
        "",
        f"- event time: [{w['start']}, {w['end']})",
        f"- rows: {report['rows']} of {report['source_rows']} in the source",
        f"- schema: {'inferred from this window' if report['schema_inferred'] else 'reference'}"
        f" (fingerprint `{report['schema_fingerprint'][:12]}`)",
        "- checks: all passed",
    ]
    for warning in report["warnings"]:
        lines.append(f"- warning: {warning}")
    feats = report["features"]
    numeric = {k: v for k, v in feats.items() if v["kind"] == "numeric"}
    categorical = {k: v for k, v in feats.items() if v["kind"] == "categorical"}
    if numeric:
        lines += [
            "",
            "## Numeric features",
            "",
            "| feature | nulls | mean | std | min | median | max |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, e in numeric.items():
            cells = [e["nulls"], e["mean"], e["std"], e["min"], e["p50"], e["max"]]
            lines.append(f"| `{name}` | " + " | ".join(_cell(c) for c in cells) + " |")
    if categorical:
        lines += [
            "",
            "## Categorical features",
            "",
            "| feature | nulls | distinct | most frequent |",
            "|---|---:|---:|---|",
        ]
        for name, e in categorical.items():
            top = ", ".join(f"{t['value']} ({t['count']})" for t in e["top"])
            lines.append(f"| `{name}` | {e['nulls']} | {e['distinct']} | {top} |")
    return "\n".join(lines) + "\n"


def ingest_window(
    cfg: Config, source_df: pd.DataFrame, window: Window, schema: Schema | None
) -> IngestResult:
    """Cut `window` from `source_df`, check it, and return its rows with reports.

    With `schema` None this is the first window: it is vetted by the reference-free checks and
    its own schema becomes the reference (``schema_inferred`` is True).

    Raises:
        EmptyWindow: the window has no rows.
        ValidationError: the window fails any check; every problem is listed.
    """
    time_col = cfg.data.time_column
    required = [cfg.data.id_column, time_col, *cfg.data.features]
    missing = [c for c in required if c not in source_df.columns]
    if time_col in missing:
        raise ValidationError(
            f"cannot cut window {window.id}: the source has no time column {time_col!r}",
            [f"missing columns: {', '.join(repr(c) for c in missing)}"],
        )
    # One unreadable time in an old file must not block every later window: such rows belong
    # to no window and are reported as a warning instead.
    times = event_times(source_df[time_col], cfg.data.time_kind, errors="coerce")
    inside = ((times >= window.start) & (times < window.end)).fillna(False)
    rows = source_df.loc[inside.to_numpy(dtype=bool)].reset_index(drop=True)
    bounds = window.as_dict()
    where = f"window {window.id} [{bounds['start']}, {bounds['end']})"
    if rows.empty:
        known = times.dropna()
        span = f"{len(source_df)} rows"
        if len(known):
            span += f" spanning {_time_text(known.min())} to {_time_text(known.max())}"
        raise EmptyWindow(
            f"{where} is empty", [f"no rows with {time_col!r} in the window; the source has {span}"]
        )
    inferred = schema is None
    problems = check_window(rows, schema, cfg)
    if problems:
        raise ValidationError(f"{where} failed {len(problems)} checks", problems)
    if schema is None:
        schema = infer_schema(rows, cfg)
    data = _output_frame(rows, cfg)
    warnings = []
    no_time = int(source_df[time_col].isna().sum())
    if no_time:
        warnings.append(f"{no_time} source rows have no event time and belong to no window")
    unreadable = times.isna() & source_df[time_col].notna()
    if unreadable.any():
        warnings.append(
            f"{int(unreadable.sum())} source rows have an unreadable {time_col!r} and belong to "
            f"no window, e.g. {_examples(source_df.loc[unreadable, time_col])}"
        )
    report: dict[str, Any] = {
        "window": window.as_dict(),
        "rows": len(data),
        "source_rows": len(source_df),
        "schema_inferred": inferred,
        "schema_fingerprint": schema.fingerprint(),
        "problems": [],
        "warnings": warnings,
        "features": _feature_summary(data, cfg),
    }
    return IngestResult(
        data=data,
        schema=schema,
        schema_inferred=inferred,
        report=report,
        markdown=_markdown(report),
    )
