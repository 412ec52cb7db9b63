"""A step's HTML report lands in the store beside its record and at the KFP artifact path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrain.steps.records import finish_step, recorded_step, write_step_report
from retrain.storage import LocalStorage


def test_finish_step_writes_the_html_to_the_store_and_to_html_path(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")
    artifact = tmp_path / "kfp" / "html"
    details = {"provenance": {"history_rows": 300, "new_rows": 100}}
    with recorded_step(store, "r1", "train") as rec:
        finish_step(rec, None, "challenger v1", details, "# Train", html_path=str(artifact))
    stored = store.read_text("runs/r1/train.html")
    assert artifact.read_text() == stored
    assert "<svg" in stored and "challenger v1" in stored and "# Train" in stored
    record = json.loads(store.read_text("runs/r1/train.json"))
    assert "html" not in record and "markdown" not in record  # beside the record, not in it


def test_a_failed_step_writes_no_html(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")
    with pytest.raises(ValueError), recorded_step(store, "r1", "label"):
        raise ValueError("boom")
    assert store.list("runs/r1") == ["runs/r1/label.json"]


def test_write_step_report_writes_html_only_when_asked(tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    write_step_report(str(report), "# R")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]
    write_step_report(
        None,
        "# R",
        details={"a": 1},
        html_path=str(tmp_path / "r.html"),
        step="resolve",
        summary="as given",
    )
    assert "Resolve report" in (tmp_path / "r.html").read_text()
