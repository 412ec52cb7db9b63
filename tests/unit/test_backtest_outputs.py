"""The backtest's outputs: valid JSON, a run that scored nothing fails and says why, and the
baseline is compared with the policies on the same windows."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from retrain.backtest.replay import PolicyResult, WindowRecord
from retrain.backtest.report import summarise, write_outputs


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
