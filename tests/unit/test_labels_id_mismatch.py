"""A label coverage of 0% where labels exist but no id matches says so, with ids of each side."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_labels import config, events, labels_for

from retrain import steps
from retrain.errors import ValidationError
from retrain.labels.join import join_labels, without_coverage_floor
from retrain.steps.records import write_dataset


def numbered(n: int = 50, week: int = 5) -> pd.DataFrame:
    """Events whose ids are integers 1..n (n < 100: none has three digits)."""
    return events(n, week).assign(app=range(1, n + 1))


def padded_labels(ev: pd.DataFrame) -> pd.DataFrame:
    """Labels for every event, keyed by the id written as zero-padded text ('001')."""
    return labels_for(ev).assign(application=[f"{i:03d}" for i in ev["app"]])


def test_no_matching_id_is_named_with_ids_and_types_of_each_side() -> None:
    ev = numbered()
    with pytest.raises(ValidationError) as err:
        join_labels(config(), ev, padded_labels(ev), as_of=6)
    text = str(err.value)
    assert "label coverage 0.0% (0 of 50 events)" in text
    assert "no label id matches an event id: 50 labels dated from the first event's time on" in text
    assert "events' 'app' (int64), e.g. 1, 2, 3" in text
    assert "labels' 'application' (str), e.g. '001', '002', '003'" in text
    assert "Check labels.id_column" in text

    # Not an id problem, so no hint: week 5's labels have not come in and the source holds
    # only week 3's, dated before week 5 ...
    old = events(week=3).assign(app=[f"b{i:03d}" for i in range(100)])
    with pytest.raises(ValidationError) as err:
        join_labels(config(), events(), labels_for(old), as_of=6)
    assert "label coverage 0.0%" in str(err.value) and "no label id" not in str(err.value)
    # ... or one id matches.
    lab = padded_labels(ev)
    lab.loc[0, "application"] = "1"
    with pytest.raises(ValidationError) as err:
        join_labels(config(), ev, lab, as_of=6)
    assert "label coverage 2.0%" in str(err.value) and "no label id" not in str(err.value)


def test_with_no_coverage_floor_the_hint_is_a_warning() -> None:
    ev = numbered()
    result = join_labels(without_coverage_floor(config()), ev, padded_labels(ev), as_of=6)
    assert result.coverage == 0.0
    (warning,) = result.report["warnings"]
    assert warning.startswith("no label id matches an event id") and "'001'" in warning
    assert "warning: no label id matches" in result.markdown


def test_the_label_step_names_ids_its_filtered_read_did_not_find(tmp_path: Path) -> None:
    # Text ids on both sides (so the read is filtered by the events' ids), written differently.
    cfg = config()
    cfg = cfg.model_copy(
        update={
            "storage_root": str(tmp_path / "store"),
            "labels": cfg.labels.model_copy(update={"uri": str(tmp_path / "labels.parquet")}),
        }
    )
    ev = events()
    labels_for(ev).assign(application=lambda f: f["application"].str.upper()).to_parquet(
        tmp_path / "labels.parquet"
    )
    dataset = tmp_path / "dataset.parquet"
    write_dataset(str(dataset), ev, {"window": "5"})
    with pytest.raises(ValidationError) as err:
        steps.label(cfg.to_yaml(), "5", "r1", str(dataset), str(tmp_path / "l.parquet"), as_of="6")
    text = str(err.value)
    assert "the label source has labels (a few of them shown), but none for these events" in text
    assert "events' 'app' (str), e.g. 'a000', 'a001', 'a002'" in text
    assert "labels' 'application' (str), e.g. 'A000', 'A001', 'A002'" in text


def test_labels_still_to_come_get_no_id_hint_in_the_label_step(tmp_path: Path) -> None:
    # The source holds week 3's labels only (other events, dated week 4); week 5's have not
    # come in. The step's read, filtered by week 5's ids, finds none and reads the source's
    # first rows: all dated before week 5, so they say nothing about week 5's ids.
    cfg = config()
    cfg = cfg.model_copy(
        update={
            "storage_root": str(tmp_path / "store"),
            "labels": cfg.labels.model_copy(update={"uri": str(tmp_path / "labels.parquet")}),
        }
    )
    old = events(week=3).assign(app=[f"b{i:03d}" for i in range(100)])
    labels_for(old).to_parquet(tmp_path / "labels.parquet")
    dataset = tmp_path / "dataset.parquet"
    write_dataset(str(dataset), events(), {"window": "5"})
    with pytest.raises(ValidationError) as err:
        steps.label(cfg.to_yaml(), "5", "r1", str(dataset), str(tmp_path / "l.parquet"), as_of="6")
    text = str(err.value)
    assert "label coverage 0.0% (0 of 100 events)" in text
    assert "no label id" not in text and "labels.id_column" not in text


def test_without_label_times_other_events_labels_are_not_called_an_id_mismatch() -> None:
    # No labels.time_column: every label counts, week 3's (other events) among them.
    cfg = config(time_column=None)
    old = events(week=3).assign(app=[f"b{i:03d}" for i in range(100)])
    with pytest.raises(ValidationError) as err:
        join_labels(cfg, events(), labels_for(old))
    text = str(err.value)
    assert "no label for these events' ids has arrived yet, or the ids differ: 100 labels" in text
    assert "events' 'app' (str), e.g. 'a000', 'a001', 'a002'" in text
    assert "no label id matches" not in text and "labels.id_column" not in text


def test_the_hint_names_its_evidence_that_the_ids_differ() -> None:
    ev = numbered()
    # Integers against zero-padded text: two pieces of evidence.
    with pytest.raises(ValidationError) as err:
        join_labels(config(), ev, padded_labels(ev), as_of=6)
    text = str(err.value)
    assert "the two id columns are of different types (int64 against str)" in text
    assert "50 label ids match an event id once leading zeros (and case) are ignored" in text
    # Integers against text ids of other events, labels not dated: the types alone.
    other = labels_for(ev).assign(application=[f"x{i}" for i in range(900, 950)])
    with pytest.raises(ValidationError) as err:
        join_labels(config(time_column=None), ev, other)
    text = str(err.value)
    assert "no label id matches an event id" in text and "Check labels.id_column" in text
    assert "of different types (int64 against str)" in text and "label ids match" not in text
    # Same type, written with a prefix: 'APP-a000' is 'a000' once the prefix is removed.
    text_ev = events()
    prefixed = labels_for(text_ev).assign(application=lambda f: "APP-" + f["application"])
    with pytest.raises(ValidationError) as err:
        join_labels(config(), text_ev, prefixed, as_of=6)
    text = str(err.value)
    assert "100 label ids match an event id once the labels' common prefix 'APP-' is removed" in (
        text
    )
    assert "Check labels.id_column" in text and "different types" not in text


def test_numbers_against_the_same_numbers_in_text_are_no_sign_that_the_ids_differ() -> None:
    # Integer event ids, text label ids written as the join writes numbers ('51'..'100'), of
    # other events: those labels are of earlier applications; this window's have not arrived.
    # The join compares ids as text, so the types are no evidence, and the hint does not
    # send the user to labels.id_column.
    ev = numbered()
    other = labels_for(ev).assign(application=[str(i) for i in range(51, 101)])
    assert not set(other["application"]) & set(ev["app"].astype(str))
    with pytest.raises(ValidationError) as err:
        join_labels(config(time_column=None), ev, other)
    text = str(err.value)
    assert "no label for these events' ids has arrived yet, or the ids differ" in text
    assert "different types" not in text and "Check labels.id_column" not in text
