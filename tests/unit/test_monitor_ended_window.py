"""The monitor judges the newest window that is over, not the week so far.

A weekly stream whose reference holds whole weeks, checked on a Thursday: the open week holds
Monday to Thursday only, so its `day_of_week` differs from the reference by construction. The
drift engine here is the real one (`detect_with_engine`); the champion holds only a profile
built from whole weeks (it cannot score, so only the features are judged).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from retrain.cli import main
from retrain.config import Config, load_config
from retrain.drift import build_profile
from retrain.errors import EXIT_OK
from retrain.launchers import NoLauncher
from retrain.registry import Registry
from retrain.storage import open_storage
from retrain.triggers.controller import TriggerController
from retrain.triggers.monitor import Monitor
from tests.unit.test_triggers_fleet import fleet

# Weeks start on Mondays on the default grid; 2024-01-01 is a Monday.
WEEKS = [f"2024-01-{d:02d}" for d in (1, 8, 15, 22, 29)] + ["2024-02-05"]
CHECK_AT = datetime(2024, 2, 8, 23, 0, tzinfo=timezone.utc)  # Thursday of the last week
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def write_stream(tmp_path: Path, shift_week: str | None = None, **triggers: Any) -> Config:
    """Hourly events from 2024-01-01 to the Thursday of `CHECK_AT`; `amount` moves by +3 from
    `shift_week` on. Returns the config (weekly windows on a timestamp column)."""
    rng = np.random.default_rng(7)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    times = pd.date_range(start, pd.Timestamp(CHECK_AT), freq="h", inclusive="left")
    amount = rng.normal(0, 1, len(times))
    if shift_week is not None:
        amount = amount + np.where(times >= pd.Timestamp(shift_week, tz="UTC"), 3.0, 0.0)
    events = pd.DataFrame(
        {
            "id": np.arange(len(times)),
            "ts": times,
            "day_of_week": [DAYS[d] for d in times.day_of_week],
            "amount": amount,
        }
    )
    for folder in ("events", "labels"):
        (tmp_path / folder).mkdir()
    events.to_parquet(tmp_path / "events" / "e.parquet")
    labels = pd.DataFrame({"id": events["id"], "y": (amount > 0).astype(int)})
    labels.to_parquet(tmp_path / "labels" / "l.parquet")
    raw = {
        "name": "weekly",
        "task": "classification",
        "target": "y",
        "storage_root": str(tmp_path / "store"),
        "data": {
            "uri": str(tmp_path / "events"),
            "id_column": "id",
            "time_column": "ts",
            "time_kind": "timestamp",
            "window_size": "7d",
            "features": {"day_of_week": "categorical", "amount": "numeric"},
        },
        "labels": {"uri": str(tmp_path / "labels"), "id_column": "id", "label_column": "y"},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {"deployment_name": "weekly", "gitops_repo": str(tmp_path / "gitops")},
        "triggers": {"drift_windows": 2, "cooldown": "1h", **triggers},
    }
    path = tmp_path / "weekly.yaml"
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(str(path))
    # The champion's reference: the first three whole weeks.
    reference = events[events["ts"] < pd.Timestamp(WEEKS[3], tz="UTC")]
    profile = build_profile(reference, cfg).to_json()
    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    reg.register("v1", {"profile.json": profile.encode()})
    reg.set_alias("champion", "v1", 0)
    return cfg


def monitor_at(cfg: Config, when: datetime = CHECK_AT) -> Monitor:
    store = open_storage(cfg.storage_root)
    controller = TriggerController(store, cfg.name, cfg.triggers, NoLauncher(), clock=lambda: when)
    return Monitor(cfg, controller)


def drifted_features(result: Any) -> set[str]:
    assert result.drift is not None, result.drift_note
    return {f.name for f in result.drift.features if f.drifted}


def test_a_thursday_check_judges_the_last_whole_week_not_the_week_so_far(
    tmp_path: Path,
) -> None:
    cfg = write_stream(tmp_path)
    result = monitor_at(cfg).check()
    assert result.window == WEEKS[4]  # 2024-01-29, the last week that is over
    assert not result.drifted and drifted_features(result) == set()
    choice = result.to_dict()["window_choice"]
    assert choice["rule"] == "newest ended" and choice["open_windows"] == [WEEKS[5]]
    md = open_storage(cfg.storage_root).read_text((result.report_key or "").replace("json", "md"))
    assert f"window {WEEKS[4]}" in md and f"window {WEEKS[5]} still open, not judged" in md


def test_the_week_so_far_drifts_on_day_of_week_alone_so_it_is_not_judged_by_default(
    tmp_path: Path,
) -> None:
    """The false alarm the default avoids, shown with the window named explicitly."""
    cfg = write_stream(tmp_path)
    partial = monitor_at(cfg).check(WEEKS[5])
    assert drifted_features(partial) == {"day_of_week"}
    assert "still open" in partial.to_dict()["window_choice"]["reason"]


def test_a_real_shift_in_the_last_whole_week_still_fires(tmp_path: Path) -> None:
    cfg = write_stream(tmp_path, shift_week=WEEKS[4])
    result = monitor_at(cfg).check()
    assert result.window == WEEKS[4]
    assert result.drifted and drifted_features(result) == {"amount"}
    assert [o.decision.rule for o in result.outcomes] == ["hysteresis"]  # 1 of drift_windows 2


def test_judge_open_window_judges_the_week_so_far_and_says_it_is_open(tmp_path: Path) -> None:
    cfg = write_stream(tmp_path, judge_open_window=True)
    result = monitor_at(cfg).check()
    assert result.window == WEEKS[5]
    assert "day_of_week" in drifted_features(result)
    choice = result.to_dict()["window_choice"]
    assert choice["rule"] == "newest (open windows judged)" and "still open" in choice["reason"]


EARLY = datetime(2024, 1, 4, tzinfo=timezone.utc)  # Thursday 00:00 of the first week


def only_the_first_week_so_far(tmp_path: Path) -> None:
    """The source as a new model finds it: Monday to Wednesday of its first week (72 rows)."""
    events = pd.read_parquet(tmp_path / "events" / "e.parquet")
    events[events["ts"] < pd.Timestamp(EARLY)].to_parquet(tmp_path / "events" / "e.parquet")


def test_a_source_with_only_an_open_window_judges_nothing_and_says_so(tmp_path: Path) -> None:
    """No window over yet is a normal state (a first week): reported, not an error."""
    cfg = write_stream(tmp_path)
    only_the_first_week_so_far(tmp_path)
    result = monitor_at(cfg, EARLY).check()
    assert result.window == WEEKS[0]
    choice = result.to_dict()["window_choice"]
    assert choice["rule"] == "none ended" and choice["judged"] is False
    assert choice["open_windows"] == [WEEKS[0]]
    assert "no window of" in choice["reason"] and "is over yet" in choice["reason"]
    assert "judge_open_window" in choice["reason"]
    # No drift or performance judged (the champion has a profile: it would be otherwise).
    assert result.drift is None and "no window is over yet" in result.drift_note
    assert "drop" not in result.performance and not result.outcomes
    md = open_storage(cfg.storage_root).read_text((result.report_key or "").replace("json", "md"))
    assert "is over yet" in md and "Drift:** not measured (no window is over yet" in md


def decided(result: Any) -> list[tuple[str, str, bool]]:
    return [(o.decision.signal.kind, o.decision.rule, o.decision.launch) for o in result.outcomes]


def test_with_no_window_over_a_due_schedule_waits_for_the_window_to_end(tmp_path: Path) -> None:
    """A run of the open week would train 72 of its 168 rows, and a window trains once."""
    schedules = [{"name": "daily", "cron": "0 0 * * *"}]  # due at the check's midnight
    cfg = write_stream(tmp_path, schedules=schedules, schedule_engine="monitor", new_data_rows=100)
    only_the_first_week_so_far(tmp_path)
    result = monitor_at(cfg, EARLY).check()
    assert result.untrained_rows == 72
    assert decided(result) == [
        ("new_data", "below_threshold", False),
        ("schedule", "waits_for_window_end", False),
    ]
    waiting = result.outcomes[1].decision
    assert waiting.signal.snapshot == WEEKS[0]
    assert waiting.signal.details == {"window_open": True, "window_end": WEEKS[1]}
    assert "schedule 'daily' (0 0 * * *) was due at 2024-01-04T00:00:00" in waiting.reason
    assert f"window {WEEKS[0]} is still open (it ends at {WEEKS[1]})" in waiting.reason
    md = open_storage(cfg.storage_root).read_text((result.report_key or "").replace("json", "md"))
    assert "schedule: **no launch** [waits_for_window_end]" in md


def test_a_schedule_that_waited_for_the_open_window_launches_once_it_is_over(
    tmp_path: Path,
) -> None:
    """Due on Thursday of the first week, it launches the whole week at the next check after
    the week ends, though no firing fell between the two checks."""
    schedules = [{"name": "weekly", "cron": "0 0 * * 4"}]  # Thursdays at midnight
    cfg = write_stream(tmp_path, schedules=schedules, schedule_engine="monitor")
    path = tmp_path / "events" / "e.parquet"
    events = pd.read_parquet(path)
    events[events["ts"] < pd.Timestamp(EARLY)].to_parquet(path)  # Monday to Wednesday
    first = monitor_at(cfg, EARLY).check()
    assert decided(first) == [("schedule", "waits_for_window_end", False)]
    # Monday 06:00 of the second week: the first is over; no Thursday midnight since.
    monday = datetime(2024, 1, 8, 6, 0, tzinfo=timezone.utc)
    events[events["ts"] < pd.Timestamp(monday)].to_parquet(path)
    later = monitor_at(cfg, monday).check()
    assert later.window == WEEKS[0] and later.to_dict()["window_choice"]["rule"] == "newest ended"
    assert decided(later)[-1] == ("schedule", "schedule", True)
    launched = later.launched
    assert launched is not None and launched.decision.signal.snapshot == WEEKS[0]
    assert "was due at 2024-01-04T00:00:00" in launched.decision.reason
    assert "window_open" not in launched.decision.signal.details


def test_with_no_window_over_enough_new_rows_wait_for_the_window_to_end(tmp_path: Path) -> None:
    cfg = write_stream(tmp_path, new_data_rows=50)
    only_the_first_week_so_far(tmp_path)
    result = monitor_at(cfg, EARLY).check()
    assert decided(result) == [("new_data", "waits_for_window_end", False)]
    assert "72 untrained rows (trigger at 50), but window" in result.outcomes[0].decision.reason


def test_a_fleet_pass_with_a_model_whose_only_window_is_open_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A period source with a single window (its last may still be filling) beside another
    model: the pass is ok for both, and a single-model check too."""
    configs = fleet(tmp_path, ["new", "old"])
    events = pd.read_parquet(tmp_path / "new" / "events" / "e.parquet")
    events[events["t"] == 0].to_parquet(tmp_path / "new" / "events" / "e.parquet")
    code = main(["monitor", "--once", "--config", str(configs), "--launch", "none"])
    captured = capsys.readouterr()
    assert code == EXIT_OK, captured.err
    line = next(x for x in captured.out.splitlines() if x.startswith("new: "))
    assert line.startswith("new: window 0: drift not measured (no window is over yet"), line
    assert line.endswith("; window 0 still open, not judged"), line
    assert "checked 2 models: 2 ok (exit 0)" in captured.out
    single = ["monitor", "--once", "--config", str(configs / "new.yaml"), "--launch", "none"]
    assert main(single) == EXIT_OK
