"""Launchers: what starts a retraining run once the policy decides to.

- `LocalLauncher`: one cycle on this machine (`retrain.runner.run_cycle`), to the end.
- `KfpLauncher`: a run on a Kubeflow Pipelines cluster through
  ``kfp.Client(host=...).create_run_from_pipeline_package(...)``; left running and polled.
- `NoLauncher`: decides and records, starts nothing (``--launch none``).
"""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from retrain.config import Config
from retrain.errors import EXIT_OK, TransientError, ValidationError
from retrain.triggers.controller import LaunchResult, RunStatus
from retrain.triggers.policy import Decision
from retrain.triggers.schedule import kfp_experiment

__all__ = [
    "KfpLauncher",
    "LocalLauncher",
    "NoLauncher",
    "kfp_client",
    "pipeline_package",
]

# KFP v2beta1 run states: anything not finished counts as in flight (unknown ones included,
# so a state added later never lets two runs overlap).
_FINISHED = {"SUCCEEDED": "succeeded", "SKIPPED": "succeeded", "FAILED": "failed",
             "CANCELED": "failed"}  # fmt: skip


class NoLauncher:
    """Records decisions without starting runs."""

    name = "none"

    def launch(self, snapshot: str, run_id: str, decision: Decision) -> LaunchResult:
        return LaunchResult(run_id, "skipped", detail="launching is off (--launch none)")

    def poll(self, run_id: str, external_id: str) -> RunStatus | None:
        return None


class LocalLauncher:
    """Runs one cycle on this machine and waits for it (kfp.local, or the steps directly)."""

    name = "local"

    def __init__(self, cfg: Config, *, engine: str = "kfp-local", log_dir: str | None = None):
        self.cfg = cfg
        self.engine = engine
        self.log_dir = log_dir

    def launch(self, snapshot: str, run_id: str, decision: Decision) -> LaunchResult:
        from retrain.deploy import require_deploy_target
        from retrain.runner import run_cycle

        try:  # before any step: the deploy step would fail only after training
            require_deploy_target(self.cfg)
        except ValidationError as err:
            return LaunchResult(run_id, "failed", detail=str(err))
        log = str(Path(self.log_dir) / f"{run_id}.log") if self.log_dir else None
        # The monitor took the run lease for this run before launching it.
        result = run_cycle(
            self.cfg, snapshot, engine=self.engine, run_id=run_id, log_path=log, take_lease=False
        )
        status: RunStatus = "succeeded" if result.exit_code == EXIT_OK else "failed"
        failed = result.failed_step
        detail = (
            f"{failed.get('step')} failed: {failed.get('message')}"
            if failed
            else ("deployed" if "deploy" in result.records else "kept the champion")
        )
        return LaunchResult(run_id, status, detail=detail)

    def poll(self, run_id: str, external_id: str) -> RunStatus | None:
        return None  # local runs finish inside launch()


def kfp_client(host: str, namespace: str | None = None) -> Any:
    """A `kfp.Client` for `host` (imported here: the library runs without kfp)."""
    import kfp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2 backends"
        try:
            if namespace:
                return kfp.Client(host=host, namespace=namespace)
            return kfp.Client(host=host)
        except Exception as err:  # connection refused, timeouts, healthz failures
            raise TransientError(f"KFP API at {host} is not reachable: {err}") from err


@contextlib.contextmanager
def pipeline_package(cfg: Config) -> Iterator[str]:
    """The compiled pipeline YAML: `triggers.kfp.pipeline_package`, or compiled now."""
    given = cfg.triggers.kfp.pipeline_package
    if given:
        if not Path(given).is_file():
            raise ValidationError(f"triggers.kfp.pipeline_package: no file at {given}")
        yield given
        return
    from retrain_components import DEFAULT_IMAGE
    from retrain_pipelines import compile_pipeline

    with tempfile.TemporaryDirectory(prefix="retrain-pipeline-") as tmp:
        out = compile_pipeline(
            Path(tmp) / "retrain-pipeline.yaml", image=cfg.triggers.kfp.image or DEFAULT_IMAGE
        )
        yield str(out)


class KfpLauncher:
    """Submits a run to Kubeflow Pipelines and leaves it running; `poll` reads its state."""

    name = "kfp"

    def __init__(
        self,
        cfg: Config,
        host: str,
        *,
        client_factory: Callable[[str, str | None], Any] = kfp_client,
    ) -> None:
        self.cfg = cfg
        self.host = host
        self._factory = client_factory
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._factory(self.host, self.cfg.triggers.kfp.namespace)
        return self._client

    def launch(self, snapshot: str, run_id: str, decision: Decision) -> LaunchResult:
        from retrain.deploy import require_deploy_target

        try:  # before compiling or submitting: the run's deploy step would fail after training
            require_deploy_target(self.cfg, cluster=True)
        except ValidationError as err:
            return LaunchResult(run_id, "failed", detail=str(err))
        k = self.cfg.triggers.kfp
        with pipeline_package(self.cfg) as package:
            try:
                # Race-free: models launching in one pass may each create it first.
                experiment = kfp_experiment(self.client, k.experiment, k.namespace)
                run = self.client.create_run_from_pipeline_package(
                    package,
                    arguments={
                        "config_yaml": self.cfg.to_yaml(),
                        "window_id": snapshot,
                        "run_id": run_id,
                    },
                    run_name=run_id,
                    experiment_id=str(experiment.experiment_id),
                    namespace=k.namespace,
                    service_account=k.service_account,
                )
            except Exception as err:
                raise TransientError(f"KFP did not accept run {run_id}: {err}") from err
        return LaunchResult(
            run_id, "running", external_id=str(run.run_id), detail=f"KFP run {run.run_id}"
        )

    def poll(self, run_id: str, external_id: str) -> RunStatus | None:
        try:
            run = self.client.get_run(external_id)
        except Exception as err:
            raise TransientError(f"cannot read KFP run {external_id}: {err}") from err
        state = str(getattr(run, "state", "") or "")
        finished = _FINISHED.get(state.upper())
        return "running" if finished is None else finished  # type: ignore[return-value]
