"""Reading event sources and writing datasets (Parquet with lineage metadata).

A source is one file or a directory of files in one format (Parquet or CSV), on local disk or
under ``gs://``. A dataset written by this package is Parquet whose key-value metadata holds a
JSON document under the key ``retrain`` (rows, event-time range, schema fingerprint, content
hash, source snapshot), so lineage travels with the bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from retrain.errors import NotFound, ValidationError
from retrain.storage import NO_OBJECT, GCSStorage

__all__ = [
    "METADATA_KEY",
    "SourceFile",
    "SourceNotFound",
    "check_csv_first_row",
    "content_sha256",
    "data_files",
    "dataset_metadata",
    "from_parquet_bytes",
    "json_value",
    "read_files",
    "read_source",
    "source_files",
    "to_parquet_bytes",
]

#: Parquet key-value metadata key holding the dataset's JSON metadata.
METADATA_KEY = b"retrain"
_FORMATS = ("parquet", "csv")


class SourceNotFound(ValidationError):
    """No data file at a source's URI (nothing there, or a directory or prefix without a file
    of its format). For a label source that is not a fault of any label: none has come yet."""


def check_csv_first_row(handle: BinaryIO, where: str) -> None:
    """Refuse a CSV file whose first row has more fields than its header.

    pandas refuses any other row of more fields, but takes the first row's extra fields as an
    index and shifts every value of every row one column left. Read without a header, the
    first row is judged by the header's width like the others (one small read).

    Raises:
        ValidationError: naming the file and the line, as pandas names any other such row.
    """
    try:  # "S1": one byte of each field is kept, nothing is decoded
        pd.read_csv(handle, header=None, nrows=2, dtype="S1")
    except (ValueError, UnicodeDecodeError) as err:
        raise ValidationError(f"{where} is not a readable csv file: {err}") from None


def _parse(data: bytes, fmt: str, where: str) -> pd.DataFrame:
    try:
        if fmt == "parquet":
            frame: pd.DataFrame = pq.read_table(pa.BufferReader(data)).to_pandas()
            return frame
        check_csv_first_row(io.BytesIO(data), where)
        return pd.read_csv(io.BytesIO(data))
    except (pa.ArrowException, ValueError, UnicodeDecodeError) as err:
        raise ValidationError(f"{where} is not a readable {fmt} file: {err}") from None


def _is_data_file(relative: str, fmt: str) -> bool:
    """A file of the format whose path (below the source root) has no hidden or '_' part.

    Writers leave markers such as _SUCCESS and hidden temporary files or directories beside
    the data; reading them would duplicate or corrupt rows.
    """
    parts = relative.split("/")
    return not any(p.startswith((".", "_")) for p in parts) and parts[-1].lower().endswith(
        f".{fmt}"
    )


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class SourceFile:
    """One data file of a source: local (`path`) or an object of a GCS bucket (`key`)."""

    uri: str
    path: Path | None = None
    store: GCSStorage | None = None
    key: str = ""
    relative: str = ""  # the path below the source's root ("" for a one-file source)
    # gs://: the object's generation when listed, so that what was read of one generation (a
    # kept footer) is not used for the object that replaced it.
    generation: int | None = None

    def read_bytes(self) -> bytes:
        """The whole file."""
        if self.path is not None:
            return self.path.read_bytes()
        assert self.store is not None
        try:
            return self.store.read_bytes(self.key)
        except NotFound:
            raise ValidationError(f"{self.uri} disappeared while reading the source") from None

    def open(self) -> BinaryIO:
        """A seekable reader that fetches only the byte ranges asked for (footers, columns)."""
        if self.path is not None:
            return self.path.open("rb")
        assert self.store is not None
        try:
            return self.store.open_read(self.key)
        except NotFound:
            raise ValidationError(f"{self.uri} disappeared while reading the source") from None


def _local_files(path: Path, uri: str, fmt: str) -> list[SourceFile]:
    if path.is_file():
        return [SourceFile(uri=uri, path=path)]
    if not path.is_dir():
        raise SourceNotFound(f"data source not found: {uri}")
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and _is_data_file(p.relative_to(path).as_posix(), fmt)
    )
    if not files:
        raise SourceNotFound(f"data source {uri} is a directory with no .{fmt} files")
    return [SourceFile(uri=str(p), path=p, relative=p.relative_to(path).as_posix()) for p in files]


def _gcs_files(uri: str, fmt: str, client: Any | None) -> list[SourceFile]:
    bucket, _, name = uri[len("gs://") :].partition("/")
    store = GCSStorage(f"gs://{bucket}", client=client)
    name = name.strip("/")
    if name and (generation := store.generation(name)) != NO_OBJECT:
        return [SourceFile(uri=uri, store=store, key=name, generation=generation)]
    prefix = f"{name}/" if name else ""
    # Listing a prefix also matches siblings like 'events.bak/...': keep only real children.
    keys = [
        (k, g)
        for k, g in store.list_generations(name or "")
        if k.startswith(prefix) and _is_data_file(k[len(prefix) :], fmt)
    ]
    if not keys:
        raise SourceNotFound(
            f"data source not found: {uri} (no object and no .{fmt} files below it)"
        )
    return [
        SourceFile(uri=store.uri(k), store=store, key=k, relative=k[len(prefix) :], generation=g)
        for k, g in keys
    ]


def source_files(uri: str, fmt: str, *, client: Any | None = None) -> list[SourceFile]:
    """The data files of a source, in the order `read_source` reads them.

    A file, or every file of format `fmt` below a directory or ``gs://`` prefix, in sorted path
    order; hidden files and names starting with '_' are skipped.

    Raises:
        ValidationError: unknown format, unsupported URI, or no such file or files.
    """
    if fmt not in _FORMATS:
        raise ValidationError(f"unknown data format {fmt!r} for {uri}; use one of {list(_FORMATS)}")
    if uri.startswith("gs://"):
        return _gcs_files(uri, fmt, client)
    if uri.startswith("file://"):
        return _local_files(Path(uri[len("file://") :]), uri, fmt)
    if "://" in uri:
        raise ValidationError(f"unsupported data source URI {uri} (use a path or gs://)")
    return _local_files(Path(uri).expanduser(), uri, fmt)


def data_files(uri: str, fmt: str) -> list[Path]:
    """The files a local source is read from: itself, or its data files in sorted order.

    Raises:
        ValidationError: nothing there, or a directory with no data file.
    """
    return [f.path for f in source_files(uri, fmt) if f.path is not None]


def read_source(uri: str, fmt: str, *, client: Any | None = None) -> pd.DataFrame:
    """Read a file, or every file of format `fmt` below a directory, into one frame.

    Files in a directory are read in sorted path order; hidden files and names starting with
    '_' are skipped. `client` is an optional google.cloud.storage client for ``gs://`` URIs.
    To read one window or one column, `retrain.data.source` reads far less.

    Raises:
        ValidationError: unknown format, missing source, or a file that cannot be parsed.
    """
    return read_files(source_files(uri, fmt, client=client), fmt)


def read_files(files: list[SourceFile], fmt: str) -> pd.DataFrame:
    """`files` of a source read into one frame, in order (`read_source` reads them all).

    Raises:
        ValidationError: a file that cannot be parsed.
    """
    return _concat([_parse(f.read_bytes(), fmt, f.uri) for f in files])


def to_parquet_bytes(df: pd.DataFrame, metadata: dict[str, Any]) -> bytes:
    """Parquet bytes of `df` (index dropped) with `metadata` as JSON under key ``retrain``."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    kv = dict(table.schema.metadata or {})
    kv[METADATA_KEY] = json.dumps(metadata, sort_keys=True, allow_nan=False).encode()
    sink = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(kv), sink)
    return sink.getvalue()


def from_parquet_bytes(data: bytes, where: str = "") -> tuple[pd.DataFrame, dict[str, Any]]:
    """The frame and the ``retrain`` metadata ({} if absent) of Parquet bytes; `where` (the
    file's path or URI) is named in errors."""
    try:
        table = pq.read_table(pa.BufferReader(data))
    except pa.ArrowException as err:
        name = f"{where} is " if where else ""
        raise ValidationError(
            f"{name}not a readable Parquet dataset (truncated or corrupted?): {err}"
        ) from None
    return table.to_pandas(), schema_meta(table.schema.metadata, where)


def schema_meta(kv: dict[bytes, bytes] | None, where: str = "") -> dict[str, Any]:
    """The ``retrain`` metadata ({} if absent) of a Parquet schema's key-value metadata;
    `where` (the file's path or URI) is named in errors."""
    raw = (kv or {}).get(METADATA_KEY)
    name = f"{where}: " if where else ""
    try:
        meta = json.loads(raw) if raw else {}
    except json.JSONDecodeError as err:
        raise ValidationError(
            f"{name}dataset metadata under key 'retrain' is not JSON: {err}"
        ) from None
    if not isinstance(meta, dict):
        raise ValidationError(f"{name}dataset metadata under key 'retrain' is not a JSON object")
    return meta


def _column_bytes(series: pd.Series) -> bytes:
    """A canonical byte encoding of a column's values, defined here (not by a library)."""
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biufmM":
        values = series.to_numpy()
        if dtype.kind == "f":
            # One NaN bit pattern and no negative zero, so equal values hash equally.
            values = np.where(np.isnan(values), np.nan, values + 0.0)
        return np.ascontiguousarray(values).astype(values.dtype.newbyteorder("<")).tobytes()
    # Strings, categoricals, nullable and object columns: typed, length-prefixed text per value.
    fast = _string_column_bytes(series)
    if fast is not None:
        return fast
    parts = [_value_text(v) for v in series.astype(object).to_numpy()]
    return "\x1f".join(parts).encode()


def _value_text(v: Any) -> str:
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return "\x00"
    text = f"{type(v).__name__}:{v}"
    return f"{len(text)}:{text}"


def _string_column_bytes(series: pd.Series) -> bytes | None:
    """`_column_bytes` of a text or text-categorical column, each distinct value encoded once.

    The same bytes as the per-value loop (a test holds them equal), in compiled code per row:
    a million-row text column hashes in a fraction of a second instead of tens of seconds.
    None for any other column (mixed objects keep the loop: 1, 1.0 and True must stay apart).
    """
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        uniques = list(dtype.categories)
        if not all(type(u) is str for u in uniques):
            return None
        codes = series.cat.codes.to_numpy()
    elif isinstance(dtype, pd.StringDtype):
        codes, found = pd.factorize(series, use_na_sentinel=True)
        uniques = list(found)
    else:
        return None
    # Code -1 (missing) takes the last entry.
    table = np.asarray([_value_text(u) for u in uniques] + ["\x00"], dtype=object)
    return "\x1f".join(table[codes].tolist()).encode()


def content_sha256(df: pd.DataFrame) -> str:
    """Deterministic SHA-256 of a frame's column names, dtypes and values (in row order).

    The row index is ignored, so a filtered-and-reset frame hashes like a freshly built one.
    """
    h = hashlib.sha256()
    h.update(f"rows={len(df)};cols={df.shape[1]}\n".encode())
    for name in df.columns:
        col = df[name]
        header = json.dumps([str(name), str(col.dtype)]).encode()
        h.update(len(header).to_bytes(8, "little") + header)
        body = _column_bytes(col)
        h.update(len(body).to_bytes(8, "little") + body)
    return h.hexdigest()


def json_value(value: Any) -> Any:
    """A JSON-able form of a scalar: numpy numbers to Python, NaN to None, times to ISO text."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (str, int, bool)):
        return value
    return str(value)


def dataset_metadata(
    df: pd.DataFrame, *, time_column: str, source_snapshot: str, schema_fingerprint: str
) -> dict[str, Any]:
    """Lineage metadata of a dataset: rows, event-time range, schema and content hashes."""
    if time_column not in df.columns:
        raise ValidationError(f"time column {time_column!r} is not in the dataset")
    times = df[time_column].dropna()
    return {
        "rows": len(df),
        "columns": [str(c) for c in df.columns],
        "event_time_min": json_value(times.min()) if len(times) else None,
        "event_time_max": json_value(times.max()) if len(times) else None,
        "schema_fingerprint": schema_fingerprint,
        "sha256": content_sha256(df),
        "source_snapshot": source_snapshot,
    }
