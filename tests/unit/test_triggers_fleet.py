"""One monitor (and one schedule reconciler) for many models: configs, pool, leases, metrics."""

from __future__ import annotations

import threading
import time
from itertools import pairwise
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from retrain.cli import main
from retrain.config import Config
from retrain.errors import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_TRANSIENT,
    EXIT_VALIDATION,
    TransientError,
    ValidationError,
)
from retrain.triggers.fleet import (
    NotStarted,
    config_paths,
    fleet_exit_code,
    load_configs,
    load_fleet,
    run_for_each,
)
from retrain.triggers.metrics import MonitorMetrics
from tests.unit.test_triggers_monitor import write_case


def fleet(tmp_path: Path, names: list[str]) -> Path:
    """A directory of configs, one per model, each with its own data and store."""
    configs = tmp_path / "configs"
    configs.mkdir()
    for name in names:
        case = tmp_path / name
        case.mkdir()
        raw = yaml.safe_load(Path(write_case(case)).read_text())
        raw["name"] = name
        for section, key in [("data", "uri"), ("labels", "uri")]:
            raw[section][key] = str(case / raw[section][key])
        raw["storage_root"] = str(case / "store")
        raw["deploy"]["gitops_repo"] = str(case / "gitops")
        (configs / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    (configs / ".hidden.yaml").write_text("not: a config")
    (configs / "README.md").write_text("not a config either")
    return configs


def test_config_paths_take_files_and_directories(tmp_path: Path) -> None:
    configs = fleet(tmp_path, ["b", "a"])
    extra = tmp_path / "a" / "toy.yaml"
    assert config_paths([str(configs), str(extra)]) == [
        configs / "a.yaml",
        configs / "b.yaml",
        extra,
    ]
    with pytest.raises(ValidationError, match="not found"):
        config_paths([str(tmp_path / "nope.yaml")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValidationError, match=r"holds no \.yaml"):
        config_paths([str(tmp_path / "empty")])
    # The same model twice would share one lease and one set of series: refused.
    with pytest.raises(ValidationError, match=r"unique.*\['a'\]"):
        load_configs([str(configs), str(configs / "a.yaml")])


def test_monitor_checks_every_model_with_its_own_lease_and_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ["m1", "m2", "m3"]
    configs = fleet(tmp_path, names)
    code = main(
        ["monitor", "--once", "--config", str(configs), "--launch", "none", "--workers", "2"]
    )
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    for name in names:
        line = next(x for x in out.splitlines() if x.startswith(f"{name}: window "))
        # The newest over: 5, the source's last, may still be filling.
        assert line.startswith(f"{name}: window 4:"), line
        assert line.endswith("; window 5 still open, not judged"), line
        store = tmp_path / name / "store"
        assert list((store / "monitor").glob("*.json"))  # each model's report in its store
    assert "checked 3 models: 3 ok (exit 0)" in out


def test_one_broken_model_does_not_stop_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = fleet(tmp_path, ["good", "bad"])
    raw = yaml.safe_load((configs / "bad.yaml").read_text())
    raw["data"]["uri"] = str(tmp_path / "missing")
    (configs / "bad.yaml").write_text(yaml.safe_dump(raw))
    code = main(["monitor", "--once", "--config", str(configs), "--launch", "none"])
    captured = capsys.readouterr()
    assert code == EXIT_VALIDATION
    assert "good: window 4:" in captured.out
    assert "bad: check failed: data source not found" in captured.err
    assert list((tmp_path / "good" / "store" / "monitor").glob("*.json"))


def test_a_config_that_cannot_serve_is_refused_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = fleet(tmp_path, ["good", "bad", "twin"])
    (configs / "bad.yaml").write_text("name: bad\n")  # invalid
    twin = yaml.safe_load((configs / "twin.yaml").read_text())
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(twin))  # a second config of "twin"
    loaded = load_fleet([str(configs), str(tmp_path / "other.yaml")])
    assert [c.name for c in loaded.configs] == ["good"]
    assert sorted(r.model for r in loaded.refused) == ["bad.yaml", "other.yaml", "twin.yaml"]
    assert all(isinstance(r.error, ValidationError) for r in loaded.refused)
    code = main(["monitor", "--once", "--config", str(configs), "--launch", "none"])
    captured = capsys.readouterr()
    assert code == EXIT_VALIDATION
    assert "good: window 4:" in captured.out
    assert "bad.yaml: check failed:" in captured.err and "bad.yaml is invalid" in captured.err
    assert "checked 3 models: 2 ok (exit 2)" in captured.out
    assert list((tmp_path / "good" / "store" / "monitor").glob("*.json"))
    # A file that cannot even be decoded is refused alone too.
    (configs / "bad.yaml").write_bytes(b"name: caf\xe9\n")
    code = main(["monitor", "--once", "--config", str(configs), "--launch", "none"])
    captured = capsys.readouterr()
    assert code == EXIT_VALIDATION and "bad.yaml: check failed:" in captured.err
    assert "checked 3 models: 2 ok (exit 2)" in captured.out
    # With no valid config at all there is nothing to serve: it fails at once, even a
    # monitor meant to run for ever.
    for name in ("good", "twin"):
        (configs / f"{name}.yaml").unlink()
    every = ["monitor", "--every", "1s", "--config", str(configs), "--launch", "none"]
    assert main(every) == EXIT_VALIDATION


def test_pool_is_bounded_and_keeps_the_configs_order(tmp_path: Path) -> None:
    configs = load_configs([str(fleet(tmp_path, [f"m{i}" for i in range(6)]))])
    lock, active, peak = threading.Lock(), [0], [0]

    def work(cfg: Config) -> str:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        if cfg.name == "m3":
            raise TransientError("store unreachable")
        return cfg.name

    results = run_for_each(configs, work, workers=2)
    assert [r.model for r in results] == [f"m{i}" for i in range(6)]
    assert [r.result for r in results] == ["m0", "m1", "m2", None, "m4", "m5"]
    assert 1 <= peak[0] <= 2
    assert fleet_exit_code(results) == EXIT_TRANSIENT
    assert fleet_exit_code(results[:3]) == EXIT_OK


def test_no_model_starts_after_the_deadline_and_the_ones_left_out_go_first_next(
    tmp_path: Path,
) -> None:
    # A rollout Job killed at its activeDeadlineSeconds must not leave the same models
    # unticked on every pass: none starts after the pass's deadline, and the models served
    # longest ago start first, so each is served within a bounded number of passes.
    names = ["a", "b", "c", "d", "e"]
    configs = load_configs([str(fleet(tmp_path, names))])
    now = [0.0]
    last_served = dict.fromkeys(names, -1)
    served: dict[str, list[int]] = {name: [] for name in names}

    for turn in range(9):
        now[0] = 0.0

        def work(cfg: Config, turn: int = turn) -> str:
            now[0] += 100.0  # each model's work takes 100 s
            last_served[cfg.name] = turn
            served[cfg.name].append(turn)
            return cfg.name

        results = run_for_each(
            configs,
            work,
            workers=1,
            deadline=150.0,
            clock=lambda: now[0],
            priority=lambda cfg: last_served[cfg.name],
        )
        assert [r.model for r in results] == names  # the configs' order
        assert sum(r.ok for r in results) == 2  # at 0 s and 100 s; at 200 s it has passed
        for r in results:
            if not r.ok:
                assert r.error is None and r.result is None
                assert (
                    r.skipped == "not reached: the pass's deadline of 150 s passed before its turn"
                )
        assert fleet_exit_code(results) == EXIT_OK  # not a failure: the next pass serves them
    for name in names:  # five models, two a pass: each served at least every third pass
        turns = [-1, *served[name], 9]
        assert max(b - a for a, b in pairwise(turns)) <= 3, (name, served[name])
    # Without a deadline or a priority every model starts, in the configs' order.
    order: list[str] = []
    results = run_for_each(configs, lambda cfg: order.append(cfg.name), workers=1)
    assert order == names and all(r.ok for r in results)


def test_the_priorities_are_read_at_once_whatever_the_workers(tmp_path: Path) -> None:
    # Each is a read of one small object from the model's store (GCS: a round trip or two);
    # read one after another they would eat into the pass's deadline with many models.
    configs = load_configs([str(fleet(tmp_path, ["a", "b", "c"]))])
    together = threading.Barrier(3, timeout=10)  # broken unless all three reads overlap

    def priority(cfg: Config) -> str:
        together.wait()
        return cfg.name

    results = run_for_each(configs, lambda cfg: cfg.name, workers=1, priority=priority)
    assert [r.result for r in results] == ["a", "b", "c"]


@pytest.mark.parametrize("workers", [1, 3])
def test_once_asked_to_stop_no_model_starts_and_those_in_progress_finish(
    tmp_path: Path, workers: int
) -> None:
    configs = load_configs([str(fleet(tmp_path, [f"m{i}" for i in range(6)]))])
    stop = threading.Event()
    finished: list[str] = []

    def work(cfg: Config) -> str:
        stop.set()  # a SIGTERM while the first models run
        time.sleep(0.05)
        finished.append(cfg.name)
        return cfg.name

    results = run_for_each(configs, work, workers=workers, stop=stop.is_set)
    started = [r.model for r in results if r.ok]
    assert sorted(finished) == sorted(started) and 1 <= len(started) <= workers
    left = [r for r in results if not r.ok]
    assert len(left) == 6 - len(started)
    assert all(isinstance(r.error, NotStarted) and "SIGTERM" in str(r.error) for r in left)
    assert fleet_exit_code(results) == EXIT_TRANSIENT


def test_exit_code_ranks_bugs_over_retries_over_bad_input(tmp_path: Path) -> None:
    configs = load_configs([str(fleet(tmp_path, ["a", "b", "c"]))])
    errors = {"a": ValidationError("bad"), "b": TransientError("later"), "c": KeyError("bug")}

    def work(cfg: Config) -> None:
        raise errors[cfg.name]

    assert fleet_exit_code(run_for_each(configs, work, workers=3)) == EXIT_INTERNAL
    assert fleet_exit_code(run_for_each(configs[:2], work, workers=3)) == EXIT_TRANSIENT
    assert fleet_exit_code(run_for_each(configs[:1], work, workers=3)) == EXIT_VALIDATION


def test_metrics_of_many_models_share_one_registry_labelled_by_model() -> None:
    shared = MonitorMetrics("a")
    for name, share in [("a", 0.25), ("b", 0.75)]:
        shared.for_model(name).observe_drift([("x", "psi", share, share > 0.5)], share > 0.5, share)
    text = generate_latest(shared.registry).decode()
    assert 'retrain_drift_share_drifted{model="a"} 0.25' in text
    assert 'retrain_drift_share_drifted{model="b"} 0.75' in text
    assert 'retrain_drift_dataset_drifted{model="b"} 1.0' in text
