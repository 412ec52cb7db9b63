"""The steps of one retraining cycle, as plain functions over files and a store.

Each KFP component calls exactly one of these (and the `retrain` CLI calls the same ones), so
the pipeline on a laptop, the pipeline on Kubeflow and a backtest all run the same code. A step
takes the normalised config text, reads its inputs from local paths (KFP artifact paths) or
the store, writes its outputs and a report (Markdown for the Kubeflow UI, JSON for machines),
and records its outcome under ``runs/<run_id>/<step>.json`` in the store (`records`), so a
failed step leaves the reason where `retrain status` and the CLI can find it.

One module per step (`_ingest`, `_label`, ...: use the functions exported here), beside the
public helpers every step shares: `records` (run records, report artifacts), `lease` (the run
lease of scheduled runs, and the exit task that releases it) and `resolve_rules` (the pure
rules for ``"auto"`` ids). What each step writes to shared state, and when:
- resolve (`resolve_run`): the run lease, and only for a scheduled run (window ``"auto"``). It
  runs first and turns ``"auto"`` run parameters into a window id and a run id (rules in
  `resolve_rules`); it records only when it resolved something, so runs given explicit ids
  keep exactly the records they had. A scheduled run then takes the run lease (`lease`), so
  it never overlaps a drift-launched run, or refuses to start while another run holds it.
- lease (`release_run_lease`): the pipeline's exit task; releases the lease only if this job
  took it.
- ingest: the schema, only on the very first run (create-only).
- label: the labelled window into the history store (create-only; re-runs are idempotent).
- train, evaluate: nothing shared (the model stays a run artifact until it is blessed).
- deploy: the registry (create-only version, alias by compare-and-swap, events) and then the
  rendered deployment; every write is idempotent, so re-running after a crash converges.
- rollout: the canary's analysis ticks, promotion or rollback (`retrain.rollout`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retrain._exports import lazy_exports

if TYPE_CHECKING:
    from retrain.steps._deploy import DeployOutcome, deploy
    from retrain.steps._evaluate import EvaluateOutcome, evaluate
    from retrain.steps._ingest import SCHEMA_KEY, ingest
    from retrain.steps._label import label
    from retrain.steps._resolve import ResolveOutcome, resolve_run
    from retrain.steps._rollout import RolloutOutcome, rollout
    from retrain.steps._state import restore_champion
    from retrain.steps._train import train
    from retrain.steps.lease import release_run_lease, run_lease_owner
    from retrain.steps.records import (
        StepOutcome,
        check_run_id,
        read_run,
        recorded_step,
        write_step_report,
    )

if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "_deploy": ("DeployOutcome", "deploy"),
            "_evaluate": ("EvaluateOutcome", "evaluate"),
            "_ingest": ("SCHEMA_KEY", "ingest"),
            "_label": ("label",),
            "_resolve": ("ResolveOutcome", "resolve_run"),
            "_rollout": ("RolloutOutcome", "rollout"),
            "_state": ("restore_champion",),
            "_train": ("train",),
            "lease": ("release_run_lease", "run_lease_owner"),
            "records": (
                "StepOutcome",
                "check_run_id",
                "read_run",
                "recorded_step",
                "write_step_report",
            ),
        },
    )

__all__ = [
    "SCHEMA_KEY",
    "DeployOutcome",
    "EvaluateOutcome",
    "ResolveOutcome",
    "RolloutOutcome",
    "StepOutcome",
    "check_run_id",
    "deploy",
    "evaluate",
    "ingest",
    "label",
    "read_run",
    "recorded_step",
    "release_run_lease",
    "resolve_run",
    "restore_champion",
    "rollout",
    "run_lease_owner",
    "train",
    "write_step_report",
]
