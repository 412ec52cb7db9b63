"""Shared checks of the generated cases (fraud, shop, reviews, concept)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from retrain.config import load_config
from retrain.data.ingest import IngestResult, ingest_window
from retrain.data.io import read_source
from retrain.data.windows import parse_window, window_ids_in
from retrain.labels.join import LabelResult, join_labels

__all__ = ["assert_same_seed_same_bytes", "ingest_every_window", "joined"]


def assert_same_seed_same_bytes(
    generate: Callable[..., Path], tmp_path: Path, **sizes: int
) -> None:
    """Two runs of `generate` with the same sizes and default seed write identical files."""
    a, b = generate(tmp_path / "a", **sizes), generate(tmp_path / "b", **sizes)
    files = sorted(p.relative_to(a.parent) for p in a.parent.rglob("*.parquet"))
    assert len(files) == 2 * sizes["windows"]  # events and labels, one file a window each
    for f in files:
        assert (a.parent / f).read_bytes() == (b.parent / f).read_bytes()


def joined(path: Path, period: str, days: int) -> pd.DataFrame:
    """The case's events with their labels, and `period`: whole `days` since the first event."""
    cfg = load_config(path)
    events = read_source(cfg.data.uri, cfg.data.format)
    labels = read_source(cfg.labels.uri, cfg.labels.format)
    df = events.merge(labels, on=cfg.data.id_column)
    times = df[cfg.data.time_column]
    df[period] = (times - times.min()).dt.days // days
    return df


def ingest_every_window(path: Path) -> list[tuple[IngestResult, LabelResult]]:
    """Each window of the case ingested (schema carried forward) and joined to its labels."""
    cfg = load_config(path)
    events = read_source(cfg.data.uri, cfg.data.format)
    labels = read_source(cfg.labels.uri, cfg.labels.format)
    out, schema = [], None
    for wid in window_ids_in(cfg.data, events[cfg.data.time_column]):
        res = ingest_window(cfg, events, parse_window(cfg.data, wid), schema)
        schema = res.schema
        out.append((res, join_labels(cfg, res.data, labels)))
    return out
