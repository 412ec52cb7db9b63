"""Event data: windows, source and dataset I/O, the reference schema, and ingest.

The demo data generators live in `retrain.data.demo` (they need the optional `river` package).
"""

from __future__ import annotations

from retrain.data.ingest import IngestResult, ingest_window
from retrain.data.io import (
    content_sha256,
    dataset_metadata,
    from_parquet_bytes,
    read_source,
    to_parquet_bytes,
)
from retrain.data.schema import ColumnSchema, Schema, check_window, infer_schema
from retrain.data.windows import (
    Window,
    event_times,
    next_window_id,
    parse_window,
    window_ids_in,
    window_mask,
    window_sort_key,
)

__all__ = [
    "ColumnSchema",
    "IngestResult",
    "Schema",
    "Window",
    "check_window",
    "content_sha256",
    "dataset_metadata",
    "event_times",
    "from_parquet_bytes",
    "infer_schema",
    "ingest_window",
    "next_window_id",
    "parse_window",
    "read_source",
    "to_parquet_bytes",
    "window_ids_in",
    "window_mask",
    "window_sort_key",
]
