"""An empty window (no new data): ingest and every later step that finishes write their
reports, Markdown and HTML, to the store and to the report artifacts the launcher gives them."""

from __future__ import annotations

from pathlib import Path

import pytest

from required import require
from retrain import steps
from retrain.config import Config, load_config
from retrain.storage import open_storage

RUN = "empty"


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    require("river", "the demo data generator uses river (extra 'demo')")
    from retrain.data.demo import generate_loans

    return load_config(
        generate_loans(tmp_path / "data", windows=2, rows_per_window=200, drift_window=1, seed=1)
    )


def _run_empty_window(cfg: Config, out: Path) -> dict[str, str]:
    """Ingest, label, train and evaluate of window 9 (no rows); each step's summary."""
    y = cfg.to_yaml()
    a = {name: str(out / name) for name in ("dataset", "labelled", "queue", "model", "holdout")}

    def reports(step: str) -> dict[str, str]:
        return {"report_path": str(out / f"{step}.md"), "html_path": str(out / f"{step}.html")}

    return {
        "ingest": steps.ingest(y, "9", RUN, a["dataset"], **reports("ingest")).summary,
        "label": steps.label(
            y, "9", RUN, a["dataset"], a["labelled"], a["queue"], **reports("label")
        ).summary,
        "train": steps.train(
            y, "9", RUN, a["labelled"], a["model"], a["holdout"], **reports("train")
        ).summary,
        "evaluate": steps.evaluate(y, RUN, a["model"], a["holdout"], **reports("evaluate")).summary,
    }


def test_every_step_of_an_empty_window_writes_its_html_report(cfg: Config, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summaries = _run_empty_window(cfg, out)

    store = open_storage(cfg.storage_root)
    assert "no new data" in summaries["ingest"]
    for step in ("label", "train", "evaluate"):
        assert summaries[step].startswith("skipped: no new data"), step
    for step in summaries:
        html = (out / f"{step}.html").read_text(encoding="utf-8")  # the KFP HTML artifact
        assert html.lstrip().lower().startswith("<!doctype html"), step
        assert "no new data" in html, step
        assert (out / f"{step}.md").exists(), step
        assert store.read_text(f"runs/{RUN}/{step}.html") == html, step
    for step in ("label", "train", "evaluate"):
        assert "status skipped" in (out / f"{step}.html").read_text(encoding="utf-8"), step


def test_an_empty_window_still_reports_the_rollout_it_finished(
    cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What finish_pending_rollout returns when a crashed run left a promotion half done
    # (tests/unit/test_converge.py runs the real one).
    monkeypatch.setattr(
        "retrain.steps._ingest.finish_pending_rollout",
        lambda cfg, store: "promoted v2 (the decision a crashed run left)",
    )
    out = tmp_path / "out"
    outcome = steps.ingest(
        cfg.to_yaml(), "9", RUN, str(out / "dataset"), html_path=str(out / "ingest.html")
    )

    note = "finished the rollout decision a crashed run left: promoted v2"
    assert "no new data" in outcome.summary and note in outcome.summary
    assert outcome.details["repaired"].startswith("promoted v2")
    assert note in (out / "ingest.html").read_text(encoding="utf-8")
    assert "no_new_data" in outcome.details  # the later steps still skip
