"""The label step reads only the labels of its window's ids, and joins what the whole source
would give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retrain import steps
from retrain.data.io import read_source
from retrain.data.source import read_head, read_matching
from retrain.labels.join import join_labels, label_columns
from retrain.steps.records import write_dataset
from tests.unit.test_labels_as_of import config
from tests.unit.test_source_counts import corrupt_pages


def label_source(root: Path, windows: int = 3, n: int = 100) -> pd.DataFrame:
    """One file per window of ids, with relabels, late labels, null labels and a note column."""
    rng = np.random.default_rng(5)
    root.mkdir(parents=True)
    frames = []
    for w in range(windows):
        ids = [f"a{w}{i:03d}" for i in range(n)]
        frame = pd.DataFrame(
            {
                "application": ids + ids[:10],  # ten ids relabelled later
                "outcome": rng.integers(0, 2, n + 10).astype(float),
                "known_week": np.r_[rng.integers(w + 1, w + 4, n), np.full(10, w + 6)],
                "note": "free text the join never uses",
            }
        )
        frame.loc[[3, 4], "outcome"] = np.nan
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(table, root / f"labels-{w}.parquet", row_group_size=40)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def window_events(w: int, n: int = 100) -> pd.DataFrame:
    ids = [f"a{w}{i:03d}" for i in range(0, n, 2)] + [f"a{w}999"]  # half the ids, one unknown
    return pd.DataFrame({"app": ids, "week": w, "x": 0.5})


def test_only_the_windows_labels_and_columns_are_read(tmp_path: Path) -> None:
    label_source(tmp_path / "labels")
    events = window_events(1)
    got, read = read_matching(
        str(tmp_path / "labels"), "parquet", "application", events["app"], ["outcome"]
    )
    whole = read_source(str(tmp_path / "labels"), "parquet")
    want = whole.loc[whole["application"].isin(events["app"]), ["application", "outcome"]]
    pd.testing.assert_frame_equal(got, want.reset_index(drop=True))
    assert read == {"files": 3, "filtered": True, "rows": 55}


def test_files_of_other_ids_are_skipped_by_their_statistics(tmp_path: Path) -> None:
    label_source(tmp_path / "labels")
    events = window_events(1)
    want, _ = read_matching(
        str(tmp_path / "labels"), "parquet", "application", events["app"], ["outcome"]
    )
    for other in (0, 2):
        corrupt_pages(tmp_path / "labels" / f"labels-{other}.parquet")
    with pytest.raises(Exception):  # noqa: B017 - any failure shows the bytes are broken
        read_source(str(tmp_path / "labels"), "parquet")
    got, _ = read_matching(
        str(tmp_path / "labels"), "parquet", "application", events["app"], ["outcome"]
    )
    pd.testing.assert_frame_equal(got, want)


@pytest.mark.parametrize("as_of", [None, 2, 3, 8])
def test_the_join_on_the_labels_read_equals_the_join_on_the_whole_source(
    tmp_path: Path, as_of: int | None
) -> None:
    label_source(tmp_path / "labels")
    cfg = config(uri=str(tmp_path / "labels"), min_coverage=0.0)
    events = window_events(1)
    whole = join_labels(cfg, events, read_source(cfg.labels.uri, "parquet"), as_of=as_of)
    part, read = read_matching(
        cfg.labels.uri, "parquet", cfg.labels.id_column, events["app"], label_columns(cfg)
    )
    assert read["filtered"]
    got = join_labels(cfg, events, part, as_of=as_of, events_ids_only=read["filtered"])
    pd.testing.assert_frame_equal(got.labelled, whole.labelled)
    pd.testing.assert_frame_equal(got.queue, whole.queue)
    same = ("coverage", "labelled", "queue", "as_of", "not_yet_arrived", "leakage")
    assert {k: got.report[k] for k in same} == {k: whole.report[k] for k in same}
    # What only the whole source shows is not measured, and the counts say whose they are.
    assert whole.report["unmatched_labels"] > 0 and whole.report["null_labels"] == 6
    assert got.report["unmatched_labels"] is None
    assert "not measured (filtered read)" in got.markdown
    assert got.report["label_counts_scope"].startswith("the labels of this window's ids only")
    assert whole.report["label_counts_scope"] == "the whole label source"
    assert got.report["null_labels"] == 1  # of this window's ids (row 4: id a1004 is even)
    if as_of is None:
        # Ten ids a window relabelled, less ids 3 and 4 whose first label is null: 8 a window;
        # this window's even ids 0, 2, 6, 8 (id 4's null label is no duplicate).
        assert got.report["duplicate_labels_dropped"] == 4
        assert whole.report["duplicate_labels_dropped"] == 24


def test_the_label_step_says_what_its_filtered_read_did_not_measure(tmp_path: Path) -> None:
    label_source(tmp_path / "labels")
    cfg = config(uri=str(tmp_path / "labels"), min_coverage=0.0)
    cfg = cfg.model_copy(update={"storage_root": str(tmp_path / "store")})
    dataset = tmp_path / "dataset.parquet"
    write_dataset(str(dataset), window_events(1), {"window": "1"})
    outcome = steps.label(
        cfg.to_yaml(), "1", "r1", str(dataset), str(tmp_path / "l.parquet"), None, None, "8"
    )
    assert outcome.details["labels_read"]["filtered"] is True
    assert outcome.details["unmatched_labels"] is None
    assert "this window's ids only" in outcome.details["label_counts_scope"]


def test_sources_the_filter_could_change_are_read_whole(tmp_path: Path) -> None:
    label_source(tmp_path / "labels")
    uri = str(tmp_path / "labels")
    numeric_ids = pd.Series([1, 2, 3])  # text ids in the source: the join compares as text
    frame, read = read_matching(uri, "parquet", "application", numeric_ids, ["outcome"])
    assert not read["filtered"]
    pd.testing.assert_frame_equal(frame, read_source(uri, "parquet"))
    _, missing = read_matching(uri, "parquet", "application", numeric_ids, ["label"])
    assert not missing["filtered"]  # the join's error lists the columns the source has
    mixed = pd.Series(["a1000", 7], dtype=object)  # no one Arrow type
    _, mixed_read = read_matching(uri, "parquet", "application", mixed, ["outcome"])
    assert not mixed_read["filtered"]
    (tmp_path / "csv").mkdir()
    read_source(uri, "parquet").to_csv(tmp_path / "csv" / "labels.csv", index=False)
    _, csv = read_matching(str(tmp_path / "csv"), "csv", "application", numeric_ids, ["outcome"])
    assert not csv["filtered"]


def test_read_head_of_a_csv_source_reads_its_files_only_until_it_has_the_rows(
    tmp_path: Path,
) -> None:
    root = tmp_path / "labels"
    root.mkdir()
    pd.DataFrame({"id": ["a", "b", "c"], "y": [1, 0, 1], "note": "x"}).to_csv(
        root / "0.csv", index=False
    )
    pd.DataFrame({"id": ["d", "e"], "y": [0, 0], "note": "x"}).to_csv(root / "1.csv", index=False)
    (root / "2.csv").write_bytes(b"id,y\n\xff\xfe,1,2,3\n")  # unreadable: never reached
    head = read_head(str(root), "csv", ["id", "y"], rows=4)
    assert head["id"].tolist() == ["a", "b", "c", "d"] and list(head.columns) == ["id", "y"]
    assert read_head(str(root), "csv", ["id"], rows=2)["id"].tolist() == ["a", "b"]
