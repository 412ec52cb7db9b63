"""Input caps: a source past `data.limits` is refused before its rows are loaded.

`check_source` looks at a local source file by file, before anything reads it whole: its size
on disk, then its shape. A Parquet file's rows and columns come from its footer; a CSV file is
scanned in blocks of bounded size (pyarrow's streaming reader, every column as text), counting
rows and columns and measuring each value, so a file with one field of hundreds of megabytes
costs one block of memory, not the whole file. ``gs://`` sources are not scanned first (their
objects are read by range as ingest streams them): `check_frame` checks what the read counted,
the source's rows and the names of all its columns (`retrain.data.source.SourceFacts`), against
the row and column limits; their file and value sizes are not checked. Every refusal is a
`ValidationError` (exit 2) naming the file and the limit to raise. The Parquet footers it reads
can be kept for a later read of the same source (`retrain.data.footers.ParquetFooters`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from retrain.config import DataSource
from retrain.data.footers import FileStamp, Footer, ParquetFooters, file_stamp
from retrain.data.io import SourceFile, source_files
from retrain.data.partitions import prune_partitions
from retrain.data.windows import Window
from retrain.errors import ValidationError
from retrain.settings.limits import InputLimits

__all__ = ["check_frame", "check_source", "scan_block_bytes"]

_MIN_BLOCK = 16 * 2**20


def scan_block_bytes(limits: InputLimits) -> int:
    """The CSV scan's block: a row must fit in it, so it is a few values wide at least."""
    return max(_MIN_BLOCK, 4 * limits.max_value_bytes)


def _refuse(where: str, what: str, limit: str, value: int) -> ValidationError:
    return ValidationError(
        f"{where}: {what}, over the limit data.limits.{limit} = {value:,}; the input is refused "
        f"before it is loaded (raise data.limits.{limit} if it is genuine)"
    )


def check_source(
    uri: str,
    fmt: str,
    limits: InputLimits,
    *,
    data: DataSource | None = None,
    window: Window | None = None,
    footers: ParquetFooters | None = None,
) -> None:
    """Refuse a local source whose files are too big, too long, too wide or hold too long a
    value, before any of it is loaded. ``gs://`` sources are left to `check_frame`.

    With `data` and `window`, only the files a read of that window opens are checked: those
    in hive-style partitions outside it are never read (`retrain.data.partitions`).

    With `footers`, a Parquet file's footer is taken from it when read before (its size is
    still checked first), and each footer read here is kept in it for the reads that follow.

    Raises:
        ValidationError: the first limit a file passes, naming the file and the limit.
    """
    if uri.startswith("gs://"):
        return
    files = source_files(uri, fmt)
    if data is not None and window is not None:
        files = prune_partitions(files, data, window).files
    rows = 0
    for f in files:
        path = f.path
        if path is None:
            continue
        stat = path.stat()
        size = stat.st_size
        if size > limits.max_file_bytes:
            raise _refuse(str(path), f"{size:,} bytes", "max_file_bytes", limits.max_file_bytes)
        if fmt == "parquet":
            rows += _parquet_rows(f, path, limits, footers, file_stamp(stat))
        else:
            rows += _csv_rows(path, limits)
        if rows > limits.max_rows:
            raise _refuse(uri, f"more than {rows:,} rows", "max_rows", limits.max_rows)


def _parquet_rows(
    file: SourceFile,
    path: Path,
    limits: InputLimits,
    footers: ParquetFooters | None,
    stamp: FileStamp,
) -> int:
    known = footers.get(file) if footers is not None else None
    if known is not None:
        meta = known.metadata
    else:
        try:
            meta = pq.ParquetFile(path).metadata
        except (pa.ArrowException, OSError) as err:
            raise ValidationError(f"{path} is not a readable parquet file: {err}") from None
        if footers is not None:
            footers.keep(file, Footer.of_file(path, meta, stamp))
    if meta.num_columns > limits.max_columns:
        raise _refuse(str(path), f"{meta.num_columns:,} columns", "max_columns", limits.max_columns)
    return int(meta.num_rows)


def _csv_rows(path: Path, limits: InputLimits) -> int:
    block = scan_block_bytes(limits)
    read = pacsv.ReadOptions(block_size=block)
    # Rows of another width are pandas' to judge when it reads the file: the scan measures.
    parse = pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=lambda row: "skip")
    try:
        with pacsv.open_csv(path, read_options=read, parse_options=parse) as first:
            names = first.schema.names  # from the first block only
        if len(names) > limits.max_columns:
            raise _refuse(str(path), f"{len(names):,} columns", "max_columns", limits.max_columns)
        as_text = pacsv.ConvertOptions(column_types={n: pa.large_string() for n in names})
        rows = 0
        with pacsv.open_csv(
            path, read_options=read, parse_options=parse, convert_options=as_text
        ) as reader:
            for batch in reader:
                for name, column in zip(names, batch.columns, strict=True):
                    longest = pc.max(pc.binary_length(column)).as_py() or 0
                    if longest > limits.max_value_bytes:
                        raise _refuse(
                            f"{path}, column {name!r} near row {rows + 1:,}",
                            f"a value of {longest:,} bytes",
                            "max_value_bytes",
                            limits.max_value_bytes,
                        )
                rows += int(batch.num_rows)
                if rows > limits.max_rows:
                    return rows
        return rows
    except pa.ArrowInvalid as err:
        if "straddling" in str(err) or "straddles" in str(err):
            raise _refuse(
                str(path),
                f"a row longer than {block:,} bytes (the scan's block)",
                "max_value_bytes",
                limits.max_value_bytes,
            ) from None
        raise ValidationError(f"{path} is not a readable csv file: {err}") from None


def longest_text_bytes(series: pd.Series) -> int:
    """Bytes (UTF-8) of the longest non-null value of a text column (0 if none)."""
    values = series.dropna()
    if values.empty:
        return 0
    lengths = pc.binary_length(pa.array(values.astype(str).tolist(), type=pa.large_string()))
    return int(pc.max(lengths).as_py() or 0)


def check_frame(
    df: pd.DataFrame,
    where: str,
    limits: InputLimits,
    *,
    columns: Sequence[str] | None = None,
    rows: int | None = None,
) -> None:
    """Refuse a loaded source past the row or column limit (``gs://`` sources, and a source
    that changed since `check_source`). When `df` holds only some of the source (one window,
    some columns), `rows` counts the source's rows and `columns` names all its columns: the
    limits are on the source.

    Raises:
        ValidationError: naming `where` and the limit.
    """
    height = len(df) if rows is None else rows
    if height > limits.max_rows:
        raise _refuse(where, f"{height:,} rows", "max_rows", limits.max_rows)
    width = df.shape[1] if columns is None else len(columns)
    if width > limits.max_columns:
        raise _refuse(where, f"{width:,} columns", "max_columns", limits.max_columns)
