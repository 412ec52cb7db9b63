"""Ingest one window: cut it from the source, check it, and describe it.

`ingest_window` is pure (frames in, result out); reading the source and writing the dataset
happen around it. A window with a structural problem (see `retrain.data.schema`), or with more
broken rows than `data.max_quarantine_share`, raises one ValidationError listing every problem,
so the operator fixes the data once, not one complaint per run. Broken rows below that share
are returned apart (`IngestResult.quarantined`, each with its reason) and values outside the
reference are counted as drift (`retrain.data.quarantine`): the window proceeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config
from retrain.data.io import json_value
from retrain.data.quarantine import (
    RowChecks,
    ValueReference,
    check_rows,
    drift_lines,
    unseen_value_hints,
)
from retrain.data.schema import (
    Schema,
    as_category_strings,
    check_window,
    ignored_columns,
    infer_schema,
)
from retrain.data.source import SourceFacts
from retrain.data.windows import Window, _examples, event_times, off_grid_warning
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
    quarantined: pd.DataFrame | None = None


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
        elif kind == "text":
            lengths = s.dropna().astype(str).str.len()
            entry.update(
                {
                    "empty_share": float((lengths == 0).mean()) if len(lengths) else None,
                    "mean_length": json_value(lengths.mean()) if len(lengths) else None,
                    "max_length": json_value(lengths.max()) if len(lengths) else None,
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
    q = report["quarantine"]
    if q["quarantined_rows"]:
        reasons = "; ".join(f"{why}: {n}" for why, n in q["quarantine_reasons"].items())
        lines.append(
            f"- quarantined: {q['quarantined_rows']} rows ({q['quarantined_share']:.1%}) set"
            f" aside with their reasons ({reasons})"
        )
    for line in report["value_drift"]:
        lines.append(f"- drift vs {q['reference']}: {line}")
    if report["ignored_columns"]:
        listed = ", ".join(f"`{c}`" for c in report["ignored_columns"])
        lines.append(f"- ignored columns (not model inputs): {listed}")
    for warning in report["warnings"]:
        lines.append(f"- warning: {warning}")
    feats = report["features"]
    numeric = {k: v for k, v in feats.items() if v["kind"] == "numeric"}
    categorical = {k: v for k, v in feats.items() if v["kind"] in ("categorical", "identifier")}
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
    text = {k: v for k, v in feats.items() if v["kind"] == "text"}
    if text:
        lines += [
            "",
            "## Text features",
            "",
            "| feature | nulls | empty share | mean length | max length |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, e in text.items():
            cells = [e["nulls"], e["empty_share"], e["mean_length"], e["max_length"]]
            lines.append(f"| `{name}` | " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def ingest_window(
    cfg: Config,
    source_df: pd.DataFrame,
    window: Window,
    schema: Schema | None,
    reference: ValueReference | None = None,
    *,
    facts: SourceFacts | None = None,
) -> IngestResult:
    """Cut `window` from `source_df`, check it, and return its rows with reports.

    With `schema` None this is the first window: it is vetted by the reference-free checks and
    its own schema becomes the reference (``schema_inferred`` is True). Values are compared
    with `reference` (the champion's training data), else with the schema's first window.
    `facts` describe the whole source when `source_df` holds only part of it
    (`retrain.data.source.read_window`); without them `source_df` is the whole source. Where
    they name the files holding the window's rows (`SourceFacts.window_files`), the window's
    columns are judged on those files alone, each problem naming its files.

    Raises:
        EmptyWindow: the window has no rows.
        ValidationError: the window has a structural problem, or more broken rows than
            `data.max_quarantine_share`; every problem is listed.
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
        span = f"{len(source_df) if facts is None else facts.rows} rows"
        if facts is not None and facts.time_min is not None:
            ends = pd.Series([facts.time_min, facts.time_max], name=time_col)
            known = event_times(ends, cfg.data.time_kind, errors="coerce").dropna()
        if len(known):
            span += f" spanning {_time_text(known.min())} to {_time_text(known.max())}"
        raise EmptyWindow(
            f"{where} is empty", [f"no rows with {time_col!r} in the window; the source has {span}"]
        )
    inferred = schema is None
    # Columns ingest does not read are checked by name, from the source's schema or header;
    # where the source's files differ, from those of the files holding the window's rows.
    columns = list(rows.columns) if facts is None or facts.columns is None else facts.columns
    files = facts.window_files if facts is not None else None
    problems = check_window(rows, schema, cfg, columns=columns, files=files)
    if problems:
        raise ValidationError(f"{where} failed {len(problems)} checks", problems)
    if reference is None and schema is not None:
        reference = ValueReference.from_schema(schema)
    checks = check_rows(rows, cfg, reference)
    _check_quarantine_share(checks, len(rows), cfg, where, reference)
    kept = rows.loc[checks.keep].reset_index(drop=True)
    if len(kept) < cfg.data.min_rows:
        raise ValidationError(
            f"{where} has too few rows",
            [
                f"window has {len(kept)} rows after {checks.quarantined_rows} were quarantined;"
                f" data.min_rows is {cfg.data.min_rows}"
            ],
        )
    if schema is None:
        schema = infer_schema(kept, cfg)
    data = _output_frame(kept, cfg)
    warnings = _source_warnings(source_df, times, cfg, facts)
    off_grid = off_grid_warning(cfg.data, window)
    if off_grid:
        warnings.append(off_grid)
    report: dict[str, Any] = {
        "window": window.as_dict(),
        "rows": len(data),
        "window_rows": len(rows),
        "source_rows": len(source_df) if facts is None else facts.rows,
        "schema_inferred": inferred,
        "schema_fingerprint": schema.fingerprint(),
        "problems": [],
        "warnings": warnings,
        "ignored_columns": ignored_columns(columns, cfg),
        "quarantine": checks.to_dict(len(rows)),
        "value_drift": drift_lines(checks),
        "features": _feature_summary(data, cfg),
    }
    return IngestResult(
        data=data,
        schema=schema,
        schema_inferred=inferred,
        report=report,
        markdown=_markdown(report),
        quarantined=checks.quarantined if checks.quarantined_rows else None,
    )


def _check_quarantine_share(
    checks: RowChecks, rows: int, cfg: Config, where: str, reference: ValueReference | None
) -> None:
    share = checks.quarantined_rows / rows if rows else 0.0
    limit = cfg.data.max_quarantine_share
    if share <= limit:
        return
    raise ValidationError(
        f"{where}: {share:.1%} of its rows ({checks.quarantined_rows} of {rows}) are broken, "
        f"more than data.max_quarantine_share {limit:.1%}",
        [f"{why}: {n} rows" for why, n in checks.reasons.items()]
        + unseen_value_hints(checks.reasons, cfg, reference),
    )


def _source_warnings(
    source_df: pd.DataFrame, times: pd.Series, cfg: Config, facts: SourceFacts | None
) -> list[str]:
    time_col = cfg.data.time_column
    warnings = []
    no_time = int(source_df[time_col].isna().sum()) if facts is None else facts.no_time
    if no_time:
        warnings.append(f"{no_time} source rows have no event time and belong to no window")
    unreadable = times.isna() & source_df[time_col].notna()
    count, examples = int(unreadable.sum()), source_df.loc[unreadable, time_col]
    if facts is not None and facts.unreadable:  # counted over the whole source as it streamed
        count, examples = facts.unreadable, pd.Series(facts.unreadable_examples, dtype=object)
    if count:
        warnings.append(
            f"{count} source rows have an unreadable {time_col!r} and belong to "
            f"no window, e.g. {_examples(examples)}"
        )
    return warnings
