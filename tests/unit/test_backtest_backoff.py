"""The replay hands the drift back-off its evidence: which launch made the serving champion
(``serving_from``) and which one a canary in analysis (``canary_from``), from the replay's
own launches and the registry's canary alias.

The replay's drift decision and its record of each launch run here on a real store and
registry, without the steps: every window drifts, a launch's training outcome is given
(a challenger rejected, deployed, or a failed run) and the aliases move as deploy and the
rollout controller move them. No labelled check is measurable (the champion is not loaded),
so only the drift signal and its back-off decide.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from retrain.backtest.policies import PolicySpec
from retrain.backtest.records import WindowRecord
from retrain.backtest.replay import (
    _drift_decision,
    _record_launch,
    _ReplayInputs,
    _ReplayState,
    _serving_launches,
)
from retrain.backtest.timing import ReplayOptions
from retrain.config import config_from_dict
from retrain.registry import Registry
from retrain.storage import open_storage

WINDOWS = tuple(str(w) for w in range(10))


def replay_inputs(root: Path) -> _ReplayInputs:
    """A drift policy's replay over weekly windows: 2 drifted windows in a row launch,
    twice as many after a challenger not deployed (the default limit: 4)."""
    cfg = config_from_dict(
        {
            "name": "loans",
            "task": "classification",
            "target": "defaulted",
            "storage_root": str(root / "store"),
            "data": {
                "uri": "events",
                "id_column": "app",
                "time_column": "week",
                "time_kind": "period",
                "window_size": 1,
                "features": {"x": "numeric"},
            },
            "labels": {"uri": "labels", "id_column": "app", "label_column": "outcome"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "deploy": {"deployment_name": "loans"},
            "triggers": {"drift": True, "drift_windows": 2, "cooldown": "1h", "budget_runs": 100},
        }
    )
    store = open_storage(cfg.storage_root)
    return _ReplayInputs(
        spec=PolicySpec("drift"),
        windows=WINDOWS,
        cfg=cfg,
        text="",
        label_text="",
        store=store,
        registry=Registry(store, cfg.name),
        labels=pd.DataFrame(),
        work=root / "work",
        options=ReplayOptions(),
        cache=None,
        window_seconds=7 * 86400,
    )


class Replay:
    """The drift policy's side of a replay: the first model (launched at window 0, with no
    champion yet) serves; every later window drifts."""

    def __init__(self, root: Path) -> None:
        self.run = replay_inputs(root)
        self.state = _ReplayState()
        self.registry = self.run.registry
        self.trained(0, "v0", deployed=True)
        self.promote()

    @property
    def champion(self) -> str | None:
        return self.registry.get_alias("champion").version

    def decide(self, i: int) -> str:
        """The drift policy's rule at window `i` (labels one window late)."""
        champion = self.champion
        assert champion is not None
        rec = WindowRecord(index=i, window=WINDOWS[i], drift=True)
        launch, why = _drift_decision(self.run, self.state, i, i - 1, champion, rec)
        rule = why.split(":")[0]
        assert launch == (rule == "drift")
        return rule

    def trained(self, i: int, version: str | None, *, deployed: bool) -> None:
        """The launch at window `i` trained `version` (None: its run failed); deployed, it is
        the canary, as `steps.deploy` leaves it."""
        champion = self.champion
        if version is not None and deployed:
            self.registry.register(version, {"model.json": version.encode()})
            canary = self.registry.get_alias("canary")
            self.registry.set_alias("canary", version, canary.generation)
        rec = WindowRecord(
            index=i,
            window=WINDOWS[i],
            version=version,
            deployed=version if deployed else None,
        )
        _record_launch(self.run, self.state, i, max(i - 1, 0), champion, rec)

    def promote(self) -> None:
        """The canary becomes the champion, as the rollout controller promotes it."""
        canary = self.registry.get_alias("canary")
        assert canary.version is not None
        champion = self.registry.get_alias("champion")
        self.registry.set_alias("champion", canary.version, champion.generation)
        self.registry.set_alias("canary", None, canary.generation)


def test_a_rejected_drift_challenger_leaves_the_old_launch_serving_and_the_back_off_applies(
    tmp_path: Path,
) -> None:
    replay = Replay(tmp_path)
    rules = [replay.decide(1), replay.decide(2)]
    replay.trained(2, "v2", deployed=False)  # trained, not blessed
    rules += [replay.decide(i) for i in range(3, 7)]
    # 2 drifted windows, then 4: the launch at window 2 made no model that serves.
    assert rules == ["hysteresis", "drift", "backoff", "backoff", "backoff", "drift"]
    trigger = replay.state.trigger
    assert (trigger.drift_serving, trigger.drift_backoff) == ("0", 1)


def test_a_deployed_drift_challenger_is_waited_for_as_a_canary_and_resets_once_it_serves(
    tmp_path: Path,
) -> None:
    replay = Replay(tmp_path)
    rules = [replay.decide(1), replay.decide(2)]
    replay.trained(2, "v2", deployed=True)  # in analysis for two windows
    rules += [replay.decide(3), replay.decide(4)]
    assert replay.state.trigger.drift_pending == ("2", "4")  # the canary's outcome is not known
    replay.trained(4, "v4", deployed=False)
    replay.promote()  # v2 serves: the launch at window 4 is moot, the count starts again
    rules += [replay.decide(5), replay.decide(6)]
    assert rules == ["hysteresis", "drift", "hysteresis", "drift", "hysteresis", "drift"]
    trigger = replay.state.trigger
    assert (trigger.drift_serving, trigger.drift_backoff) == ("2", 0)
    assert trigger.drift_pending == ("6",)


def test_a_drift_launch_whose_run_failed_is_not_counted_as_a_rejection(tmp_path: Path) -> None:
    replay = Replay(tmp_path)
    rules = [replay.decide(1), replay.decide(2)]
    replay.trained(2, None, deployed=False)  # its training failed: no challenger was judged
    rules += [replay.decide(3), replay.decide(4)]
    assert rules == ["hysteresis", "drift", "hysteresis", "drift"]
    assert replay.state.trigger.snapshots["2"] == "failed"
    assert replay.state.trigger.drift_backoff == 0


@pytest.mark.parametrize(
    ("champion", "canary", "expected"),
    [
        ("v1", None, ("w1", None)),
        ("v1", "v3", ("w1", "w3")),
        ("v1", "v1", ("w1", None)),  # the canary alias on the champion: nothing in analysis
        ("v0", "v3", (None, "w3")),  # a champion no launch of the replay made
        ("v1", "v9", ("w1", None)),
    ],
)
def test_the_launches_behind_the_champion_and_the_canary_come_from_the_launch_map(
    champion: str, canary: str | None, expected: tuple[str | None, str | None]
) -> None:
    launched_for = {"v1": ("w1", 0), "v3": ("w3", 2)}
    details = _serving_launches(launched_for, champion, canary)
    assert (details["serving_from"], details["canary_from"]) == expected
