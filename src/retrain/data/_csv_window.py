"""One window of a CSV source, read in bounded memory: the files streamed in chunks.

A CSV file has no statistics to skip by, so every row is parsed once, every field split (a
row with more fields than the header is refused, naming the file and line, as the whole read
refuses it; a row with fewer is filled with missing values, as there). Only the asked-for
columns are converted (the others are kept as one byte a value, never decoded, and dropped)
and only the window's rows are kept, so memory holds the window plus one chunk, not the
source. The frame is the one the whole read (`retrain.data.io.read_source`) gives for those
rows, dtypes included, except for the mixed column of a large file (below):

- pandas types a column chunk by chunk; where chunks disagree, integers and floats widen to
  float and booleans beside missing values become objects (both by concatenation, as
  ``pd.concat`` of the files does), as in the whole read. A column holding text in one chunk
  and numbers, booleans or nothing in another is read again from that file as text: every
  value a string. The whole read parses it so only when pandas reads the file in one block
  (fewer rows than the largest power of two under 2**20 / columns, 131,072 rows at 6
  columns); a larger file it types block by block too, and leaves such a column as objects
  mixing numbers and strings (with a DtypeWarning). The stream's column is text whatever the
  file's size;
- one row of every chunk (a row with an event time where there is one) joins the
  concatenation and is dropped after, so chunks outside the window type the columns as they
  do in the whole read, and the time column's type is judged on the whole source.

What the whole read told about the source (rows, missing and unreadable times, the time range,
every column's name) is counted as the chunks pass; where the files' headers differ, so are
the files that hold rows of the window (`retrain.data._facts.window_files`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import DataSource
from retrain.data._facts import window_files
from retrain.data.io import SourceFile, check_csv_first_row
from retrain.data.windows import Window, event_times
from retrain.errors import ValidationError

__all__ = ["CSV_CHUNK_ROWS", "CsvWindow", "read_csv_window"]

#: Rows parsed at a time: the memory of one chunk beside the window's rows.
CSV_CHUNK_ROWS = 65_536
_EXAMPLES = 3  # unreadable times a warning names (`retrain.data.windows._examples`)


@dataclass
class CsvWindow:
    """The window's rows (the asked-for columns) and what the whole source holds."""

    frame: pd.DataFrame
    columns: list[str]  # every column of the source: the files' headers, in read order
    rows: int = 0
    no_time: int = 0
    time_min: Any = None
    time_max: Any = None
    unreadable: int = 0
    unreadable_examples: list[Any] = field(default_factory=list)
    # where the files' headers differ: each file holding rows of the window, with its header
    window_files: dict[str, tuple[str, ...]] | None = None


@dataclass
class _Scan:
    """One file's chunks as they pass: window rows, one sample row each, counts."""

    data: DataSource
    window: Window
    parts: list[pd.DataFrame] = field(default_factory=list)
    samples: list[pd.DataFrame] = field(default_factory=list)
    kinds: dict[str, set[str]] = field(default_factory=dict)
    rows: int = 0
    no_time: int = 0
    lows: list[Any] = field(default_factory=list)
    highs: list[Any] = field(default_factory=list)
    unreadable: int = 0
    examples: list[Any] = field(default_factory=list)

    def add(self, chunk: pd.DataFrame) -> None:
        column = self.data.time_column
        # A file without the time column: its rows have no event time in the whole read too.
        raw = chunk[column] if column in chunk else pd.Series(np.nan, chunk.index, name=column)
        self.rows += len(chunk)
        self.no_time += int(raw.isna().sum())
        times = _chunk_times(raw, self.data.time_kind)
        bad = (times.isna() & raw.notna()).to_numpy(dtype=bool)
        if bad.any():
            self.unreadable += int(bad.sum())
            for value in pd.unique(raw[bad].astype(object)):
                if len(self.examples) < _EXAMPLES and value not in self.examples:
                    self.examples.append(value)
        known = times.dropna()
        if len(known):
            self.lows.append(known.min())
            self.highs.append(known.max())
        inside = ((times >= self.window.start) & (times < self.window.end)).fillna(False)
        self.parts.append(chunk.loc[inside.to_numpy(dtype=bool)])
        timed = np.flatnonzero(raw.notna().to_numpy(dtype=bool))
        at = int(timed[0]) if len(timed) else 0
        self.samples.append(chunk.iloc[[at]] if len(chunk) else chunk)
        for name in chunk.columns:
            self.kinds.setdefault(str(name), set()).add(_kind(chunk[name]))

    def text_columns(self) -> set[str]:
        """Columns whose chunks the whole read would parse as text throughout."""
        out = set()
        for name, kinds in self.kinds.items():
            if ("text" in kinds and len(kinds) > 1) or {"bool", "number"} <= kinds:
                out.add(name)
        return out


def _kind(values: pd.Series) -> str:
    """How pandas typed a chunk's column: none (all missing), bool, number or text."""
    if values.isna().all():
        return "none"
    if pd.api.types.is_bool_dtype(values.dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(values.dtype):
        return "number"
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "boolean":
        return "bool"  # booleans beside missing values
    return "text"


def _chunk_times(raw: pd.Series, time_kind: str) -> pd.Series:
    try:
        return event_times(raw, time_kind, errors="coerce")
    except ValidationError:
        # A chunk of the wrong type (numbers for timestamps): the type of the whole column is
        # judged once every chunk is in; until then its values are read one by one.
        return event_times(raw.astype(object), time_kind, errors="coerce")


def _header(f: SourceFile) -> list[str]:
    with f.open() as handle:
        check_csv_first_row(handle, f.uri)
    try:
        with f.open() as handle:
            return [str(c) for c in pd.read_csv(handle, nrows=0).columns]
    except (ValueError, UnicodeDecodeError) as err:
        raise ValidationError(f"{f.uri} is not a readable csv file: {err}") from None


def _scan(
    f: SourceFile,
    header: list[str],
    data: DataSource,
    window: Window,
    wanted: set[str] | None,
    text: set[str],
) -> _Scan:
    scan = _Scan(data, window)
    kept = [c for c in header if wanted is None or c in wanted]
    # Not `usecols`: with it pandas drops a row's extra fields instead of refusing the row.
    # A column not asked for is read as "S1" (one byte a value, never decoded), so it costs
    # one byte a row of the chunk, and the row count survives a file with none of the columns.
    dtype: dict[str, Any] = {c: "S1" for c in header if c not in kept}
    dtype.update({c: str for c in text})
    try:
        with f.open() as handle:
            for chunk in pd.read_csv(handle, chunksize=CSV_CHUNK_ROWS, dtype=dtype or None):
                scan.add(chunk[kept] if len(kept) < len(header) else chunk)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValidationError(f"{f.uri} is not a readable csv file: {err}") from None
    return scan


def read_csv_window(
    files: list[SourceFile], data: DataSource, window: Window, columns: Sequence[str] | None
) -> CsvWindow:
    """The rows of `files` in `window`, with `columns` only (None: every column; the time
    column is always read), as the whole read would give them; and facts about the files.

    Raises:
        ValidationError: a file that cannot be parsed; the time column is of a type its
            ``time_kind`` cannot read (as `retrain.data.windows.event_times`).
    """
    headers = [_header(f) for f in files]
    every = list(dict.fromkeys(c for h in headers for c in h))
    time_col = data.time_column
    wanted = None if columns is None else {*columns, time_col}
    if time_col not in every:  # ingest names what is missing; nothing to cut by
        kept = [c for c in every if wanted is None or c in wanted]
        return CsvWindow(pd.DataFrame(columns=kept), every)
    scans = []
    for f, header in zip(files, headers, strict=True):
        scan = _scan(f, header, data, window, wanted, set())
        text = scan.text_columns()
        if text:
            scan = _scan(f, header, data, window, wanted, text)
        scans.append(scan)
    parts = [p for s in scans for p in s.parts]
    taken = sum(len(p) for p in parts)
    combined = pd.concat([*parts, *(x for s in scans for x in s.samples)], ignore_index=True)
    # Raises as the whole read does when the column's type (all chunks') is not a time.
    event_times(combined[time_col].iloc[taken:], data.time_kind, errors="coerce")
    examples: list[Any] = []
    for value in (v for s in scans for v in s.examples):
        if len(examples) < _EXAMPLES and value not in examples:
            examples.append(value)
    lows = [v for s in scans for v in s.lows]
    highs = [v for s in scans for v in s.highs]
    return CsvWindow(
        frame=combined.iloc[:taken].reset_index(drop=True),
        columns=every,
        rows=sum(s.rows for s in scans),
        no_time=sum(s.no_time for s in scans),
        time_min=min(lows) if lows else None,
        time_max=max(highs) if highs else None,
        unreadable=sum(s.unreadable for s in scans),
        unreadable_examples=examples,
        window_files=window_files(
            {f.uri: header for f, header in zip(files, headers, strict=True)},
            [f.uri for f, s in zip(files, scans, strict=True) if any(len(p) for p in s.parts)],
        ),
    )
