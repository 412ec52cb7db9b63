"""One window of a Parquet source, read from the row groups that overlap it
(`retrain.data.source.read_window`).

The files are opened as dataset fragments: a fragment's footer holds its schema and its row
groups' time statistics, so a filter on the time column skips the row groups outside the
window before any data page is read, and only the asked-for columns are decoded. Files of one
schema are read as one dataset. Files whose schemas differ (a column renamed in an old file,
an extra column in one, another type) are read one by one, each with its own schema and
filter, and their frames concatenated as `retrain.data.io.read_files` concatenates whole files;
the facts then name the columns of each file that holds rows of the window, so the window is
judged on its own files (`retrain.data._facts.SourceFacts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from retrain.config import DataSource
from retrain.data._facts import SourceFacts, window_files
from retrain.data.footers import column_position
from retrain.data.io import SourceFile
from retrain.data.windows import Window
from retrain.errors import ValidationError

__all__ = [
    "ParquetSource",
    "data_columns",
    "empty_window",
    "make_fragment",
    "one_schema",
    "open_parquet",
    "parquet_facts",
    "read_parquet_window",
    "same_time_column",
    "time_column_fits",
    "unreadable",
    "windowable",
]

_EXAMPLES = 3  # unreadable times a warning names (`retrain.data.windows._examples`)


@dataclass(frozen=True)
class ParquetSource:
    """A Parquet source's files as fragments (footers read), and as one dataset where they
    share one schema (`dataset` None where they do not)."""

    files: list[SourceFile]
    fragments: list[ds.ParquetFileFragment]
    dataset: ds.FileSystemDataset | None

    def schemas(self) -> list[pa.Schema]:
        """Each file's schema (from the footers already read)."""
        return [fragment.physical_schema for fragment in self.fragments]


def make_fragment(fmt: ds.ParquetFileFormat, f: SourceFile) -> ds.ParquetFileFragment:
    """The file as a fragment (its footer not read yet)."""
    try:
        if f.path is not None:
            return fmt.make_fragment(str(f.path), filesystem=pafs.LocalFileSystem())
        # a GCS object, read by byte range through the storage client
        return fmt.make_fragment(pa.PythonFile(f.open(), mode="r"))
    except (pa.ArrowException, OSError) as err:
        raise ValidationError(f"{f.uri} is not a readable parquet file: {err}") from None


def unreadable(err: Exception) -> ValidationError:
    return ValidationError(f"a file of the source is not readable parquet: {err}")


def one_schema(schemas: list[pa.Schema]) -> bool:
    # read_source concatenates frames file by file: a dataset of differing schemas would
    # unify types differently, so those sources are read file by file.
    return all(s.equals(schemas[0], check_metadata=False) for s in schemas[1:])


def open_parquet(files: list[SourceFile]) -> ParquetSource:
    """The files' fragments with their footers read; one dataset where they share one schema.

    Raises:
        ValidationError: a file is not readable Parquet.
    """
    fmt = ds.ParquetFileFormat()
    fragments = [make_fragment(fmt, f) for f in files]
    try:
        schemas = [frag.physical_schema for frag in fragments]
    except (pa.ArrowException, OSError) as err:
        raise unreadable(err) from None
    dataset = ds.FileSystemDataset(fragments, schemas[0], fmt) if one_schema(schemas) else None
    return ParquetSource(files, fragments, dataset)


def _time_type_fits(field_type: pa.DataType, time_kind: str) -> bool:
    """Whether Arrow compares this time column as `event_times` would (no text parsing)."""
    if time_kind == "period":
        return bool(pa.types.is_integer(field_type) or pa.types.is_floating(field_type))
    return bool(pa.types.is_timestamp(field_type))


def _bound(value: Any, field_type: pa.DataType) -> pa.Scalar:
    """A window bound as a scalar of the column's type (rounded up: bounds are ``>=`` / ``<``)."""
    if isinstance(value, pd.Timestamp):
        per_ns = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[field_type.unit]
        return pa.scalar(-(-value.value // per_ns), type=field_type)
    if pa.types.is_floating(field_type):
        return pa.scalar(float(value), type=field_type)
    return pa.scalar(int(value), type=pa.int64())


def _window_filter(window: Window, column: str, field_type: pa.DataType) -> pc.Expression:
    field = pc.field(column)
    start, end = _bound(window.start, field_type), _bound(window.end, field_type)
    return (field >= start) & (field < end)


def time_column_fits(schema: pa.Schema, data: DataSource) -> bool:
    """Whether the source has a time column that its statistics and filters can compare."""
    column = data.time_column
    return column in schema.names and _time_type_fits(schema.field(column).type, data.time_kind)


def same_time_column(schemas: list[pa.Schema], data: DataSource) -> bool:
    """Whether every file has a time column of one type that statistics and filters can
    compare, whatever its other columns (else its times are parsed as `event_times` does)."""
    if not all(time_column_fits(schema, data) for schema in schemas):
        return False
    types = [schema.field(data.time_column).type for schema in schemas]
    return all(t.equals(types[0]) for t in types[1:])


def windowable(source: ParquetSource, data: DataSource) -> bool:
    """Whether a window of the source can be read by filters (`same_time_column`), rather than
    from its files read whole."""
    return same_time_column(source.schemas(), data)


def data_columns(schema: pa.Schema) -> list[str]:
    """Every column a frame of the file would have (pandas' stored index is not one)."""
    stored = (schema.pandas_metadata or {}).get("index_columns") or []
    index = {c for c in stored if isinstance(c, str)}  # a RangeIndex is a dict: not stored
    return [n for n in schema.names if n not in index]


def _wanted(name: str, columns: Sequence[str] | None, data: DataSource) -> bool:
    return columns is None or name == data.time_column or name in columns


def _source_columns(source: ParquetSource) -> tuple[str, ...]:
    """Every column of the source: each file's, in order of first appearance."""
    return tuple(dict.fromkeys(c for s in source.schemas() for c in data_columns(s)))


def empty_window(
    source: ParquetSource, data: DataSource, columns: Sequence[str] | None
) -> pd.DataFrame:
    """No rows, with the columns a read of the first file would have."""
    schema = source.dataset.schema if source.dataset is not None else source.schemas()[0]
    empty: pd.DataFrame = schema.empty_table().to_pandas()
    return empty[[c for c in data_columns(schema) if _wanted(c, columns, data)]]


def read_parquet_window(
    source: ParquetSource, data: DataSource, window: Window, columns: Sequence[str] | None
) -> tuple[pd.DataFrame, SourceFacts]:
    """The rows of `window` (the row groups that overlap it) with `columns` only (None: every
    column; the time column is always read), and facts about the files. `source` must be
    `windowable`."""
    column = data.time_column
    if source.dataset is not None:
        schema = source.dataset.schema
        table = source.dataset.to_table(
            columns=[c for c in data_columns(schema) if _wanted(c, columns, data)],
            filter=_window_filter(window, column, schema.field(column).type),
        )
        return table.to_pandas(), parquet_facts(source, column)
    frames: dict[str, pd.DataFrame] = {}
    names: dict[str, list[str]] = {}
    for f, fragment in zip(source.files, source.fragments, strict=True):
        schema = fragment.physical_schema
        names[f.uri] = data_columns(schema)
        try:
            table = fragment.to_table(
                schema=schema,
                columns=[c for c in names[f.uri] if _wanted(c, columns, data)],
                filter=_window_filter(window, column, schema.field(column).type),
            )
        except (pa.ArrowException, OSError) as err:
            raise ValidationError(f"{f.uri} is not a readable parquet file: {err}") from None
        if table.num_rows:
            frames[f.uri] = table.to_pandas()
    if frames:
        parts = list(frames.values())
        frame = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    else:
        frame = empty_window(source, data, columns)
    return frame, parquet_facts(source, column, window_files(names, frames))


def parquet_facts(
    source: ParquetSource, column: str, files: dict[str, tuple[str, ...]] | None = None
) -> SourceFacts:
    """Rows, missing and unreadable times and the time range of a source, from row-group
    statistics; with `files`, the columns of those holding rows of the window
    (`SourceFacts.window_files`).

    An integer or timestamp time column is counted from the statistics; a row group without
    them is read (its time column only) instead. A float time column is read (that column
    only, in batches): Parquet statistics count nulls but not NaN, which a whole read holds as
    missing times, and leave NaN out of min and max, so no footer tells whether a row group
    holds one. Its inf and -inf are unreadable times (as `retrain.data.windows.event_times`
    reads them), counted and named, not a range.
    """
    times = _Times()
    for fragment in source.fragments:
        if pa.types.is_floating(fragment.physical_schema.field(column).type):
            for batch in fragment.to_batches(columns=[column]):
                times.rows += batch.num_rows
                times.add(batch.column(0))
            continue
        meta = fragment.metadata
        position = column_position(meta, column)
        for i in range(meta.num_row_groups):
            group = meta.row_group(i)
            times.rows += group.num_rows
            stats = group.column(position).statistics
            if stats is not None and stats.has_null_count and stats.has_min_max:
                times.no_time += stats.null_count
                times.lows.append(stats.min)
                times.highs.append(stats.max)
            elif stats is not None and stats.has_null_count and stats.null_count == group.num_rows:
                times.no_time += group.num_rows  # no time at all: no range either
            else:
                times.add(fragment.subset(row_group_ids=[i]).to_table(columns=[column])[column])
    return SourceFacts(
        rows=times.rows,
        no_time=times.no_time,
        time_min=min(times.lows) if times.lows else None,
        time_max=max(times.highs) if times.highs else None,
        columns=_source_columns(source),
        unreadable=times.unreadable,
        unreadable_examples=tuple(times.examples),
        window_files=files,
    )


@dataclass
class _Times:
    """What `parquet_facts` counts, row group by row group."""

    rows: int = 0
    no_time: int = 0
    lows: list[Any] = field(default_factory=list)
    highs: list[Any] = field(default_factory=list)
    unreadable: int = 0
    examples: list[Any] = field(default_factory=list)

    def add(self, times: pa.Array | pa.ChunkedArray) -> None:
        """Times of the column, read (a row group's, or a batch of a file's)."""
        self.no_time += times.null_count
        if pa.types.is_floating(times.type):
            finite = int(pc.sum(pc.is_finite(times)).as_py() or 0)  # nulls are not counted
            if finite < len(times) - times.null_count:
                times = self._drop_not_finite(times)
        if times.null_count < len(times):
            extremes = pc.min_max(times)
            self.lows.append(extremes["min"].as_py())
            self.highs.append(extremes["max"].as_py())

    def _drop_not_finite(self, times: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        """`times` without NaN (no time: a whole read holds them as pandas' missing value) and
        inf or -inf (unreadable, counted and named), as `event_times` reads them."""
        nan = pc.fill_null(pc.is_nan(times), False)
        self.no_time += int(pc.sum(nan).as_py() or 0)
        infinite = pc.fill_null(pc.is_inf(times), False)
        count = int(pc.sum(infinite).as_py() or 0)
        if count:
            self.unreadable += count
            for value in pd.unique(pc.filter(times, infinite).to_numpy()):
                if len(self.examples) < _EXAMPLES and value not in self.examples:
                    self.examples.append(float(value))
        return pc.filter(times, pc.invert(pc.or_(nan, infinite)))
