"""`retrain deploy status | advance | promote | rollback` and the KFP rollout component."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from rollout_support import (
    labelled_frame,
    make_cfg,
    register_model,
    serve,
    write_history,
)

from required import require
from retrain.cli import main
from retrain.config import Config
from retrain.registry import Registry
from retrain.rollout.controller import lock_key
from retrain.rollout.lock import StoreLock
from retrain.storage import LocalStorage


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Config, Path, Registry]:
    # interval 0: every `advance` runs an analysis at once.
    cfg = make_cfg(tmp_path, interval_seconds=0, replay={"rows": 600})
    path = tmp_path / "loans.yaml"
    path.write_text(cfg.to_yaml())
    store = LocalStorage(cfg.storage_root)
    train = labelled_frame(seed=1, n=400)
    register_model(store, cfg, "good-1", train)
    register_model(store, cfg, "good-2", labelled_frame(seed=2, n=400))
    register_model(store, cfg, "flipped", train, flip=True)
    # ~600 evaluation rows (a 0.2 share by id): enough labels for the quality check.
    write_history(store, "0", labelled_frame(seed=10, n=3000))
    reg = Registry(store, cfg.name)
    serve(reg, "good-1", "good-2")
    return cfg, path, reg


def test_status_before_any_rollout(
    setup: tuple[Config, Path, Registry], capsys: pytest.CaptureFixture[str]
) -> None:
    _, path, _ = setup
    assert main(["deploy", "status", "--config", str(path), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["champion"], status["canary"], status["rollout"]) == ("good-1", "good-2", None)
    assert main(["deploy", "status", "--config", str(path)]) == 0
    assert "no rollout yet" in capsys.readouterr().out


def test_rollback_needs_a_reason(setup: tuple[Config, Path, Registry]) -> None:
    _, path, _ = setup
    with pytest.raises(SystemExit) as exit_:
        main(["deploy", "rollback", "--config", str(path)])
    assert exit_.value.code == 2


@pytest.mark.integration  # commits to a real git repository
def test_advance_to_promotion_then_manual_rollback(
    setup: tuple[Config, Path, Registry], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, path, reg = setup
    messages = []
    for _ in range(3):
        assert main(["deploy", "advance", "--config", str(path)]) == 0
        messages.append(capsys.readouterr().out.strip())
    assert "canary to 25%" in messages[0] and "canary to 50%" in messages[1]
    assert messages[2].startswith("canary good-2 healthy through 3 steps")
    assert reg.get_alias("champion").version == "good-2"
    repo = Path(str(cfg.deploy.gitops_repo))
    manifest = yaml.safe_load((repo / "deployments/models/loans.yaml").read_text())
    assert [(p["name"], p["traffic"]) for p in manifest["spec"]["predictors"]] == [
        ("champion", 100)
    ]
    log = subprocess.run(
        ["git", "-C", str(repo), "log", "--format=%s"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert [line.split(" (")[0] for line in log] == [
        "retrain rollout: loans -> champion good-2 100%",
        "retrain rollout: loans -> champion good-1 50%, canary good-2 50%",
        "retrain rollout: loans -> champion good-1 75%, canary good-2 25%",
        "retrain rollout: loans -> champion good-1 90%, canary good-2 10%",
    ]

    serve(reg, "good-2", "flipped")
    assert main(["deploy", "rollback", "--config", str(path), "--reason", "pager fired"]) == 0
    assert "rolled back by hand: pager fired" in capsys.readouterr().out
    assert reg.get_alias("canary").version is None
    assert main(["deploy", "promote", "--config", str(path)]) == 2
    assert "no canary of model 'loans' to promote" in capsys.readouterr().err


def test_a_held_lock_exits_75(
    setup: tuple[Config, Path, Registry], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, path, _ = setup
    StoreLock(LocalStorage(cfg.storage_root), lock_key(cfg.name), ttl_seconds=600).acquire()
    assert main(["deploy", "advance", "--config", str(path)]) == 75
    assert "is locked by" in capsys.readouterr().err


# --- one tick for many models ------------------------------------------------------------------


def _two_models(tmp_path: Path) -> tuple[Path, dict[str, LocalStorage]]:
    """A directory of two models' configs (nothing deployed yet), each with its own store."""
    configs = tmp_path / "configs"
    configs.mkdir()
    stores = {}
    for name in ("fraud", "loans"):
        cfg = make_cfg(tmp_path / name)
        deploy = cfg.deploy.model_copy(update={"deployment_name": name})
        cfg = cfg.model_copy(update={"name": name, "deploy": deploy})
        (configs / f"{name}.yaml").write_text(cfg.to_yaml())
        stores[name] = LocalStorage(cfg.storage_root)
    return configs, stores


def _ticked(store: LocalStorage, model: str) -> bool:
    """The model's rollout lock was taken by a tick, and given back."""
    held = StoreLock(store, lock_key(model), ttl_seconds=600).holder()
    return held is not None and held["released"] is True


def test_advance_ticks_every_model_of_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configs, stores = _two_models(tmp_path)
    assert main(["deploy", "advance", "--config", str(configs), "--workers", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "fraud: no canary in flight; nothing is deployed",
        "loans: no canary in flight; nothing is deployed",
        "ticked 2 models: 2 ok (exit 0)",
    ]
    assert all(_ticked(store, name) for name, store in stores.items())


def test_one_models_held_lock_does_not_stop_the_others_tick(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configs, stores = _two_models(tmp_path)
    StoreLock(stores["fraud"], lock_key("fraud"), ttl_seconds=600).acquire()
    assert main(["deploy", "advance", "--config", str(configs)]) == 75  # the next tick retries
    captured = capsys.readouterr()
    assert (
        "fraud: advance failed: LockBusy: the rollout of model 'fraud' is locked by" in captured.err
    )
    assert captured.out.splitlines() == [
        "loans: no canary in flight; nothing is deployed",
        "ticked 2 models: 1 ok (exit 75)",
    ]
    assert _ticked(stores["loans"], "loans") and not _ticked(stores["fraud"], "fraud")

    assert main(["deploy", "advance", "--config", str(configs), "--json"]) == 75
    captured = capsys.readouterr()
    fraud, loans = json.loads(captured.out)
    assert (fraud["model"], fraud["exit_code"]) == ("fraud", 75)
    assert "is locked by" in fraud["error"] and "result" not in fraud
    assert loans["model"] == "loans" and "error" not in loans
    assert loans["result"] == {
        "in_flight": False,
        "actions": [],
        "message": "no canary in flight; nothing is deployed",
        "rollout": None,
    }
    assert "fraud: advance failed" in captured.err


def test_an_invalid_config_is_refused_alone_and_the_others_are_ticked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One model's canary must not freeze because another's config was edited badly.
    configs, stores = _two_models(tmp_path)
    (configs / "fraud.yaml").write_text("name: fraud\n")
    assert main(["deploy", "advance", "--config", str(configs)]) == 2  # bad input, nothing worse
    captured = capsys.readouterr()
    assert "fraud.yaml: advance failed: ValidationError:" in captured.err
    assert "fraud.yaml is invalid" in captured.err
    assert captured.out.splitlines() == [
        "loans: no canary in flight; nothing is deployed",
        "ticked 2 models: 1 ok (exit 2)",
    ]
    assert _ticked(stores["loans"], "loans") and not _ticked(stores["fraud"], "fraud")
    # Given alone, an invalid config fails as it always has.
    assert main(["deploy", "advance", "--config", str(configs / "fraud.yaml")]) == 2


#: Runs `retrain deploy ...` with the rollout tick's first step replaced by one that gets a
#: SIGTERM (a Job's deadline, a node drained) while the model's rollout lock is held.
_SIGTERM_IN_TICK = """
import os, signal, sys, time
from retrain.cli import main
from retrain.rollout.controller import RolloutController

import retrain.rollout.providers as providers

def terminated_meanwhile(original):
    def call(*args, **kwargs):
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the SIGTERM arrives here
        return original(*args, **kwargs)
    return call

sent = []
if os.environ["SIGTERM_IN"] == "prepare":  # the tick's first step, the lock held
    RolloutController._prepare = terminated_meanwhile(RolloutController._prepare)
else:  # a replayed request of the canary analysis
    providers.predict_scores = terminated_meanwhile(providers.predict_scores)
sys.exit(main(sys.argv[1:]))
"""


def _advance_with_sigterm(
    tmp_path: Path, *config: str, at: str = "prepare"
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "advance_sigterm.py"
    script.write_text(_SIGTERM_IN_TICK)
    return subprocess.run(
        [sys.executable, str(script), "deploy", "advance", "--workers", "1", "--config", *config],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SIGTERM_IN": at},
    )


def test_a_sigterm_during_a_tick_lets_it_finish_and_give_its_lock_back(tmp_path: Path) -> None:
    # Killed at the Job's deadline, a tick used to hold its model's lock for the lease's
    # TTL, so the next tick (and the pipeline's rollout step) waited on it.
    configs, stores = _two_models(tmp_path)
    done = _advance_with_sigterm(tmp_path, str(configs / "loans.yaml"))
    assert done.returncode == 0, done.stderr  # the tick finished
    assert done.stdout.strip() == "no canary in flight; nothing is deployed"
    assert _ticked(stores["loans"], "loans")  # taken, and given back


@pytest.mark.integration  # commits to a real git repository
def test_a_sigterm_during_an_analysis_gives_the_verdict_of_the_whole_analysis(
    setup: tuple[Config, Path, Registry],
) -> None:
    # Raised inside the analysis, the stop was recorded as the canary failing a request: a
    # healthy canary's analysis failed, and twice in a row rolled it back.
    cfg, path, reg = setup
    done = _advance_with_sigterm(path.parent, str(path), at="analysis")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("step 1/3 (10%) passed"), done.stdout
    assert "canary to 25%" in done.stdout
    assert reg.get_alias("canary").version == "good-2"
    assert _ticked(LocalStorage(cfg.storage_root), cfg.name)


def test_a_sigterm_during_a_pass_starts_no_other_tick_and_names_it(tmp_path: Path) -> None:
    configs, stores = _two_models(tmp_path)
    done = _advance_with_sigterm(tmp_path, str(configs))
    assert done.returncode == 75, done.stderr  # a re-run serves the model not reached
    # Neither model was ticked before, so they start in the configs' order.
    assert done.stdout.splitlines() == [
        "fraud: no canary in flight; nothing is deployed",
        "ticked 2 models: 1 ok (exit 75)",
    ]
    assert (
        "loans: advance failed: NotStarted: not started: the pass was asked to stop (SIGTERM)"
        in done.stderr
    )
    assert _ticked(stores["fraud"], "fraud")
    assert StoreLock(stores["loans"], lock_key("loans"), ttl_seconds=600).holder() is None


def test_advance_starts_no_tick_after_its_deadline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configs, stores = _two_models(tmp_path)
    assert main(["deploy", "advance", "--config", str(configs), "--deadline", "0s"]) == 0
    captured = capsys.readouterr()
    for name in ("fraud", "loans"):
        assert (
            f"{name}: not reached: the pass's deadline of 0 s passed before its turn; "
            "the next pass serves it first"
        ) in captured.err
    assert "ticked 2 models: 0 ok, 2 not reached before --deadline (exit 0)" in captured.out
    assert not any(_ticked(store, name) for name, store in stores.items())
    assert main(["deploy", "advance", "--config", str(configs), "--deadline", "3m"]) == 0
    assert all(_ticked(store, name) for name, store in stores.items())
    assert main(["deploy", "advance", "--config", str(configs), "--deadline", "soon"]) == 2
    assert "--deadline: 'soon' is not a duration" in capsys.readouterr().err


def _ticked_order(stores: dict[str, LocalStorage]) -> list[str]:
    """The models in the order their rollout locks were last given back."""
    released = {
        name: StoreLock(store, lock_key(name), ttl_seconds=600).holder()["expires_at"]  # type: ignore[index]
        for name, store in stores.items()
    }
    return sorted(released, key=lambda name: datetime.fromisoformat(released[name]))


def test_the_model_ticked_longest_ago_goes_first(tmp_path: Path) -> None:
    configs, stores = _two_models(tmp_path)
    # loans was served a moment ago (a tick, a promote, a pipeline's rollout step); fraud never.
    assert main(["deploy", "advance", "--config", str(configs / "loans.yaml")]) == 0
    assert main(["deploy", "advance", "--config", str(configs), "--workers", "1"]) == 0
    assert _ticked_order(stores) == ["fraud", "loans"]  # one at a time: fraud's tick first
    # Serve fraud alone: now loans is the one served longest ago, though second in the configs.
    assert main(["deploy", "advance", "--config", str(configs / "fraud.yaml")]) == 0
    assert main(["deploy", "advance", "--config", str(configs), "--workers", "1"]) == 0
    assert _ticked_order(stores) == ["loans", "fraud"]  # a deadline cannot starve loans


def test_component_is_a_thin_adapter_without_runtime_install() -> None:
    require("kfp", "the component is built with the KFP SDK (extra 'kfp')")
    from retrain_components import container_components

    component = container_components("r.example/retrain:1.0").ops["rollout"]
    spec = component.component_spec
    assert set(spec.inputs) == {"config_yaml", "run_id", "max_seconds"}
    assert set(spec.outputs) == {"report", "html", "details", "summary"}
    container = spec.implementation.container
    assert container.image == "r.example/retrain:1.0"
    assert container.command == ["python", "-m", "retrain_components.launcher"]


def test_a_directory_of_one_model_answers_as_a_directory_of_many(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The output's shape follows how the configs are named, not how many there are: a
    ConfigMap directory that holds one model today gives the list it will give with two."""
    configs, _ = _two_models(tmp_path)
    (configs / "loans.yaml").unlink()
    assert main(["deploy", "advance", "--config", str(configs), "--json"]) == 0
    (only,) = json.loads(capsys.readouterr().out)
    assert only["model"] == "fraud" and "error" not in only
    assert main(["deploy", "advance", "--config", str(configs / "fraud.yaml"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["message"].startswith("no canary in flight")
    assert main(["deploy", "advance", "--config", str(configs)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "fraud: no canary in flight; nothing is deployed",
        "ticked 1 model: 1 ok (exit 0)",
    ]
