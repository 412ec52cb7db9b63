"""Reading one window, or one column, of an event source without reading the whole source.

`read_source` parses every file to cut one window; its cost grows with all the history kept in
the source. Here a Parquet source is a `pyarrow.dataset` over its files (local, or ``gs://``
objects read by byte range), so

- `read_window` reads only the row groups whose time statistics overlap the window (the filter
  on the time column prunes the others before any data is read) and the file footers;
- `read_times` reads only the time column;
- `window_counts` counts the events per grid window (all the ``resolve`` step needs) from the
  row groups' time statistics where a row group lies within one window, and reads the time
  column of the other row groups only; the footers the input-limit check read are not read
  again (`retrain.data.footers`);
- `source_facts` takes the row count, the missing times and the time range from the footers'
  statistics alone.

The rows and columns are the same as `read_source` would give, in the same order and with the
same dtypes (a test holds every dataset hash equal), so the pruning is an optimisation only.
A CSV source is streamed by `read_window` (`retrain.data._csv_window`). What the fast path
cannot read exactly (a Parquet time column stored as text, files whose schemas differ) falls
back to `read_source`, so every source that worked keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from retrain.config import DataSource
from retrain.data._counts import WindowCounts, count_row_groups
from retrain.data._csv_window import read_csv_window
from retrain.data.footers import (
    FileStamp,
    Footer,
    ParquetFooters,
    column_position,
    file_stamp,
)
from retrain.data.io import SourceFile, read_files, read_source, source_files
from retrain.data.partitions import prune_partitions
from retrain.data.windows import Window
from retrain.errors import ValidationError

__all__ = [
    "SourceFacts",
    "WindowCounts",
    "read_head",
    "read_matching",
    "read_times",
    "read_window",
    "source_facts",
    "window_counts",
]


@dataclass(frozen=True)
class SourceFacts:
    """What ingest reports about the whole source: from Parquet footers, or counted as a CSV
    source streams past.

    ``time_min`` / ``time_max`` are the extreme event times (None when no row has one);
    ``columns`` names every column of the source (also those not read); ``unreadable`` counts
    the times that are not of the time kind, with a few of them as examples.
    """

    rows: int
    no_time: int
    time_min: Any
    time_max: Any
    columns: tuple[str, ...] | None = None
    unreadable: int = 0
    unreadable_examples: tuple[Any, ...] = ()


@dataclass(frozen=True)
class _Parquet:
    """A Parquet source opened as a dataset, with the files' footers."""

    dataset: ds.FileSystemDataset
    fragments: list[ds.ParquetFileFragment]


def _fragment(fmt: ds.ParquetFileFormat, f: SourceFile) -> ds.ParquetFileFragment:
    """The file as a fragment (its footer not read yet)."""
    try:
        if f.path is not None:
            return fmt.make_fragment(str(f.path), filesystem=pafs.LocalFileSystem())
        # a GCS object, read by byte range through the storage client
        return fmt.make_fragment(pa.PythonFile(f.open(), mode="r"))
    except (pa.ArrowException, OSError) as err:
        raise ValidationError(f"{f.uri} is not a readable parquet file: {err}") from None


def _unreadable(err: Exception) -> ValidationError:
    return ValidationError(f"a file of the source is not readable parquet: {err}")


def _one_schema(schemas: list[pa.Schema]) -> bool:
    # read_source concatenates frames file by file: a dataset of differing schemas would
    # unify types differently, so those sources take the exact path.
    return all(s.equals(schemas[0], check_metadata=False) for s in schemas[1:])


def _open_parquet(files: list[SourceFile]) -> _Parquet | None:
    """The source as one dataset, or None when its files do not share one schema."""
    fmt = ds.ParquetFileFormat()
    fragments = [_fragment(fmt, f) for f in files]
    try:
        schemas = [frag.physical_schema for frag in fragments]
    except (pa.ArrowException, OSError) as err:
        raise _unreadable(err) from None
    if not _one_schema(schemas):
        return None
    return _Parquet(ds.FileSystemDataset(fragments, schemas[0], fmt), fragments)


def _stamp(f: SourceFile) -> FileStamp | None:
    """A local file's identity (None for a GCS object, or a file gone: its read says so)."""
    if f.path is None:
        return None
    try:
        return file_stamp(f.path.stat())
    except OSError:
        return None


def _read_footers(files: list[SourceFile], footers: ParquetFooters) -> list[Footer] | None:
    """Every file's footer, from `footers` where read before, else read now (and kept there);
    None when the files do not share one schema. Errors as `_open_parquet`'s."""
    fmt = ds.ParquetFileFormat()
    kept = {f.uri: footers.get(f) for f in files}
    stamps = {f.uri: _stamp(f) for f in files if kept[f.uri] is None}  # before the reads
    fresh = {f.uri: _fragment(fmt, f) for f in files if kept[f.uri] is None}
    read = []
    for f in files:
        known = kept[f.uri]
        if known is None:
            try:
                known = footers.keep(f, Footer.of_fragment(fresh[f.uri], stamps[f.uri]))
            except (pa.ArrowException, OSError) as err:
                raise _unreadable(err) from None
        read.append(known)
    return read if _one_schema([footer.schema for footer in read]) else None


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


def _time_column_fits(schema: pa.Schema, data: DataSource) -> bool:
    """Whether the source has a time column that its statistics and filters can compare."""
    column = data.time_column
    return column in schema.names and _time_type_fits(schema.field(column).type, data.time_kind)


def _fast(files: list[SourceFile], data: DataSource, fmt: str) -> _Parquet | None:
    if fmt != "parquet":
        return None
    source = _open_parquet(files)
    if source is None or not _time_column_fits(source.dataset.schema, data):
        return None
    return source


def _data_columns(schema: pa.Schema) -> list[str]:
    """Every column a frame of the file would have (pandas' stored index is not one)."""
    stored = (schema.pandas_metadata or {}).get("index_columns") or []
    index = {c for c in stored if isinstance(c, str)}  # a RangeIndex is a dict: not stored
    return [n for n in schema.names if n not in index]


def read_window(
    uri: str,
    fmt: str,
    data: DataSource,
    window: Window,
    *,
    columns: Sequence[str] | None = None,
    client: Any | None = None,
) -> tuple[pd.DataFrame, SourceFacts | None]:
    """The source's rows that may fall in `window`, and facts about the whole source.

    On the fast path (Parquet with a typed time column) the frame holds exactly the window's
    rows, read from the overlapping row groups only, and the facts come from the footers. A
    CSV source is streamed file by file in chunks: the frame holds the window's rows, typed
    as a whole read types them (a mixed column aside: `retrain.data._csv_window`), and the
    facts are counted on the way. On the exact path (other Parquet) the frame is the whole
    source, the facts None (ingest counts them from the frame, as it always did). Either way
    `retrain.data.ingest.ingest_window` gives the same result. A source in hive-style
    partitions (`retrain.data.partitions`) is read only from the partitions that overlap the
    window, and its facts describe those.

    With `columns`, only those of them the source has are read (with the time column); the
    facts still name every column (Parquet footer, CSV header), so a check on the other
    columns' names needs none of their values. Without, every column is read.

    Raises:
        ValidationError: as `read_source`.
    """
    every = source_files(uri, fmt, client=client)
    files = prune_partitions(every, data, window).files
    if fmt == "csv":
        # No partition overlapping the window: the window is empty; say what the source holds.
        read = read_csv_window(files or every, data, window, columns)
        facts = SourceFacts(
            rows=read.rows,
            no_time=read.no_time,
            time_min=read.time_min,
            time_max=read.time_max,
            columns=tuple(read.columns),
            unreadable=read.unreadable,
            unreadable_examples=tuple(read.unreadable_examples),
        )
        return read.frame, facts
    if not files:  # no partition overlaps the window: it is empty, say what the source holds
        whole = _fast(every, data, fmt)
        if whole is None:
            return read_files(every, fmt), None
        empty = whole.dataset.schema.empty_table().to_pandas()
        names = _data_columns(whole.dataset.schema)
        empty = empty[[c for c in names if _wanted(c, columns, data)]]
        return empty, _facts(whole, data.time_column)
    source = _fast(files, data, fmt)
    if source is None:
        return read_files(files, fmt), None
    column = data.time_column
    field_type = source.dataset.schema.field(column).type
    names = _data_columns(source.dataset.schema)
    table = source.dataset.to_table(
        columns=[c for c in names if _wanted(c, columns, data)],
        filter=_window_filter(window, column, field_type),
    )
    return table.to_pandas(), _facts(source, column)


def _wanted(name: str, columns: Sequence[str] | None, data: DataSource) -> bool:
    return columns is None or name == data.time_column or name in columns


def _facts(source: _Parquet, column: str) -> SourceFacts:
    """Rows, missing times and the time range of a source, from row-group statistics.

    A row group without statistics is read (its time column only) instead.
    """
    rows = no_time = 0
    lows: list[Any] = []
    highs: list[Any] = []
    # _open_parquet holds every file to one schema: the first file's footer answers for all.
    position = column_position(source.fragments[0].metadata, column)
    for fragment in source.fragments:
        meta = fragment.metadata
        for i in range(meta.num_row_groups):
            group = meta.row_group(i)
            rows += group.num_rows
            stats = group.column(position).statistics
            if stats is not None and stats.has_null_count and stats.has_min_max:
                no_time += stats.null_count
                lows.append(stats.min)
                highs.append(stats.max)
            elif stats is not None and stats.has_null_count and stats.null_count == group.num_rows:
                no_time += group.num_rows  # no time at all: no range either
            else:
                times = fragment.subset(row_group_ids=[i]).to_table(columns=[column])[column]
                no_time += times.null_count
                if times.null_count < len(times):
                    extremes = pc.min_max(times)
                    lows.append(extremes["min"].as_py())
                    highs.append(extremes["max"].as_py())
    return SourceFacts(
        rows=rows,
        no_time=no_time,
        time_min=min(lows) if lows else None,
        time_max=max(highs) if highs else None,
        columns=tuple(_data_columns(source.dataset.schema)),
    )


def source_facts(
    uri: str, fmt: str, data: DataSource, *, client: Any | None = None
) -> SourceFacts | None:
    """`SourceFacts` from the footers alone, or None when the source has no fast path."""
    source = _fast(source_files(uri, fmt, client=client), data, fmt)
    return None if source is None else _facts(source, data.time_column)


def read_times(uri: str, fmt: str, column: str, *, client: Any | None = None) -> pd.Series:
    """Only the time column of the whole source, as `read_source(...)[column]` would give it.

    Raises:
        ValidationError: the source has no such column, or as `read_source`.
    """
    return _time_column(uri, fmt, source_files(uri, fmt, client=client), column)


def _time_column(uri: str, fmt: str, files: list[SourceFile], column: str) -> pd.Series:
    if fmt == "parquet":
        source = _open_parquet(files)
        if source is not None:
            if column not in source.dataset.schema.names:
                raise ValidationError(f"data source {uri} has no time column {column!r}")
            table = source.dataset.to_table(columns=[column])
            series: pd.Series = table.to_pandas()[column]
            return series
    return _whole_time_column(uri, fmt, files, column)


def _whole_time_column(uri: str, fmt: str, files: list[SourceFile], column: str) -> pd.Series:
    """The time column, every file read whole (CSV: column-wise), as `read_source` reads it."""
    frame = _read_columns(fmt, files, [column])
    if column not in frame.columns:
        raise ValidationError(f"data source {uri} has no time column {column!r}")
    return frame[column]


def _read_columns(fmt: str, files: list[SourceFile], columns: Sequence[str]) -> pd.DataFrame:
    """The named columns of every file (CSV parsed column-wise; other formats in full)."""
    if fmt != "csv":
        return read_files(files, fmt)
    wanted = set(columns)
    frames = []
    for f in files:
        try:
            with f.open() as handle:  # parsed as it streams: the file's bytes are never held
                frames.append(pd.read_csv(handle, usecols=lambda c: c in wanted))
        except (ValueError, UnicodeDecodeError) as err:
            raise ValidationError(f"{f.uri} is not a readable csv file: {err}") from None
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def window_counts(
    uri: str,
    fmt: str,
    data: DataSource,
    *,
    only: Window | None = None,
    client: Any | None = None,
    footers: ParquetFooters | None = None,
) -> WindowCounts:
    """Events per grid window of the source, reading as little as its format allows.

    Parquet with a typed time column: the footers' statistics, plus the time column of the
    row groups that span several windows. Otherwise the time column (`read_times`). With
    `only`, files in hive-style partitions that do not overlap it are not opened
    (`retrain.data.partitions`), so only that window's count is complete. With `footers`,
    the footers read before (by `retrain.data.limits.check_source`, or an earlier count) are
    not read again, and those read here are kept in it.

    Raises:
        ValidationError: the source has no such column, or as `read_source`.
    """
    every = source_files(uri, fmt, client=client)
    pruned = prune_partitions(every, data, only) if only is not None else None
    files = pruned.files if pruned is not None else every
    if not files:
        empty = pd.Series([], dtype=object, name=data.time_column)
        return WindowCounts.of_times(data, empty, {"files": 0, "partitions_skipped": len(every)})
    skipped = {"partitions_skipped": pruned.skipped} if pruned is not None else {}
    column = data.time_column
    if fmt != "parquet":
        times = _time_column(uri, fmt, files, column)
    else:
        opened = _read_footers(files, footers if footers is not None else ParquetFooters())
        if opened is None:  # files of differing schemas: read whole, as read_source reads them
            times = _whole_time_column(uri, fmt, files, column)
        elif _time_column_fits(opened[0].schema, data):
            counts = count_row_groups(opened, data)
            return replace(counts, read={**counts.read, **skipped})
        else:  # a time column the statistics cannot place (text): the column is read
            times = _footer_times(uri, opened, column)
    read = {"files": len(files), "time_column": "every file read", **skipped}
    return WindowCounts.of_times(data, times, read)


def _footer_times(uri: str, opened: list[Footer], column: str) -> pd.Series:
    """The time column of files of one schema, as `_time_column` reads it (the files' rows
    in order), without reading their footers again."""
    if column not in opened[0].schema.names:
        raise ValidationError(f"data source {uri} has no time column {column!r}")
    table = pa.concat_tables([footer.read([column]) for footer in opened])
    series: pd.Series = table.to_pandas()[column]
    return series


def _comparable(left: pa.DataType, right: pa.DataType) -> bool:
    """Whether equal values of these types are equal keys in the label join (text or ints)."""
    texts = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
    if any(t(left) for t in texts) and any(t(right) for t in texts):
        return True
    return bool(pa.types.is_integer(left) and pa.types.is_integer(right))


def read_matching(
    uri: str,
    fmt: str,
    key: str,
    values: pd.Series,
    columns: Sequence[str],
    *,
    client: Any | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rows of the source whose `key` is one of `values`, in source order, with `columns`
    only; and what was read.

    On Parquet the key filter and the projection are pushed into the scan (row groups whose
    key statistics miss every value are skipped; only the named columns are decoded), so the
    read holds the matching rows, not the source. Where that could change a result, the whole
    source is read instead (``read["filtered"]`` is False): CSV, files of differing schemas, a
    missing column (so the error can list what the source has), or key types that compare
    differently from the values' (text ids against integer ones).

    Raises:
        ValidationError: as `read_source`.
    """
    files = source_files(uri, fmt, client=client)
    source = _open_parquet(files) if fmt == "parquet" else None
    schema = source.dataset.schema if source is not None else None
    wanted = list(dict.fromkeys([key, *columns]))
    if source is None or schema is None or any(c not in schema.names for c in wanted):
        return read_source(uri, fmt, client=client), {"files": len(files), "filtered": False}
    field_type = schema.field(key).type
    try:
        keys = pa.array(values.dropna().unique())  # mixed ids (5 and "5") have no one type
        if not _comparable(keys.type, field_type):
            raise pa.ArrowTypeError(f"{keys.type} keys against {field_type}")
        keys = keys.cast(field_type)  # an id out of the column's range cannot match: refused
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return read_source(uri, fmt, client=client), {"files": len(files), "filtered": False}
    field = pc.field(key)
    matching = field.isin(keys)
    if len(keys):
        # The range lets row-group statistics skip whole groups: Arrow 26 prunes by a range
        # on large strings (pandas' text), not by `isin` alone.
        low, high = pc.min_max(keys).values()
        matching = (field >= low) & (field <= high) & matching
    table = source.dataset.to_table(
        columns=[c for c in schema.names if c in wanted], filter=matching
    )
    return table.to_pandas(), {"files": len(files), "filtered": True, "rows": table.num_rows}


def read_head(
    uri: str, fmt: str, columns: Sequence[str], rows: int = 5, *, client: Any | None = None
) -> pd.DataFrame:
    """The first `rows` rows of the source, with those of `columns` it has (for a hint: a
    Parquet source reads only the first row groups it needs; any other, its files in order up
    to the one that completes `rows`)."""
    files = source_files(uri, fmt, client=client)
    source = _open_parquet(files) if fmt == "parquet" else None
    if source is None:
        frames: list[pd.DataFrame] = []
        for f in files:
            frames.append(read_files([f], fmt))
            if sum(map(len, frames)) >= rows:
                break
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return frame[[c for c in columns if c in frame.columns]].head(rows)
    names = [c for c in columns if c in source.dataset.schema.names]
    head: pd.DataFrame = source.dataset.head(rows, columns=names).to_pandas()
    return head
