"""The backtest's outputs: valid JSON, a run that scored nothing fails and says why, and the
baseline is compared with the policies on the same windows."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_backtest_skips import config, write_stream

from retrain.backtest import baseline
from retrain.backtest._unscored import labels_hint, unscored_reasons
from retrain.backtest.replay import PolicyResult, WindowRecord
from retrain.backtest.report import markdown, summarise, write_outputs
from retrain.backtest.run import check_strict
from retrain.cli import main
from retrain.config import Config
from retrain.errors import EXIT_VALIDATION, ValidationError


def _result(name: str, metrics: list[float | None], skipped: dict[int, str]) -> PolicyResult:
    windows = [
        WindowRecord(index=i, window=str(i), metric=m, skipped=skipped.get(i))
        for i, m in enumerate(metrics)
    ]
    return PolicyResult(name, "roc_auc", True, windows, 0, 0.0)


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_the_json_holds_null_where_a_window_had_no_score(tmp_path: Path) -> None:
    # Window 1: a champion served but no row had a label (score_model's NaN).
    never = _result("never", [None, math.nan, 0.8, 0.6], {})
    write_outputs([never], tmp_path, settings={"config": "t", "slo": math.inf})
    doc = _strict_json((tmp_path / "backtest.json").read_text())
    assert [w["metric"] for w in doc["policies"][0]["windows"]] == [None, None, 0.8, 0.6]
    assert doc["settings"]["slo"] is None
    # A reader computing from the file gets the same summary as the run did.
    again = summarise(PolicyResult.from_dict(doc["policies"][0]))
    assert asdict(again) == doc["summary"][0]
    assert again.mean == pytest.approx(0.7) and again.windows_scored == 2


def test_a_backtest_that_scored_no_common_window_fails_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_stream(tmp_path, weeks=4)
    events = pd.read_parquet(tmp_path / "events.parquet")
    # Every week repeats one id: a structural problem, so every window's ingest fails closed.
    first = events.groupby("week").head(1).index
    events.loc[first + 1, "id"] = events.loc[first, "id"].to_numpy()
    events.to_parquet(tmp_path / "events.parquet")
    path = tmp_path / "shop.yaml"
    path.write_text(config(tmp_path).to_yaml())
    args = ["backtest", "--config", str(path), "--policies", "never,full_refit", "--quiet"]
    assert main([*args, "--jobs", "1", "--out", str(tmp_path / "out")]) == EXIT_VALIDATION
    err = capsys.readouterr().err
    assert "the backtest compared nothing: of 4 windows, none was scored by every policy" in err
    # The reason is summarised once for the four windows `never` could not ingest, with one
    # example (the four differ only in the window and the id).
    never = "never (0 of 4 windows scored): ingest failed in 4 window(s) (0, 1, 2, 3); window 0:"
    assert never in err and err.count("duplicate ids in column 'id'") == 1
    # The baseline, which has no ingest checks, scored the windows after its first refit, but
    # not for the comparison: every retraining policy's ingest refused them.
    assert (
        "full_refit (0 of 4 windows scored): refused by every retraining policy's ingest in 4 "
        "window(s) (0, 1, 2, 3); window 0: ingest failed: window 0 [0, 1) failed 1 checks"
    ) in err
    # The records stay readable for a closer look.
    assert (tmp_path / "out" / "backtest.json").exists()


def test_an_unexpected_error_in_the_baseline_spoils_one_window_not_the_backtest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Errors that are not retrain's own, as scikit-learn may raise them on one window's data.
    real_fit, real_score = baseline.fit_model, baseline.score_model

    def fit(cfg: Config, joined: pd.DataFrame) -> Any:
        if len(joined) == 400:  # at window 2's end: weeks 0 and 1 labelled (write_stream)
            raise TypeError("float() argument must be a string or a real number")
        return real_fit(cfg, joined)

    def score(cfg: Config, model: Any, events: pd.DataFrame, labels: pd.DataFrame) -> Any:
        if (events["week"] == 4).all():
            raise np.linalg.LinAlgError("Singular matrix")
        return real_score(cfg, model, events, labels)

    monkeypatch.setattr(baseline, "fit_model", fit)
    monkeypatch.setattr(baseline, "score_model", score)
    write_stream(tmp_path, weeks=5)
    cfg = config(tmp_path)
    result = baseline.replay_full_refit(cfg, [str(w) for w in range(5)])
    recs = result.windows
    # The refit at window 2's end failed: window 3 is still served by window 1's model.
    assert recs[2].failed is not None and recs[2].failed.startswith(
        "refit failed: TypeError: float() argument must be a string or a real number (raised at "
    )
    assert recs[2].failed in recs[2].notes and not recs[2].retrained
    assert recs[3].champion == "refit-1" and recs[3].metric is not None
    # Scoring window 4 failed: not scored, counted as skipped; its refit still ran.
    assert recs[4].metric is None and recs[4].skipped == recs[4].failed
    assert recs[4].failed is not None and "LinAlgError: Singular matrix" in recs[4].failed
    assert recs[4].champion == "refit-3" and recs[4].retrained
    summary = summarise(result)
    assert (summary.windows_scored, summary.windows_skipped) == (2, 1)
    assert set(summary.failed) == {"2", "4"}
    table = markdown([summary], {"config": "t"})
    assert "2 unexpected error(s)" in table
    assert "- full_refit, window 2: refit failed: TypeError: float()" in table
    # The CLI shows them, and --strict fails on them.
    path = tmp_path / "shop.yaml"
    path.write_text(cfg.to_yaml())
    args = ["backtest", "--config", str(path), "--policies", "full_refit", "--quiet", "--jobs", "1"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    assert "window 4: scoring failed: LinAlgError: Singular matrix" in capsys.readouterr().out
    assert main([*args, "--strict", "--out", str(tmp_path / "strict")]) == EXIT_VALIDATION
    err = capsys.readouterr().err
    assert "--strict: 1 policy windows were not scored, 1 refits met an unexpected error" in err
    assert "full_refit: window 2: refit failed: TypeError" in err


def test_the_baseline_skips_the_windows_every_policys_ingest_refused(tmp_path: Path) -> None:
    refused = "ingest failed: window 2 [2, 3) failed 1 checks\n  - 1 duplicate ids in column 'id'"
    never = _result("never", [None, 0.9, None, 0.5, 0.6], {2: refused})
    always = _result("always", [None, 0.9, None, 0.8, None], {2: refused, 4: "ingest failed: x"})
    refit = _result("full_refit", [None, 0.9, 0.3, 0.85, 0.75], {})
    refit.windows[2].rows_scored = 200
    write_outputs([never, always, refit], tmp_path, settings={"config": "t"})
    # Before: the baseline's row counted a window no policy had (write_outputs alone)...
    doc = json.loads((tmp_path / "backtest.json").read_text())
    before = {s["policy"]: s for s in doc["summary"]}["full_refit"]
    assert (before["windows_scored"], before["windows_skipped"]) == (4, 0)
    baseline.skip_refused_windows([never, always, refit])  # what run_backtest does
    rec = refit.windows[2]
    assert rec.metric is None and rec.rows_scored == 0
    assert rec.skipped == f"{baseline.REFUSED}: ingest failed: window 2 [2, 3) failed 1 checks"
    assert "scored 0.3000 on 200 rows, left out of the comparison" in rec.notes[0]
    # Window 4, refused by one policy only, stays scored (and out of the common means).
    assert refit.windows[4].metric == 0.75 and refit.windows[4].skipped is None
    summaries = write_outputs([never, always, refit], tmp_path, settings={"config": "t"})
    s_never, _, s_refit = summaries
    assert (s_refit.windows_scored, s_refit.windows_skipped) == (3, 1)
    assert (s_never.windows_scored, s_never.windows_skipped) == (3, 1)
    # The means were and stay over the windows every policy scored: 1 and 3.
    assert s_refit.common_windows == 2 and s_refit.mean == pytest.approx((0.9 + 0.85) / 2)
    assert s_refit.mean_own == pytest.approx((0.9 + 0.85 + 0.75) / 3)
    # With no retraining policy beside it, the baseline keeps every score it has.
    alone = _result("full_refit", [None, 0.9, 0.3], {})
    baseline.skip_refused_windows([alone])
    assert alone.windows[2].metric == 0.3


def test_a_backtest_whose_label_ids_match_no_event_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_stream(tmp_path, weeks=4)
    labels = pd.read_parquet(tmp_path / "labels.parquet")
    labels["id"] = "L-" + labels["id"]  # the label source writes its ids with a prefix
    labels.to_parquet(tmp_path / "labels.parquet")
    path = tmp_path / "shop.yaml"
    path.write_text(config(tmp_path).to_yaml())
    args = ["backtest", "--config", str(path), "--policies", "always,full_refit", "--quiet"]
    assert main([*args, "--jobs", "1", "--out", str(tmp_path / "out")]) == EXIT_VALIDATION
    err = capsys.readouterr().err
    assert "always (0 of 4 windows scored): no model served yet in 4 window(s)" in err
    assert "no label id matches an event id: 800 labels dated from the first event's time" in err
    assert "events' 'id' (str), e.g. '0-0', '0-1', '0-2'" in err
    assert "labels' 'id' (str), e.g. 'L-0-0', 'L-0-1', 'L-0-2'" in err


def test_labels_of_other_events_get_no_id_hint_in_a_backtest(tmp_path: Path) -> None:
    # The label source holds labels of later events only ('10-0' for week 10's first event):
    # labels still to come for these windows, written just like the events' ids.
    write_stream(tmp_path, weeks=4)
    labels = pd.read_parquet(tmp_path / "labels.parquet")
    labels["id"] = [
        f"{int(w) + 10}-{i}" for w, i in labels["id"].str.split("-", expand=True).values
    ]
    labels.to_parquet(tmp_path / "labels.parquet")
    assert labels_hint(config(tmp_path), ["0", "1", "2", "3"]) is None
    # Week 0's labels under their own ids, written with a prefix ('L-0-1' for '0-1'): said.
    labels["id"] = "L-" + labels["id"].str.replace("10-", "0-", regex=False)
    labels.to_parquet(tmp_path / "labels.parquet")
    hint = labels_hint(config(tmp_path), ["0", "1", "2", "3"])
    assert hint is not None and "once the labels' common prefix 'L-' is removed" in hint
    assert hint.endswith("(in the first 5000 rows of each source)")


def test_strict_counts_the_baselines_mirror_of_a_refused_window_once() -> None:
    refused = "ingest failed: window 2 [2, 3) failed 1 checks\n  - 1 duplicate ids in column 'id'"
    never = _result("never", [None, 0.9, None, 0.5], {2: refused})
    refit = _result("full_refit", [None, 0.9, 0.3, 0.85], {})
    baseline.skip_refused_windows([never, refit])
    summaries = [summarise(r) for r in (never, refit)]
    with pytest.raises(ValidationError) as err:
        check_strict(summaries)
    text = str(err.value)
    assert "--strict: 1 policy windows were not scored (and the baseline left out 1 of" in text
    assert "never: window 2: ingest failed" in text
    assert f"full_refit: window 2: {baseline.REFUSED}: ingest failed: window 2" in text
    # A baseline window skipped for its own reason (its scoring failed) counts.
    refit.windows[3].metric, refit.windows[3].skipped = None, "scoring failed: no rows"
    with pytest.raises(ValidationError, match="--strict: 2 policy windows were not scored"):
        check_strict([summarise(r) for r in (never, refit)])
    check_strict([summarise(_result("never", [None, 0.9], {}))])  # nothing skipped: passes


def test_a_labelled_window_whose_metric_is_undefined_is_named_not_dropped_silently(
    tmp_path: Path,
) -> None:
    write_stream(tmp_path, weeks=5)
    labels = pd.read_parquet(tmp_path / "labels.parquet")
    labels.loc[labels["id"].str.startswith("3-"), "y"] = 0  # week 3: labels of one class
    labels.to_parquet(tmp_path / "labels.parquet")
    path = tmp_path / "shop.yaml"
    path.write_text(config(tmp_path).to_yaml())
    out = tmp_path / "out"
    args = ["backtest", "--config", str(path), "--policies", "never,full_refit", "--quiet"]
    assert main([*args, "--jobs", "1", "--out", str(out)]) == 0
    doc = _strict_json((out / "backtest.json").read_text())
    week3 = [p["windows"][3] for p in doc["policies"]]
    assert [(w["metric"], w["rows_scored"], w["skipped"]) for w in week3] == [(None, 200, None)] * 2
    # Served, labelled, neither scored nor skipped: the table's counts say 2 of 5 windows
    # scored, and the notes say which window is missing and why.
    assert [(s["windows_scored"], s["windows_skipped"]) for s in doc["summary"]] == [(2, 0)] * 2
    assert [s["undefined"] for s in doc["summary"]] == [{"3": 200}] * 2
    text = (out / "backtest.md").read_text()
    assert "roc_auc being undefined on their labels" in text
    assert "never: 3 (200 labelled rows); full_refit: 3 (200 labelled rows)." in text


def test_a_run_that_compared_nothing_tells_an_undefined_metric_from_missing_labels() -> None:
    windows = [
        WindowRecord(index=0, window="0", champion="v1", metric=math.nan, rows_scored=150),
        WindowRecord(index=1, window="1", champion="v1", metric=math.nan, rows_scored=0),
    ]
    lines = unscored_reasons([PolicyResult("never", "roc_auc", True, windows, 0, 0.0)])
    assert lines == [
        "never (0 of 2 windows scored): metric undefined in 1 window(s) (0); window 0: model v1"
        " served, but the metric is undefined on the window's labels (150 rows; e.g. ROC AUC on"
        " labels of one class)",
        "never (0 of 2 windows scored): no labelled row in 1 window(s) (1); window 1: model v1"
        " served, but no row of the window has a label",
    ]


def test_the_json_summary_counts_the_blessings_that_were_a_refresh(tmp_path: Path) -> None:
    # Noisy labels: challengers the recent rows cannot tell from their champion. The world does
    # not move, so only a refresh on the age alone (refresh_evidence "age") replaces the champion.
    rng = np.random.default_rng(4)
    frames = []
    for week in range(6):
        x = rng.normal(size=300)
        y = (x + rng.normal(size=300) > 0).astype(int)
        frames.append(
            pd.DataFrame(
                {
                    "id": [f"{week}-{i}" for i in range(300)],
                    "week": week,
                    "x": x,
                    "c": rng.choice(["a", "b"], size=300),
                    "y": y,
                }
            )
        )
    events = pd.concat(frames, ignore_index=True)
    events.drop(columns=["y"]).to_parquet(tmp_path / "events.parquet")
    events[["id", "y"]].assign(known=events["week"] + 1).to_parquet(tmp_path / "labels.parquet")
    cfg = config(tmp_path)
    evaluation = cfg.evaluation.model_copy(
        update={
            "refresh_after": 1,
            "refresh_evidence": "age",
            "min_rows": 10,
            "min_positives": 5,
        }
    )
    path = tmp_path / "shop.yaml"
    path.write_text(cfg.model_copy(update={"evaluation": evaluation}).to_yaml())
    out = tmp_path / "out"
    args = ["backtest", "--config", str(path), "--policies", "always", "--quiet", "--jobs", "1"]
    assert main([*args, "--out", str(out)]) == 0
    doc = _strict_json((out / "backtest.json").read_text())
    (windows,) = [p["windows"] for p in doc["policies"]]
    # The evaluate step's words, as each window's notes keep them, say which were a refresh.
    said = [w["window"] for w in windows if any("; a refresh: " in n for n in w["notes"])]
    assert said and [w["window"] for w in windows if w["refreshed"]] == said
    assert doc["summary"][0]["refreshes"] == len(said)
    # The Markdown table keeps its columns.
    header = next(
        line
        for line in (out / "backtest.md").read_text().splitlines()
        if line.startswith("| policy |")
    )
    assert header.count("|") == 11 and "refresh" not in header
