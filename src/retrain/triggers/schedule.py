"""Declarative schedules: the config's cron schedules reconciled with KFP recurring runs.

KFP recurring runs cannot be updated in place, and deleting one kills its run in flight, so
`retrain schedule apply` reconciles like a GitOps controller, idempotently:

- a schedule missing on the cluster is created (``max_concurrency=1``, ``no_catchup=True``,
  the 5-field cron converted to KFP's 6 fields);
- one that is there and equal is left alone (a second `apply` sends no writes);
- one that changed is replaced (delete, then create) only when none of its runs is in flight;
  otherwise the change is deferred and `apply` says so (and exits 75: try again later);
- ours that are no longer in the config are deleted, under the same in-flight rule.

"Ours" are recurring runs named ``<prefix><model>-<schedule>``; equality is a sha256 of
everything that defines the run (cron, mode, concurrency, catch-up, parameters, the pipeline),
kept in the recurring run's description. `plan_schedules` is pure; `KfpSchedules` does the I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from retrain.config import Config
from retrain.errors import TransientError
from retrain.settings.cron import to_kfp_cron

__all__ = [
    "SCHEDULED_RUN_ID",
    "SCHEDULED_WINDOW",
    "DesiredSchedule",
    "ExistingSchedule",
    "KfpSchedules",
    "ScheduleAction",
    "SchedulePlan",
    "apply_plan",
    "desired_schedules",
    "kfp_experiment",
    "make_plan",
    "plan_schedules",
    "schedule_prefix",
]

#: Run parameters of scheduled runs: KFP v2 does not expand [[ScheduledTime]] macros, so the
#: pipeline's first task (`retrain.steps.resolve_run`, rules in `retrain.steps.resolve_rules`)
#: turns them into the newest complete window at the run's time and a run id derived from the
#: KFP job id.
SCHEDULED_WINDOW = "auto"
SCHEDULED_RUN_ID = "auto"

_FINGERPRINT = re.compile(r"spec-sha256: ([0-9a-f]{64})")
#: The model a managed recurring run belongs to, as its description names it.
_MODEL = re.compile(r"Managed by `retrain schedule apply` for model (\S+?): schedule ")
# Run states that are over; any other (unknown ones too) counts as in flight.
_FINISHED_STATES = frozenset({"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"})
_MAX_PAGES = 50

ActionKind = Literal["create", "keep", "replace", "delete", "defer"]


@dataclass(frozen=True)
class DesiredSchedule:
    """A recurring run as the config wants it."""

    name: str
    cron: str  # KFP's 6-field form
    source_cron: str  # as written in the config (5 fields)
    enabled: bool
    fingerprint: str
    description: str
    parameters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExistingSchedule:
    """A recurring run found on the cluster."""

    id: str
    name: str
    cron: str | None
    enabled: bool
    fingerprint: str | None
    #: The model its description says it was made for (None: no such description).
    model: str | None = None


@dataclass(frozen=True)
class ScheduleAction:
    """One step of a plan: what to do with one schedule name, and why."""

    kind: ActionKind
    name: str
    reason: str
    desired: DesiredSchedule | None = None
    delete_ids: tuple[str, ...] = ()

    def line(self) -> str:
        ids = f" [{', '.join(self.delete_ids)}]" if self.delete_ids else ""
        return f"{self.kind:<8} {self.name}: {self.reason}{ids}"


def schedule_prefix(cfg: Config) -> str:
    """The name prefix of this model's recurring runs."""
    return f"{cfg.triggers.kfp.schedule_prefix}{cfg.name}-"


def _sha256_file(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def desired_schedules(cfg: Config, package_sha256: str) -> list[DesiredSchedule]:
    """The recurring runs the config asks for (`package_sha256` names the pipeline)."""
    parameters = {
        "config_yaml": cfg.to_yaml(),
        "window_id": SCHEDULED_WINDOW,
        "run_id": SCHEDULED_RUN_ID,
    }
    out = []
    for s in cfg.triggers.schedules:
        cron = to_kfp_cron(s.cron)
        spec = {
            "cron": cron,
            "enabled": s.enabled,
            "max_concurrency": 1,
            "no_catchup": True,
            "parameters": parameters,
            "pipeline_sha256": package_sha256,
            "service_account": cfg.triggers.kfp.service_account,
        }
        fingerprint = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
        name = f"{schedule_prefix(cfg)}{s.name}"
        description = (
            f"Managed by `retrain schedule apply` for model {cfg.name}: schedule {s.name!r}, "
            f"cron '{s.cron}' (UTC). Do not edit: changes are replaced. "
            f"spec-sha256: {fingerprint}"
        )
        out.append(
            DesiredSchedule(name, cron, s.cron, s.enabled, fingerprint, description, parameters)
        )
    return out


def plan_schedules(
    desired: Sequence[DesiredSchedule],
    existing: Sequence[ExistingSchedule],
    in_flight: Mapping[str, int],
    prefix: str,
    model: str | None = None,
) -> list[ScheduleAction]:
    """What to do so the cluster matches `desired`. Pure.

    `existing` are the recurring runs whose names start with `prefix`; `in_flight` counts the
    unfinished runs of each (by recurring run id). Recurring runs without the prefix are never
    touched, nor, given `model`, those whose description names another model: model
    ``loans``'s prefix ``retrain-loans-`` is also the start of model ``loans-eu``'s names.
    """
    ours = [
        e
        for e in existing
        if e.name.startswith(prefix) and (model is None or e.model in (None, model))
    ]
    actions: list[ScheduleAction] = []

    def busy(items: Sequence[ExistingSchedule]) -> int:
        return sum(in_flight.get(e.id, 0) for e in items)

    wanted = {d.name for d in desired}
    for d in desired:
        found = [e for e in ours if e.name == d.name]
        # Enable/disable is the one in-place change KFP allows (UI or CLI): compare it too.
        same = next(
            (e for e in found if e.fingerprint == d.fingerprint and e.enabled == d.enabled),
            None,
        )
        if not found:
            actions.append(ScheduleAction("create", d.name, f"new schedule ({d.cron})", d))
        elif same is not None and len(found) == 1:
            actions.append(ScheduleAction("keep", d.name, "unchanged", d))
        elif same is not None:
            extras = tuple(e.id for e in found if e is not same)
            stale = [e for e in found if e is not same]
            if busy(stale):
                actions.append(
                    ScheduleAction(
                        "defer", d.name, f"duplicates have {busy(stale)} run(s) in flight", d
                    )
                )
            else:
                actions.append(
                    ScheduleAction("delete", d.name, "duplicate of an equal schedule", d, extras)
                )
        else:
            old = found[0]
            if old.cron != d.cron:
                what = f"cron {old.cron} -> {d.cron}"
            elif old.enabled != d.enabled:
                what = "enabled" if d.enabled else "disabled"
            else:
                what = "parameters, pipeline or settings changed"
            running = busy(found)
            if running:
                actions.append(
                    ScheduleAction(
                        "defer",
                        d.name,
                        f"changed ({what}) but {running} run(s) in flight; apply again later",
                        d,
                    )
                )
            else:
                ids = tuple(e.id for e in found)
                actions.append(ScheduleAction("replace", d.name, f"changed ({what})", d, ids))
    for name in sorted({e.name for e in ours} - wanted):
        gone = [e for e in ours if e.name == name]
        running = busy(gone)
        if running:
            actions.append(
                ScheduleAction(
                    "defer", name, f"removed from the config but {running} run(s) in flight"
                )
            )
        else:
            actions.append(
                ScheduleAction(
                    "delete", name, "removed from the config", None, tuple(e.id for e in gone)
                )
            )
    return actions


def kfp_experiment(client: Any, name: str, namespace: str | None) -> Any:
    """The KFP experiment `name`, created if missing (`kfp.Client.create_experiment`).

    KFP keeps experiment names unique, so when another client creates it between the read
    and the create (one pass serves many models concurrently, each creating it on first
    use), the server refuses the create (409) and the experiment is read instead.
    """
    try:
        return client.create_experiment(name, namespace=namespace)
    except Exception as err:
        if getattr(err, "status", None) != 409:
            raise
        return client.get_experiment(experiment_name=name, namespace=namespace)


class KfpSchedules:
    """Recurring runs of one experiment through `kfp.Client` (v2beta1 API)."""

    def __init__(self, client: Any, experiment: str, namespace: str | None = None) -> None:
        self.client = client
        self.experiment = experiment
        self.namespace = namespace

    def experiment_id(self, *, create: bool) -> str | None:
        """The experiment's id; created only if `create` (a plan changes nothing)."""
        try:
            if create:
                exp = kfp_experiment(self.client, self.experiment, self.namespace)
            else:
                exp = self.client.get_experiment(
                    experiment_name=self.experiment, namespace=self.namespace
                )
        except ValueError as err:  # kfp: "No experiment is found with name ..."
            if "No experiment" in str(err):
                return None
            raise
        except Exception as err:
            raise TransientError(f"KFP experiment {self.experiment!r}: {err}") from err
        return str(exp.experiment_id)

    def list(self, experiment_id: str, prefix: str) -> list[ExistingSchedule]:
        """Recurring runs of the experiment whose names start with `prefix`."""
        name_filter = json.dumps(
            {
                "predicates": [
                    {"operation": "IS_SUBSTRING", "key": "display_name", "stringValue": prefix}
                ]
            }
        )
        out: list[ExistingSchedule] = []
        token = ""
        for _ in range(_MAX_PAGES):
            try:
                page = self.client.list_recurring_runs(
                    page_token=token,
                    page_size=100,
                    experiment_id=experiment_id,
                    filter=name_filter,
                )
            except Exception as err:
                raise TransientError(f"cannot list KFP recurring runs: {err}") from err
            for r in page.recurring_runs or []:
                name = str(r.display_name or "")
                if not name.startswith(prefix):
                    continue
                cron = (
                    r.trigger.cron_schedule.cron if r.trigger and r.trigger.cron_schedule else None
                )
                m = _FINGERPRINT.search(r.description or "")
                owner = _MODEL.search(r.description or "")
                out.append(
                    ExistingSchedule(
                        id=str(r.recurring_run_id),
                        name=name,
                        cron=cron,
                        enabled=str(r.mode or "ENABLE").upper() != "DISABLE",
                        fingerprint=m.group(1) if m else None,
                        model=owner.group(1) if owner else None,
                    )
                )
            token = page.next_page_token or ""
            if not token:
                break
        return out

    def in_flight(self, experiment_id: str, recurring_ids: set[str]) -> dict[str, int]:
        """Unfinished runs per recurring run id, from the experiment's runs, newest first."""
        counts: dict[str, int] = {}
        if not recurring_ids:
            return counts
        token = ""
        for _ in range(_MAX_PAGES):
            try:
                page = self.client.list_runs(
                    page_token=token,
                    page_size=100,
                    sort_by="created_at desc",
                    experiment_id=experiment_id,
                )
            except Exception as err:
                raise TransientError(f"cannot list KFP runs: {err}") from err
            for run in page.runs or []:
                rid = run.recurring_run_id
                state = str(run.state or "").upper()
                if rid in recurring_ids and state not in _FINISHED_STATES:
                    counts[rid] = counts.get(rid, 0) + 1
            token = page.next_page_token or ""
            if not token:
                break
        return counts

    def create(
        self,
        experiment_id: str,
        d: DesiredSchedule,
        package_path: str,
        service_account: str | None,
    ) -> str:
        try:
            made = self.client.create_recurring_run(
                experiment_id=experiment_id,
                job_name=d.name,
                description=d.description,
                cron_expression=d.cron,
                max_concurrency=1,
                no_catchup=True,
                params=dict(d.parameters),
                pipeline_package_path=package_path,
                enabled=d.enabled,
                service_account=service_account,
            )
        except Exception as err:
            raise TransientError(f"KFP did not create recurring run {d.name}: {err}") from err
        return str(made.recurring_run_id)

    def delete(self, recurring_run_id: str) -> None:
        try:
            self.client.delete_recurring_run(recurring_run_id)
        except Exception as err:
            raise TransientError(
                f"KFP did not delete recurring run {recurring_run_id}: {err}"
            ) from err


@dataclass
class SchedulePlan:
    """A plan and where it applies."""

    actions: list[ScheduleAction]
    experiment_id: str | None

    @property
    def deferred(self) -> list[ScheduleAction]:
        return [a for a in self.actions if a.kind == "defer"]


def make_plan(cfg: Config, api: KfpSchedules, package_path: str) -> SchedulePlan:
    """Read the cluster and plan (no writes)."""
    desired = desired_schedules(cfg, _sha256_file(package_path))
    experiment_id = api.experiment_id(create=False)
    prefix = schedule_prefix(cfg)
    if experiment_id is None:
        existing: list[ExistingSchedule] = []
        in_flight: dict[str, int] = {}
    else:
        existing = api.list(experiment_id, prefix)
        in_flight = api.in_flight(experiment_id, {e.id for e in existing})
    actions = plan_schedules(desired, existing, in_flight, prefix, cfg.name)
    return SchedulePlan(actions, experiment_id)


def apply_plan(cfg: Config, api: KfpSchedules, plan: SchedulePlan, package_path: str) -> None:
    """Carry out a plan: deletes before creates, so a replaced schedule never runs twice."""
    writes = [a for a in plan.actions if a.kind in ("create", "replace", "delete")]
    if not writes:
        return
    experiment_id = plan.experiment_id or api.experiment_id(create=True)
    assert experiment_id is not None
    for a in writes:
        for rid in a.delete_ids:
            api.delete(rid)
        if a.kind in ("create", "replace") and a.desired is not None:
            api.create(experiment_id, a.desired, package_path, cfg.triggers.kfp.service_account)
