"""The reference schema of a use case and the checks every new window must pass.

The schema is inferred once, from the first ingested window, and kept with the use case; later
windows are checked against it. `check_window` returns every structural problem in words
(missing or extra columns, numeric columns mostly of text, null rates, volume, duplicate ids,
config and schema out of step) so one failed run tells the whole story. Row-level problems
and drifted values are `retrain.data.quarantine`'s: they set rows aside or are counted, and the
window proceeds.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config
from retrain.data.io import json_value
from retrain.data.limits import longest_text_bytes
from retrain.data.windows import _examples, event_times
from retrain.errors import ValidationError

__all__ = [
    "ColumnSchema",
    "Schema",
    "as_category_strings",
    "check_window",
    "ignored_columns",
    "infer_schema",
    "known_columns",
    "numeric_values",
]

SCHEMA_FORMAT = 1


@dataclass(frozen=True)
class ColumnSchema:
    """What one feature looked like in the reference window."""

    kind: str
    dtype: str
    null_rate: float
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "dtype": self.dtype,
            "null_rate": self.null_rate,
            "min": self.min,
            "max": self.max,
            "categories": self.categories,
        }


@dataclass(frozen=True)
class Schema:
    """Feature columns (by name) plus the id, time and optional prediction column names."""

    id_column: str
    time_column: str
    columns: dict[str, ColumnSchema]
    prediction_column: str | None = None
    format: int = field(default=SCHEMA_FORMAT)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "id_column": self.id_column,
            "time_column": self.time_column,
            "prediction_column": self.prediction_column,
            "columns": {name: col.to_dict() for name, col in self.columns.items()},
        }

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, fixed separators): equal schemas give equal text."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str | bytes) -> Schema:
        """Parse a schema written by `to_json`; a malformed document raises ValidationError."""
        try:
            raw = json.loads(text)
            if raw.get("format") != SCHEMA_FORMAT:
                raise ValueError(f"unsupported schema format {raw.get('format')!r}")
            columns = {
                str(name): ColumnSchema(
                    kind=c["kind"],
                    dtype=c["dtype"],
                    null_rate=float(c["null_rate"]),
                    min=None if c.get("min") is None else float(c["min"]),
                    max=None if c.get("max") is None else float(c["max"]),
                    categories=None
                    if c.get("categories") is None
                    else [str(v) for v in c["categories"]],
                )
                for name, c in raw["columns"].items()
            }
            for name, col in columns.items():
                if col.kind not in ("numeric", "categorical", "identifier", "text"):
                    raise ValueError(f"column {name!r} has unknown kind {col.kind!r}")
            return cls(
                id_column=str(raw["id_column"]),
                time_column=str(raw["time_column"]),
                columns=columns,
                prediction_column=raw.get("prediction_column"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            problem = f"missing key {err}" if isinstance(err, KeyError) else str(err)
            raise ValidationError(f"schema JSON is invalid: {problem}") from None


def _text_dtype() -> Any:
    """pandas' NaN-backed string dtype (the default for text since pandas 3), else object."""
    try:
        return pd.StringDtype(na_value=np.nan)
    except TypeError:  # pandas < 2.3
        return object


_TEXT_DTYPE = _text_dtype()


def as_category_strings(series: pd.Series) -> pd.Series:
    """Values as category labels (text), missing values kept missing.

    Integral floats print as integers, so a column that gained a null (int64 -> float64) still
    says '3', not '3.0', and is not flagged as a new category.
    """
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        return series.astype(_TEXT_DTYPE)
    if pd.api.types.is_integer_dtype(series.dtype) and not pd.api.types.is_extension_array_dtype(
        series.dtype
    ):
        return series.astype(str).astype(_TEXT_DTYPE)
    values = series.to_numpy(dtype=object)
    out: list[str | None] = []
    for v in values:
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
            out.append(None)
        elif isinstance(v, (float, np.floating)) and float(v).is_integer():
            out.append(str(int(v)))
        else:
            out.append(str(v))
    return pd.Series(out, index=series.index, name=series.name, dtype=object).astype(_TEXT_DTYPE)


def numeric_values(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Values as float64 and a mask of the present values that are not numbers."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return pd.Series(np.nan, index=series.index), series.notna()
    if pd.api.types.is_bool_dtype(series):
        values = series.astype("float64")
    else:
        values = pd.to_numeric(series, errors="coerce").astype("float64")
    return values, values.isna() & series.notna()


def known_columns(cfg: Config) -> list[str]:
    """The columns ingest keeps: id, time, features and the prediction column."""
    cols = [cfg.data.id_column, cfg.data.time_column, *cfg.data.features]
    if cfg.data.prediction_column:
        cols.append(cfg.data.prediction_column)
    return cols


def labels_in_events(cfg: Config) -> list[str]:
    """The label source's label and label-time columns when that source is the events' own
    (labels kept in the events' file): never model inputs, so ingest drops them as it drops
    `data.ignore_columns`, and the label step joins them back by id."""
    if cfg.labels.format != cfg.data.format or _where(cfg.labels.uri) != _where(cfg.data.uri):
        return []
    named = [cfg.labels.label_column, cfg.labels.time_column]
    keep = set(known_columns(cfg))
    return [c for c in named if c is not None and c not in keep]


def _where(uri: str) -> str:
    """A source URI in one spelling: 'file://' and a trailing '/' dropped, local paths normal."""
    bare = uri[len("file://") :] if uri.startswith("file://") else uri
    return bare.rstrip("/") if "://" in bare else os.path.normpath(bare)


def _dropped(cfg: Config) -> set[str]:
    """What ingest drops by config: `data.ignore_columns` and `labels_in_events`."""
    return set(cfg.data.ignore_columns) | set(labels_in_events(cfg))


def ignored_columns(columns: Iterable[Any], cfg: Config) -> list[str]:
    """Of `columns` (a frame's, or a source's names), those ingest drops by config:
    `data.ignore_columns`, the label columns of labels kept in the events' own source, or any
    unexpected column under `data.extra_columns: ignore`."""
    allowed = set(known_columns(cfg))
    ignore = _dropped(cfg)
    return [
        str(c)
        for c in columns
        if c not in allowed and (c in ignore or cfg.data.extra_columns == "ignore")
    ]


def _unexpected(columns: Iterable[Any], cfg: Config) -> list[str]:
    """Of `columns`, those the checks refuse: not known, not ignored (none under `ignore`)."""
    if cfg.data.extra_columns == "ignore":
        return []
    allowed = set(known_columns(cfg)) | _dropped(cfg)
    return [str(c) for c in columns if c not in allowed]


def _missing(columns: Iterable[Any], cfg: Config) -> list[str]:
    """The id, time and feature columns not among `columns`."""
    have = set(columns)
    required = [cfg.data.id_column, cfg.data.time_column, *cfg.data.features]
    return [c for c in required if c not in have]


def _names(columns: Sequence[str]) -> str:
    return ", ".join(repr(c) for c in columns)


def _extra_message(extra: Sequence[str], where: str = "") -> str:
    # Declaring such a column a feature would train on it: a logged score of the old model
    # would leak into the new one. Ignoring it is what is almost always meant.
    return (
        f"unexpected columns: {_names(extra)}{where} (not the id, time, a configured feature "
        f"or the prediction column); if they are not model inputs, list them in "
        f"data.ignore_columns (e.g. ignore_columns: {list(extra)!r}) or set "
        "data.extra_columns: ignore; add them to data.features only if the model should "
        "learn from them"
    )


def _extra_columns(columns: Iterable[Any], cfg: Config) -> list[str]:
    extra = _unexpected(columns, cfg)
    return [_extra_message(extra)] if extra else []


_FILES_NAMED = 3  # files a problem names before it counts the rest


def _in_files(uris: Sequence[str]) -> str:
    listed = ", ".join(uris[:_FILES_NAMED])
    more = len(uris) - _FILES_NAMED
    return f" in {'file' if len(uris) == 1 else 'files'} {listed}" + (
        f" and {more} more" if more > 0 else ""
    )


def _file_problems(files: Mapping[str, Sequence[str]], cfg: Config) -> tuple[list[str], set[str]]:
    """Missing and unexpected columns of the files holding the window's rows, each problem
    naming its files; and the columns some of those files lack."""
    missing: dict[tuple[str, ...], list[str]] = {}
    extra: dict[tuple[str, ...], list[str]] = {}
    renamed: set[str] = set()  # files missing columns and carrying unexpected ones
    for uri, columns in files.items():
        lacks, carries = tuple(_missing(columns, cfg)), tuple(_unexpected(columns, cfg))
        if lacks:
            missing.setdefault(lacks, []).append(uri)
        if carries:
            extra.setdefault(carries, []).append(uri)
        if lacks and carries:
            renamed.add(uri)
    problems = []
    for lacks, uris in missing.items():
        line = f"missing columns: {_names(lacks)}{_in_files(uris)}"
        if any(uri in renamed for uri in uris):
            line += (
                " (with unexpected columns instead: if a column was renamed there, rewrite the"
                " file with the configured names or move it out of the source)"
            )
        problems.append(line)
    problems += [_extra_message(carries, _in_files(uris)) for carries, uris in extra.items()]
    return problems, {c for lacks in missing for c in lacks}


def _structure_problems(df: pd.DataFrame, cfg: Config) -> list[str]:
    """Missing columns and numeric columns holding non-numbers."""
    missing = _missing(df.columns, cfg)
    problems = [f"missing columns: {_names(missing)}"] if missing else []
    return problems + _value_problems(df, cfg)


def _value_problems(df: pd.DataFrame, cfg: Config) -> list[str]:
    """Numeric columns holding non-numbers, texts over the size limit."""
    problems = []
    for name in cfg.numeric_features:
        if name not in df.columns:
            continue
        _, bad = numeric_values(df[name])
        present = int(df[name].notna().sum())
        # A few non-numbers are broken rows (quarantined); mostly text is a changed column.
        if bad.any() and int(bad.sum()) * 2 > present:
            problems.append(
                f"column {name!r} is numeric but has {int(bad.sum())} values that are not "
                f"numbers (dtype {df[name].dtype}), e.g. {_examples(df[name][bad])}"
            )
    for name in cfg.text_features:
        # Parquet sources are not scanned value by value before loading: a text past the
        # limit is refused here, before it reaches a vectoriser or a drift profile.
        longest = longest_text_bytes(df[name]) if name in df.columns else 0
        if longest > cfg.data.limits.max_value_bytes:
            problems.append(
                f"text column {name!r} holds a value of {longest:,} bytes, over the limit "
                f"data.limits.max_value_bytes = {cfg.data.limits.max_value_bytes:,} (raise it "
                "if such texts are genuine)"
            )
    return problems


def _volume_problems(df: pd.DataFrame, cfg: Config) -> list[str]:
    """Row count, null rates, ids and event times: checks that need no reference."""
    problems = []
    rows = len(df)
    if rows < cfg.data.min_rows:
        problems.append(f"window has {rows} rows; data.min_rows is {cfg.data.min_rows}")
    if rows == 0:
        return problems
    for name in cfg.data.features:
        if name not in df.columns:
            continue
        rate = float(df[name].isna().mean())
        if rate > cfg.data.max_null_rate:
            problems.append(
                f"column {name!r} is {rate:.1%} null; data.max_null_rate is "
                f"{cfg.data.max_null_rate:.1%}"
            )
    id_col = cfg.data.id_column
    if id_col in df.columns:
        ids = df[id_col]
        dup = ids.dropna().duplicated()
        if dup.any():
            problems.append(
                f"{int(dup.sum())} duplicate ids in column {id_col!r}, e.g. "
                f"{_examples(ids.dropna()[dup])}"
            )
    time_col = cfg.data.time_column
    if time_col in df.columns:
        try:
            times = event_times(df[time_col], cfg.data.time_kind)
        except ValidationError as err:
            problems.append(str(err))
        else:
            nulls = int(times.isna().sum())
            if nulls:
                problems.append(f"{nulls} rows have no event time (column {time_col!r})")
    return problems


def _reference_problems(df: pd.DataFrame, schema: Schema, cfg: Config) -> list[str]:
    """Config/schema agreement, unseen categories and out-of-range values."""
    problems = []
    for name, kind in cfg.data.features.items():
        ref = schema.columns.get(name)
        if ref is None:
            problems.append(
                f"feature {name!r} is configured but not in the reference schema "
                f"(fingerprint {schema.fingerprint()[:12]}); re-infer the schema"
            )
        elif ref.kind != kind:
            problems.append(
                f"feature {name!r} is {kind} in the config but {ref.kind} in the reference schema"
            )
    for name in schema.columns:
        if name not in cfg.data.features:
            problems.append(f"reference schema column {name!r} is no longer a configured feature")
    if cfg.data.id_column != schema.id_column or cfg.data.time_column != schema.time_column:
        problems.append(
            f"id/time columns are {cfg.data.id_column!r}/{cfg.data.time_column!r} in the config "
            f"but {schema.id_column!r}/{schema.time_column!r} in the reference schema"
        )
    return problems


def infer_schema(df: pd.DataFrame, cfg: Config) -> Schema:
    """The reference schema of `df` (the first window of a use case).

    Raises:
        ValidationError: required columns are missing or numeric features hold non-numbers.
    """
    problems = _structure_problems(df, cfg)
    if problems:
        raise ValidationError("cannot infer a schema from this data", problems)
    rows = len(df)
    columns: dict[str, ColumnSchema] = {}
    for name, kind in cfg.data.features.items():
        s = df[name]
        null_rate = float(s.isna().mean()) if rows else 0.0
        if kind == "numeric":
            values, _ = numeric_values(s)
            present = values.dropna()
            columns[name] = ColumnSchema(
                kind="numeric",
                dtype=str(s.dtype),
                null_rate=null_rate,
                min=json_value(present.min()) if len(present) else None,
                max=json_value(present.max()) if len(present) else None,
            )
        elif kind == "identifier":
            # No value list: it would grow with every user; new ids are normal, not errors.
            columns[name] = ColumnSchema(kind="identifier", dtype=str(s.dtype), null_rate=null_rate)
        elif kind == "text":
            # Free text has no category set to keep: its vocabulary lives in the drift profile.
            columns[name] = ColumnSchema(kind="text", dtype=str(s.dtype), null_rate=null_rate)
        else:
            cats = sorted(set(as_category_strings(s).dropna()))
            columns[name] = ColumnSchema(
                kind="categorical", dtype=str(s.dtype), null_rate=null_rate, categories=cats
            )
    return Schema(
        id_column=cfg.data.id_column,
        time_column=cfg.data.time_column,
        columns=columns,
        prediction_column=cfg.data.prediction_column,
    )


def check_window(
    df: pd.DataFrame,
    schema: Schema | None,
    cfg: Config,
    *,
    columns: Iterable[Any] | None = None,
    files: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Every problem of a window's rows, in words; an empty list means the window is fine.

    With `schema` None only the checks that need no reference run (columns, types, volume,
    nulls, ids, event times): that is how a first window is vetted before its schema is taken.
    `columns` names every column of the source when `df` holds only those ingest reads (the
    others are checked by name only); default `df`'s. `files` maps each file holding the
    window's rows to its columns, where the source's files differ: then each file is checked
    by name instead (a problem names its files), and a column some of them lack is not
    judged on its values (its nulls are that file's rows).
    """
    if files is None:
        named = df.columns if columns is None else columns
        problems = _structure_problems(df, cfg) + _extra_columns(named, cfg)
    else:
        problems, lacking = _file_problems(files, cfg)
        df = df[[c for c in df.columns if c not in lacking]]
        problems += _value_problems(df, cfg)
    problems += _volume_problems(df, cfg)
    if schema is not None:
        problems += _reference_problems(df, schema, cfg)
    return problems
