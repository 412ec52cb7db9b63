"""Window grids aligned to the data: an anchor, small leading windows skipped, off-grid ids."""

from __future__ import annotations

import pandas as pd
import pytest

from retrain.config import DataSource, config_from_dict
from retrain.data.ingest import ingest_window
from retrain.data.windows import (
    drop_small_leading_windows,
    off_grid_warning,
    parse_window,
    window_id_of_slot,
    window_ids_in,
    window_slots,
)
from retrain.errors import ValidationError


def source(**extra: object) -> DataSource:
    return DataSource.model_validate(
        {
            "uri": "events",
            "id_column": "id",
            "time_column": "at",
            "features": {"x": "numeric"},
            "window_size": "7d",
            "min_rows": 10,
            **extra,
        }
    )


def times() -> pd.Series:
    """Events from Wednesday 2024-01-03 12:00 UTC, one an hour for four weeks."""
    return pd.Series(pd.date_range("2024-01-03T12:00", periods=24 * 28, freq="h", tz="UTC"))


def test_the_default_grid_starts_on_mondays_and_the_anchor_moves_it() -> None:
    assert window_ids_in(source(), times())[:2] == ["2024-01-01", "2024-01-08"]
    anchored = source(window_anchor="2024-01-03T12:00:00Z")
    ids = window_ids_in(anchored, times())
    assert ids == [
        "2024-01-03T12:00:00Z",
        "2024-01-10T12:00:00Z",
        "2024-01-17T12:00:00Z",
        "2024-01-24T12:00:00Z",
    ]
    # Slots and ids agree with the anchored grid (pooling groups history by them).
    slots = window_slots(anchored, times())
    assert [window_id_of_slot(anchored, int(s)) for s in sorted(set(slots))] == ids
    periods = source(time_kind="period", window_size=3, window_anchor=1, time_column="week")
    assert window_ids_in(periods, pd.Series([1, 2, 4, 9])) == ["1", "4", "7"]


def test_a_small_leading_window_is_skipped_with_a_message() -> None:
    cfg = source()
    t = pd.concat([pd.Series(pd.to_datetime(["2024-01-07T23:00Z"] * 3)), times()])
    ids, messages = drop_small_leading_windows(cfg, t, window_ids_in(cfg, t))
    # 2024-01-01's week holds the 3 Sunday events plus Wednesday-Sunday's 108 hours: kept.
    assert ids[0] == "2024-01-01" and messages == []
    late = pd.Series(pd.date_range("2024-01-07T20:00", periods=24 * 14, freq="h", tz="UTC"))
    ids, messages = drop_small_leading_windows(cfg, late, window_ids_in(cfg, late))
    assert ids[0] == "2024-01-08"
    assert messages == [
        "skipped leading window 2024-01-01: 4 rows, fewer than data.min_rows 10 (set "
        "data.window_anchor to the first event to align the grid)"
    ]


def test_an_off_grid_window_id_warns_naming_the_windows_it_overlaps() -> None:
    cfg = source()
    assert off_grid_warning(cfg, parse_window(cfg, "2024-01-08")) is None
    text = off_grid_warning(cfg, parse_window(cfg, "2024-01-10"))
    assert text is not None
    assert text.startswith(
        "window 2024-01-10 is not on the window grid: it overlaps windows 2024-01-08 and 2024-01-15"
    )
    periods = source(time_kind="period", window_size=2, time_column="week")
    assert off_grid_warning(periods, parse_window(periods, "4")) is None
    assert "overlaps windows 2 and 4" in str(off_grid_warning(periods, parse_window(periods, "3")))


def test_ingest_warns_about_an_off_grid_window() -> None:
    cfg = config_from_dict(
        {
            "name": "shop",
            "task": "classification",
            "target": "y",
            "storage_root": "store",
            "data": source().model_dump(mode="json"),
            "labels": {"uri": "labels", "id_column": "id", "label_column": "y"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "deploy": {"deployment_name": "shop"},
        }
    )
    t = times()
    events = pd.DataFrame({"id": [f"e{i}" for i in range(len(t))], "at": t, "x": 1.0})
    on_grid = ingest_window(cfg, events, parse_window(cfg.data, "2024-01-08"), None)
    assert on_grid.report["warnings"] == []
    off = ingest_window(cfg, events, parse_window(cfg.data, "2024-01-10"), None)
    assert len(off.data) == 7 * 24  # the window is ingested as asked ...
    assert off.report["warnings"][0].startswith("window 2024-01-10 is not on the window grid")


def test_windows_all_smaller_than_min_rows_fail_naming_min_rows_not_the_anchor() -> None:
    # Daily rows in 30-day windows: every window holds about 30 events, under min_rows 100.
    cfg = source(window_size="30d", min_rows=100)
    daily = pd.Series(pd.date_range("2024-01-01", periods=365, freq="D", tz="UTC"))
    with pytest.raises(ValidationError) as err:
        drop_small_leading_windows(cfg, daily, window_ids_in(cfg, daily))
    text = str(err.value)
    assert "every window has fewer than data.min_rows 100 events" in text
    assert "lower data.min_rows or widen data.window_size" in text
    assert "window_anchor" not in text
