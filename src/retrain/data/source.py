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
  statistics alone (a float time column is read, that column only: statistics do not count
  its NaN values, which are missing times).

The rows and columns are the same as `read_source` would give, in the same order and with the
same dtypes (a test holds every dataset hash equal), so the pruning is an optimisation only.
A CSV source is streamed by `read_window` (`retrain.data._csv_window`); Parquet files whose
schemas differ are read by it file by file, each pruned alike (`retrain.data._parquet_window`).
What the fast path cannot read exactly (a Parquet time column stored as text or typed
differently from file to file; for the other reads, files whose schemas differ) falls back to
`read_source`, so every source that worked keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from retrain.config import DataSource
from retrain.data._counts import WindowCounts, count_row_groups
from retrain.data._csv_window import read_csv_window
from retrain.data._facts import SourceFacts
from retrain.data._parquet_window import (
    empty_window,
    make_fragment,
    one_schema,
    open_parquet,
    parquet_facts,
    read_parquet_window,
    same_time_column,
    unreadable,
    windowable,
)
from retrain.data.footers import (
    FileStamp,
    Footer,
    ParquetFooters,
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


def _stamp(f: SourceFile) -> FileStamp | None:
    """A local file's identity (None for a GCS object, or a file gone: its read says so)."""
    if f.path is None:
        return None
    try:
        return file_stamp(f.path.stat())
    except OSError:
        return None


def _read_footers(files: list[SourceFile], footers: ParquetFooters) -> list[Footer]:
    """Every file's footer, from `footers` where read before, else read now (and kept there).
    Errors as `open_parquet`'s."""
    fmt = ds.ParquetFileFormat()
    kept = {f.uri: footers.get(f) for f in files}
    stamps = {f.uri: _stamp(f) for f in files if kept[f.uri] is None}  # before the reads
    fresh = {f.uri: make_fragment(fmt, f) for f in files if kept[f.uri] is None}
    read = []
    for f in files:
        known = kept[f.uri]
        if known is None:
            try:
                known = footers.keep(f, Footer.of_fragment(fresh[f.uri], stamps[f.uri]))
            except (pa.ArrowException, OSError) as err:
                raise unreadable(err) from None
        read.append(known)
    return read


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
    rows, read from the overlapping row groups only (file by file where the files' schemas
    differ), and the facts are `source_facts`. A CSV source is streamed file by file in
    chunks: the frame holds the window's rows, typed as a whole read types them (a mixed
    column aside: `retrain.data._csv_window`), and the facts are counted on the way. On the
    exact path (other Parquet) the frame is the whole source, the facts None (ingest counts
    them from the frame, as it always did). Either way `retrain.data.ingest.ingest_window`
    gives the same result for a source whose files have the same columns; where they differ,
    the facts name the columns of each file holding rows of the window
    (`SourceFacts.window_files`), so ingest judges the window on its own files. A source in
    hive-style partitions (`retrain.data.partitions`) is read only from the partitions that
    overlap the window, and its facts describe those.

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
            window_files=read.window_files,
        )
        return read.frame, facts
    if not files:  # no partition overlaps the window: it is empty, say what the source holds
        whole = open_parquet(every)
        if not windowable(whole, data):
            return read_files(every, fmt), None
        return empty_window(whole, data, columns), parquet_facts(whole, data.time_column)
    source = open_parquet(files)
    if not windowable(source, data):
        return read_files(files, fmt), None
    return read_parquet_window(source, data, window, columns)


def source_facts(
    uri: str, fmt: str, data: DataSource, *, client: Any | None = None
) -> SourceFacts | None:
    """`SourceFacts` from the footers alone (a float time column read too: its NaN values are
    missing times no statistic counts), or None when the source has no fast path."""
    files = source_files(uri, fmt, client=client)
    if fmt != "parquet":
        return None
    source = open_parquet(files)
    return parquet_facts(source, data.time_column) if windowable(source, data) else None


def read_times(uri: str, fmt: str, column: str, *, client: Any | None = None) -> pd.Series:
    """Only the time column of the whole source, as `read_source(...)[column]` would give it.

    Raises:
        ValidationError: the source has no such column, or as `read_source`.
    """
    return _time_column(uri, fmt, source_files(uri, fmt, client=client), column)


def _time_column(uri: str, fmt: str, files: list[SourceFile], column: str) -> pd.Series:
    if fmt == "parquet":
        dataset = open_parquet(files).dataset
        if dataset is not None:
            if column not in dataset.schema.names:
                raise ValidationError(f"data source {uri} has no time column {column!r}")
            table = dataset.to_table(columns=[column])
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

    Parquet with a typed time column (of one type in every file, whatever their other
    columns): the footers' statistics, plus the time column of the row groups that span
    several windows. Otherwise the time column (`read_times`). With
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
        schemas = [footer.schema for footer in opened]
        # Files whose other columns differ (one renamed in an old file) are counted alike.
        if same_time_column(schemas, data):
            counts = count_row_groups(opened, data)
            return replace(counts, read={**counts.read, **skipped})
        if not one_schema(schemas):  # times of differing types: read whole, as read_source does
            times = _whole_time_column(uri, fmt, files, column)
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
    dataset = open_parquet(files).dataset if fmt == "parquet" else None
    schema = dataset.schema if dataset is not None else None
    wanted = list(dict.fromkeys([key, *columns]))
    if dataset is None or schema is None or any(c not in schema.names for c in wanted):
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
    table = dataset.to_table(columns=[c for c in schema.names if c in wanted], filter=matching)
    return table.to_pandas(), {"files": len(files), "filtered": True, "rows": table.num_rows}


def read_head(
    uri: str, fmt: str, columns: Sequence[str], rows: int = 5, *, client: Any | None = None
) -> pd.DataFrame:
    """The first `rows` rows of the source, with those of `columns` it has (for a hint: a
    Parquet source reads only the first row groups it needs; any other, its files in order up
    to the one that completes `rows`)."""
    files = source_files(uri, fmt, client=client)
    dataset = open_parquet(files).dataset if fmt == "parquet" else None
    if dataset is None:
        frames: list[pd.DataFrame] = []
        for f in files:
            frames.append(read_files([f], fmt))
            if sum(map(len, frames)) >= rows:
                break
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return frame[[c for c in columns if c in frame.columns]].head(rows)
    names = [c for c in columns if c in dataset.schema.names]
    head: pd.DataFrame = dataset.head(rows, columns=names).to_pandas()
    return head
