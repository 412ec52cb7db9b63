"""The backtest uses labels only once they exist: by their own times, or a delay in windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.backtest.timing import ReplayOptions, newest_labelled_window, search_depth
from retrain.config import Config, config_from_dict
from retrain.errors import ValidationError

WINDOWS = [str(w) for w in range(6)]
ROWS = 50


def config(*, time_column: str | None = "known_week") -> Config:
    return config_from_dict(
        {
            "name": "loans",
            "task": "classification",
            "target": "defaulted",
            "storage_root": "store",
            "data": {
                "uri": "events",
                "id_column": "app",
                "time_column": "week",
                "time_kind": "period",
                "window_size": 1,
                "features": {"x": "numeric"},
            },
            "labels": {
                "uri": "labels",
                "id_column": "app",
                "label_column": "outcome",
                "time_column": time_column,
                "min_coverage": 0.9,
            },
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "deploy": {"deployment_name": "loans"},
        }
    )


def stream(late: int) -> tuple[dict[int, pd.DataFrame], pd.DataFrame]:
    """Six weekly windows whose labels are all dated `late` weeks after the window's end."""
    rng = np.random.default_rng(5)
    events = {
        w: pd.DataFrame(
            {
                "app": [f"w{w}-{i}" for i in range(ROWS)],
                "week": w,
                "x": rng.normal(size=ROWS),
            }
        )
        for w in range(len(WINDOWS))
    }
    labels = pd.concat(
        [
            pd.DataFrame(
                {"app": ev["app"], "outcome": np.arange(ROWS) % 2, "known_week": w + 1 + late}
            )
            for w, ev in events.items()
        ],
        ignore_index=True,
    )
    return events, labels


def newest_at_each_window(
    cfg: Config, late: int, label_delay: int | None = None
) -> list[int | None]:
    events, labels = stream(late)
    return [
        newest_labelled_window(cfg, WINDOWS, events.get, labels, i, label_delay=label_delay)
        for i in range(len(WINDOWS))
    ]


def test_labels_two_windows_late_are_first_used_two_windows_on() -> None:
    # Window 0 ends at week 1; its labels are dated week 3, window 2's end.
    assert newest_at_each_window(config(), late=2) == [None, None, 0, 1, 2, 3]


def test_labels_in_by_a_windows_end_are_used_at_once() -> None:
    assert newest_at_each_window(config(), late=0) == [0, 1, 2, 3, 4, 5]


def test_partly_arrived_labels_wait_for_min_coverage() -> None:
    events, labels = stream(late=0)
    # A third of window 3's labels come a week later: 67% < 90% until then.
    later = labels["app"].str.startswith("w3-") & (labels.index % 3 == 0)
    labels.loc[later, "known_week"] += 1
    found = [newest_labelled_window(config(), WINDOWS, events.get, labels, i) for i in range(6)]
    assert found == [0, 1, 2, 2, 4, 5]


def test_windows_known_ready_are_not_judged_again() -> None:
    events, labels = stream(late=2)
    seen: list[int] = []

    def tracked(k: int) -> pd.DataFrame | None:
        seen.append(k)
        return events.get(k)

    assert newest_labelled_window(config(), WINDOWS, tracked, labels, 5, known=2) == 3
    assert seen == [5, 4, 3]
    assert newest_labelled_window(config(), WINDOWS, events.get, labels, 3, known=1) == 1


def test_without_label_times_the_delay_in_windows_applies() -> None:
    untimed = config(time_column=None)
    assert newest_at_each_window(untimed, late=2, label_delay=2) == [None, None, 0, 1, 2, 3]
    # No delay given and no label times: the labels are taken as there at once.
    assert newest_at_each_window(untimed, late=2) == [0, 1, 2, 3, 4, 5]


def test_a_label_delay_for_labels_with_their_own_times_is_refused() -> None:
    with pytest.raises(ValidationError, match="labels carry their own times"):
        ReplayOptions(label_delay=1).check(config())
    with pytest.raises(ValidationError, match="0 or more windows"):
        ReplayOptions(label_delay=-1).check(config(time_column=None))
    ReplayOptions().check(config())
    ReplayOptions(label_delay=1).check(config(time_column=None))


def long_stream(
    windows: int, late: int, covered: float
) -> tuple[dict[int, pd.DataFrame], pd.DataFrame]:
    """`windows` weekly windows whose labels come `late` weeks after each window's end, for a
    `covered` share of its rows."""
    events = {
        w: pd.DataFrame({"app": [f"w{w}-{i}" for i in range(ROWS)], "week": w, "x": 0.0})
        for w in range(windows)
    }
    labelled = int(ROWS * covered)
    labels = pd.concat(
        [
            pd.DataFrame(
                {
                    "app": ev["app"][:labelled],
                    "outcome": np.arange(labelled) % 2,
                    "known_week": w + 1 + late,
                }
            )
            for w, ev in events.items()
        ],
        ignore_index=True,
    )
    return events, labels


def test_labels_that_never_reach_coverage_cost_at_most_the_lookback_per_window() -> None:
    # Half of every window's labels arrive: no window is ever ready. Each later window used to
    # join every earlier one again (40 windows: 820 joins); the search stops at the lookback.
    cfg = config()
    windows = [str(w) for w in range(40)]
    events, labels = long_stream(len(windows), late=0, covered=0.5)
    joined: list[int] = []

    def tracked(k: int) -> pd.DataFrame | None:
        joined.append(k)
        return events.get(k)

    found = [newest_labelled_window(cfg, windows, tracked, labels, i) for i in range(40)]
    assert found == [None] * 40
    depth = cfg.triggers.labelled_lookback
    assert depth == 14 and len(joined) == sum(min(i + 1, depth) for i in range(40))


def test_a_label_delay_longer_than_the_lookback_deepens_the_search() -> None:
    windows = [str(w) for w in range(30)]
    events, labels = long_stream(len(windows), late=19, covered=1.0)
    raw = config().model_dump(mode="json")
    assert newest_labelled_window(config(), windows, events.get, labels, 29) is None
    raw["labels"]["delay"] = 20  # window w is labelled by week w + 20; window 29 ends at 30
    deep = config_from_dict(raw)
    assert search_depth(deep) == 21
    assert newest_labelled_window(deep, windows, events.get, labels, 29) == 10


def test_ignored_label_times_arrive_by_the_delay_in_windows() -> None:
    # The labels are dated two weeks late; ignored, they arrive by their window's end, or
    # --label-delay windows after it: what the label times cost a policy.
    timed = config()
    assert newest_at_each_window(timed, late=2) == [None, None, 0, 1, 2, 3]
    at_once = ReplayOptions(ignore_label_times=True)
    at_once.check(timed)
    untimed = at_once.applied(timed)
    assert untimed.labels.time_column is None and timed.labels.time_column == "known_week"
    assert newest_at_each_window(untimed, late=2) == [0, 1, 2, 3, 4, 5]
    one_late = ReplayOptions(label_delay=1, ignore_label_times=True)
    one_late.check(timed)  # a delay in windows is allowed once the label times are ignored
    assert newest_at_each_window(one_late.applied(timed), late=2, label_delay=1) == [
        None,
        0,
        1,
        2,
        3,
        4,
    ]
    assert ReplayOptions().applied(timed) is timed
    with pytest.raises(ValidationError, match="no times to ignore"):
        at_once.check(config(time_column=None))


def _with_labels(root: Path, labels: pd.DataFrame) -> Config:
    root.mkdir()
    labels.to_parquet(root / "labels.parquet")
    cfg = config()
    return cfg.model_copy(update={"labels": cfg.labels.model_copy(update={"uri": str(root)})})


def test_ignoring_label_times_is_refused_where_only_the_times_can_decide(tmp_path: Path) -> None:
    # A corrected label (two rows for one id): only the times say which is the newest (1,
    # dated week 2); without them the join would keep the last row of the file (0).
    corrected = _with_labels(
        tmp_path / "corrected",
        pd.DataFrame({"app": ["a", "a", "b"], "outcome": [1, 0, 0], "known_week": [2, 1, 1]}),
    )
    with pytest.raises(ValidationError, match=r"1 id\(s\) have more than one label \(e.g. 'a'\)"):
        ReplayOptions(ignore_label_times=True).resolve(corrected)
    once = _with_labels(
        tmp_path / "once",
        pd.DataFrame({"app": ["a", "b"], "outcome": [1, 0], "known_week": [2, 1]}),
    )
    untimed, options = ReplayOptions(ignore_label_times=True).resolve(once)
    assert untimed.labels.time_column is None and not options.ignore_label_times
    # Provisional labels are those known by a window's end: there are none when labels come
    # whole, a number of windows late.
    with pytest.raises(ValidationError, match=r"provisional labels.*not --ignore-label-times"):
        ReplayOptions(ignore_label_times=True).resolve(once, provisional=True)
    with pytest.raises(ValidationError, match=r"provisional labels.*not --label-delay"):
        ReplayOptions(label_delay=1).resolve(config(time_column=None), provisional=True)
    assert ReplayOptions().resolve(once, provisional=True) == (once, ReplayOptions())
