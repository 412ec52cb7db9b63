"""The run lease of scheduled runs: taken by resolve, refused while held, released by the job.

Real local stores throughout; the clock is injected (`now`), so expiry is exact.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from retrain import steps
from retrain.errors import EXIT_TRANSIENT, EXIT_VALIDATION, TransientError, ValidationError
from retrain.settings.triggers import TriggerConfig
from retrain.steps import lease as steps_lease
from retrain.steps.resolve_rules import LEASE_RULE, PERIOD_RULE
from retrain.storage import Storage, open_storage
from retrain.triggers.controller import LaunchResult, RunStatus, TriggerController
from retrain.triggers.lease import (
    acquire_lease,
    lease_key,
    read_lease,
    release_lease,
    renew_lease,
)
from retrain.triggers.policy import Decision, Signal

UTC = timezone.utc
NOW = datetime(2024, 1, 15, 3, 0, tzinfo=UTC)
JOB = "8f0c1b0e-8f4b-4f57-9b37-0a5c3f1f7d21"  # a KFP run's UUID
RUN = f"w1-{JOB}"  # weeks 0-2 in the source: "auto" is week 1


@pytest.fixture
def config(tmp_path: Path) -> str:
    """A period use case with weeks 0-2 and a 2-hour lease; the normalised config text."""
    (tmp_path / "events").mkdir()
    frame = pd.DataFrame({"id": range(6), "week": [0, 0, 1, 1, 1, 2], "x": [0.5] * 6})
    frame.to_parquet(tmp_path / "events" / "events.parquet")
    cfg = {
        "name": "loans",
        "task": "classification",
        "target": "y",
        "storage_root": str(tmp_path / "store"),
        "data": {
            "uri": str(tmp_path / "events"),
            "id_column": "id",
            "time_column": "week",
            "time_kind": "period",
            "features": {"x": "numeric"},
        },
        "labels": {"uri": str(tmp_path / "labels"), "id_column": "id", "label_column": "y"},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {"deployment_name": "loans"},
        "triggers": {"lease_ttl": "2h"},
    }
    return yaml.safe_dump(cfg)


def store_of(config: str) -> Storage:
    return open_storage(yaml.safe_load(config)["storage_root"])


def hold(store: Storage, owner: str = "monitor-host:42", run_id: str = "w1-drift-run") -> None:
    """Another run (the monitor's, by default) takes the lease at NOW - 1h for 6 hours."""
    taken = acquire_lease(
        store,
        "loans",
        owner=owner,
        run_id=run_id,
        snapshot="1",
        ttl=timedelta(hours=6),
        now=NOW - timedelta(hours=1),
    )
    assert taken is not None


# --- taking ------------------------------------------------------------------------------------


def test_a_scheduled_run_takes_the_lease_for_its_job(config: str) -> None:
    out = steps.resolve_run(config, "auto", "auto", JOB, now=NOW)
    assert (out.window_id, out.run_id) == ("1", RUN)
    lease, _ = read_lease(store_of(config), "loans")
    assert lease is not None
    assert lease.owner == f"pipeline:{JOB}"
    assert (lease.run_id, lease.snapshot) == (RUN, "1")
    assert (lease.acquired_at, lease.expires_at) == (NOW, NOW + timedelta(hours=2))
    assert lease.external_id == JOB  # what the monitor's reconcile polls on a cluster
    assert lease.held(NOW) and lease.released_at is None
    assert out.details["lease"]["owner"] == f"pipeline:{JOB}"
    assert out.summary.endswith("; run lease taken until 2024-01-15T05:00:00Z")


def test_an_in_process_job_records_no_external_id(config: str) -> None:
    steps.resolve_run(config, "auto", "auto", "abc123", now=NOW, kfp_run=False)
    lease, _ = read_lease(store_of(config), "loans")
    assert lease is not None and lease.owner == "pipeline:abc123"
    assert lease.external_id is None  # no KFP run to poll: the monitor waits for the release


@pytest.mark.parametrize(("window", "run_id"), [("1", "auto"), ("1", "r-7")])
def test_runs_with_an_explicit_window_take_no_lease(config: str, window: str, run_id: str) -> None:
    steps.resolve_run(config, window, run_id, JOB, now=NOW)
    assert not store_of(config).exists(lease_key("loans"))


def test_a_failed_resolution_takes_no_lease(config: str, tmp_path: Path) -> None:
    pd.DataFrame({"id": [0], "week": [4], "x": [0.5]}).to_parquet(
        tmp_path / "events" / "events.parquet"
    )
    with pytest.raises(ValidationError, match="only window 4"):
        steps.resolve_run(config, "auto", "auto", JOB, now=NOW)
    assert store_of(config).list("") == [f"runs/auto-{JOB}/resolve.json"]


@pytest.mark.parametrize("job_id", [None, "", "{{$.pipeline_job_uuid}}"])
def test_without_a_job_id_no_lease_is_taken(config: str, job_id: str | None) -> None:
    # Nobody could release a lease whose owner names no job: refuse, recorded, exit 2.
    with pytest.raises(ValidationError, match="takes the run lease as pipeline:<job id>") as err:
        steps.resolve_run(config, "auto", "auto", job_id, now=NOW)
    assert err.value.exit_code == EXIT_VALIDATION
    assert not store_of(config).exists(lease_key("loans"))


def test_a_retried_resolve_of_the_same_job_keeps_its_lease(config: str) -> None:
    steps.resolve_run(config, "auto", "auto", JOB, now=NOW)
    later = NOW + timedelta(minutes=1)
    out = steps.resolve_run(config, "auto", "auto", JOB, now=later)
    assert out.run_id == RUN
    lease, _ = read_lease(store_of(config), "loans")
    assert lease is not None and lease.owner == f"pipeline:{JOB}"
    assert lease.expires_at == later + timedelta(hours=2)


@pytest.mark.parametrize("how", ["expired", "released"])
def test_a_lease_no_longer_held_is_taken_over(config: str, how: str) -> None:
    store = store_of(config)
    hold(store)
    at = NOW + timedelta(hours=6) if how == "expired" else NOW
    if how == "released":
        assert release_lease(store, "loans", "w1-drift-run", NOW - timedelta(minutes=5))
    steps.resolve_run(config, "auto", "auto", JOB, now=at)
    lease, _ = read_lease(store, "loans")
    assert lease is not None and lease.owner == f"pipeline:{JOB}" and lease.held(at)


def add_week_3(config: str) -> None:
    """A week-3 event arrives: resolving afresh would now pick week 2."""
    events = Path(yaml.safe_load(config)["data"]["uri"]) / "events.parquet"
    frame = pd.DataFrame({"id": range(7), "week": [0, 0, 1, 1, 1, 2, 3], "x": [0.5] * 7})
    frame.to_parquet(events)


def test_a_retried_resolve_keeps_its_jobs_window_and_run_id(config: str) -> None:
    # The first attempt took the lease for week 1; a week-3 event arrives before the retry.
    store = store_of(config)
    steps.resolve_run(config, "auto", "auto", JOB, now=NOW)
    add_week_3(config)
    later = NOW + timedelta(minutes=2)
    retry = steps.resolve_run(config, "auto", "auto", JOB, now=later)
    assert (retry.window_id, retry.run_id) == ("1", RUN)  # not week 2, not w2-<job>
    assert store.list("runs") == [
        f"runs/{RUN}/resolve.html",
        f"runs/{RUN}/resolve.json",
        f"runs/{RUN}/resolve.md",
    ]
    lease, _ = read_lease(store, "loans")
    assert lease is not None
    assert (lease.owner, lease.run_id, lease.snapshot) == (f"pipeline:{JOB}", RUN, "1")
    assert (lease.acquired_at, lease.expires_at) == (NOW, later + timedelta(hours=2))
    # The record says the ids were kept, and why week 1 was chosen in the first place.
    rec = steps.read_run(store, RUN)["resolve"]
    assert rec["status"] == "succeeded"
    assert rec["report"]["kept_from_lease"]["acquired_at"] == "2024-01-15T03:00:00Z"
    assert rec["report"]["window"]["rule"] == PERIOD_RULE
    assert rec["report"]["window"]["reason"].startswith("window 1: the newest with events")
    assert rec["summary"] == (
        f"kept window 1 and run id {RUN} from this job's run lease (taken at "
        "2024-01-15T03:00:00Z by an earlier attempt of this resolve task), not resolved again; "
        "run lease renewed until 2024-01-15T05:02:00Z"
    )
    assert LEASE_RULE in store.read_text(f"runs/{RUN}/resolve.md")


def test_a_retry_without_the_first_record_still_keeps_the_lease_and_says_so(config: str) -> None:
    # The first attempt took the lease but died before it could record (a killed pod).
    store = store_of(config)
    steps.resolve_run(config, "auto", "nightly", JOB, now=NOW)
    Path(store.uri("runs/nightly/resolve.json")).unlink()
    add_week_3(config)
    retry = steps.resolve_run(config, "auto", "nightly", JOB, now=NOW + timedelta(minutes=2))
    assert (retry.window_id, retry.run_id) == ("1", "nightly")
    window = retry.details["window"]
    assert (window["rule"], window["window"]["id"], window["rows"]) == (LEASE_RULE, "1", None)
    assert "taken at 2024-01-15T03:00:00Z by an earlier attempt" in window["reason"]


@pytest.mark.parametrize("how", ["released", "expired"])
def test_a_lease_no_longer_held_is_not_kept_by_a_retry(config: str, how: str) -> None:
    store = store_of(config)
    steps.resolve_run(config, "auto", "auto", JOB, now=NOW)
    at = NOW + timedelta(hours=3) if how == "expired" else NOW + timedelta(minutes=2)
    if how == "released":
        steps.release_run_lease(config, JOB, now=NOW + timedelta(minutes=1))
    add_week_3(config)
    again = steps.resolve_run(config, "auto", "auto", JOB, now=at)
    assert (again.window_id, again.run_id) == ("2", f"w2-{JOB}")  # resolved afresh
    assert again.details["kept_from_lease"] is None
    lease, _ = read_lease(store, "loans")
    assert lease is not None and (lease.run_id, lease.snapshot) == (f"w2-{JOB}", "2")


# --- refusing ----------------------------------------------------------------------------------


def test_a_held_lease_refuses_the_scheduled_run_naming_the_holder(config: str) -> None:
    store = store_of(config)
    hold(store)
    before = store.read_bytes(lease_key("loans"))
    with pytest.raises(TransientError) as err:
        steps.resolve_run(config, "auto", "auto", JOB, now=NOW)
    message = str(err.value)
    assert err.value.exit_code == EXIT_TRANSIENT
    assert message == (
        "the run lease of model 'loans' is held by run w1-drift-run (owner monitor-host:42, "
        "expires 2024-01-15T08:00:00Z): this scheduled run (window 1) does not start, so that "
        "runs never overlap; the next scheduled run will try again"
    )
    # Recorded like any failure, under the resolved run id; nothing else written.
    assert store.read_bytes(lease_key("loans")) == before
    assert store.list("") == [lease_key("loans"), f"runs/{RUN}/resolve.json"]
    rec = json.loads(store.read_text(f"runs/{RUN}/resolve.json"))
    assert (rec["status"], rec["error"], rec["exit_code"]) == ("failed", "TransientError", 75)
    assert rec["message"] == message
    assert rec["report"]["window_id"] == "1"
    assert rec["report"]["lease"] is None
    assert rec["report"]["lease_holder"]["run_id"] == "w1-drift-run"


def test_the_refusal_names_the_kfp_run_of_another_scheduled_run(config: str) -> None:
    steps.resolve_run(config, "auto", "auto", "other-job", now=NOW)
    with pytest.raises(TransientError, match=r"owner pipeline:other-job, expires .*KFP run other"):
        steps.resolve_run(config, "auto", "auto", JOB, now=NOW + timedelta(minutes=5))


# --- releasing ---------------------------------------------------------------------------------


def test_the_exit_task_releases_its_own_jobs_lease_once(config: str, tmp_path: Path) -> None:
    store = store_of(config)
    steps.resolve_run(config, "auto", "auto", JOB, now=NOW)
    report = tmp_path / "release.md"
    done = NOW + timedelta(minutes=20)
    first = steps.release_run_lease(config, JOB, str(report), pipeline_state="FAILED", now=done)
    assert first.details["released"] is True
    assert first.summary == (
        f"run lease of loans: released this job's lease (run {RUN}) after the pipeline ended FAILED"
    )
    lease, _ = read_lease(store, "loans")
    assert lease is not None and lease.released_at == done and not lease.held(done)
    assert first.details["lease"]["released_at"] == done.isoformat()
    assert "released this job's lease" in report.read_text()

    # Idempotent: a retried exit task changes nothing.
    generation = store.generation(lease_key("loans"))
    again = steps.release_run_lease(config, JOB, now=done + timedelta(minutes=1))
    assert again.details["released"] is False
    assert "already released at 2024-01-15T03:20:00Z" in again.summary
    assert store.generation(lease_key("loans")) == generation


@pytest.mark.parametrize("job_id", ["another-job", "", "{{$.pipeline_job_uuid}}", JOB[:-1]])
def test_another_jobs_lease_is_left_alone(config: str, job_id: str) -> None:
    store = store_of(config)
    steps.resolve_run(config, "auto", "auto", JOB, now=NOW)
    before = store.read_bytes(lease_key("loans"))
    out = steps.release_run_lease(config, job_id, now=NOW)
    assert out.details["released"] is False
    assert f"the lease is pipeline:{JOB}'s (run {RUN}), not this job's: left alone" in out.summary
    assert store.read_bytes(lease_key("loans")) == before


def test_a_monitor_launched_runs_lease_is_never_touched(config: str) -> None:
    # The monitor launched this run with an explicit window: its pipeline's exit task runs too.
    store = store_of(config)
    hold(store)
    before = store.read_bytes(lease_key("loans"))
    steps.resolve_run(config, "1", "w1-drift-run", JOB, now=NOW)
    out = steps.release_run_lease(config, JOB, now=NOW)
    assert out.details["released"] is False
    assert store.read_bytes(lease_key("loans")) == before


def test_no_lease_nothing_to_release_and_nothing_written(config: str) -> None:
    out = steps.release_run_lease(config, JOB, now=NOW)
    assert out.details == {
        "job_id": JOB,
        "owner": f"pipeline:{JOB}",
        "released": False,
        "pipeline_state": None,
        "lease": None,
        "at": "2024-01-15T03:00:00Z",
    }
    assert store_of(config).list("") == []


def test_release_and_renew_check_the_owner_in_the_same_swap(tmp_path: Path) -> None:
    # A lease-level check: same run id, another owner. Owner None keeps the old behaviour.
    store = open_storage(str(tmp_path / "store"))
    hold(store, owner="pipeline:job-B", run_id="nightly")
    before = store.read_bytes(lease_key("loans"))
    ttl = timedelta(hours=1)
    assert not release_lease(store, "loans", "nightly", NOW, owner="pipeline:job-A")
    assert renew_lease(store, "loans", "nightly", ttl=ttl, now=NOW, owner="pipeline:job-A") is None
    assert store.read_bytes(lease_key("loans")) == before
    renewed = renew_lease(store, "loans", "nightly", ttl=ttl, now=NOW, owner="pipeline:job-B")
    assert renewed is not None and renewed.expires_at == NOW + ttl
    assert release_lease(store, "loans", "nightly", NOW)  # owner None: the run id decides


def test_an_exit_task_never_releases_the_next_jobs_lease_under_the_same_run_id(
    config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Job A (explicit run id "nightly") took the lease; it expired. A's exit task reads the
    # lease (still A's) and, before it releases, job B takes it under the same run id.
    store = store_of(config)
    steps.resolve_run(config, "auto", "nightly", "job-A", now=NOW)
    b_time = NOW + timedelta(hours=3)
    real_release = steps_lease.release_lease

    def b_takes_it_first(*args: Any, **kwargs: Any) -> bool:
        steps.resolve_run(config, "auto", "nightly", "job-B", now=b_time)
        return real_release(*args, **kwargs)

    monkeypatch.setattr(steps_lease, "release_lease", b_takes_it_first)
    out = steps.release_run_lease(config, "job-A", now=b_time + timedelta(minutes=1))
    lease, _ = read_lease(store, "loans")
    assert lease is not None and lease.owner == "pipeline:job-B" and lease.run_id == "nightly"
    assert lease.released_at is None and lease.held(b_time + timedelta(minutes=1))
    assert out.details["released"] is False
    assert out.summary == (
        "run lease of loans: this job's lease (run nightly) changed hands meanwhile, now "
        "pipeline:job-B's: left alone"
    )


def test_a_retried_resolve_never_renews_the_next_jobs_lease_under_the_same_run_id(
    config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The take side: A's retry sees its own lease, then B takes it (expired on B's clock)
    # before A renews it.
    store = store_of(config)
    steps.resolve_run(config, "auto", "nightly", "job-A", now=NOW)
    b_time = NOW + timedelta(hours=3)
    real_renew = steps_lease.renew_lease
    b_ran: list[bool] = []

    def b_takes_it_first(*args: Any, **kwargs: Any) -> Any:
        if not b_ran:
            b_ran.append(True)
            steps.resolve_run(config, "auto", "nightly", "job-B", now=b_time)
        return real_renew(*args, **kwargs)

    monkeypatch.setattr(steps_lease, "renew_lease", b_takes_it_first)
    with pytest.raises(TransientError, match="held by run nightly \\(owner pipeline:job-B"):
        steps.resolve_run(config, "auto", "nightly", "job-A", now=NOW + timedelta(minutes=5))
    lease, _ = read_lease(store, "loans")
    assert lease is not None and lease.owner == "pipeline:job-B"
    assert (lease.acquired_at, lease.expires_at) == (b_time, b_time + timedelta(hours=2))


# --- with the monitor --------------------------------------------------------------------------


class KfpLike:
    """Answers polls as the KFP launcher would for a run it can see; launches nothing."""

    name = "kfp-like"

    def __init__(self, status: RunStatus) -> None:
        self.status = status
        self.polled: list[tuple[str, str]] = []

    def launch(self, snapshot: str, run_id: str, decision: Decision) -> LaunchResult:
        raise AssertionError("a run was launched while the scheduled run held the lease")

    def poll(self, run_id: str, external_id: str) -> RunStatus | None:
        self.polled.append((run_id, external_id))
        return self.status


def controller(config: str, launcher: Any, at: datetime) -> TriggerController:
    settings = TriggerConfig.model_validate({"drift_windows": 1, "lease_ttl": "2h"})
    return TriggerController(store_of(config), "loans", settings, launcher, clock=lambda: at)


def test_a_scheduled_run_blocks_drift_launches_and_the_monitor_can_finish_it(config: str) -> None:
    steps.resolve_run(config, "auto", "auto", JOB, now=NOW)
    at = NOW + timedelta(minutes=10)
    outcome = controller(config, KfpLike("running"), at).handle(
        Signal("drift", "2", drifted=True, value=0.6)
    )
    assert not outcome.decision.launch and outcome.decision.rule == "lease"
    assert RUN in outcome.decision.reason

    # The KFP run finished but its exit task never ran (a killed pod): the monitor polls the
    # job id in the lease, records the run and frees the lease; a late exit task is a no-op.
    finished = KfpLike("failed")
    assert controller(config, finished, at).reconcile() == "failed"
    assert finished.polled == [(RUN, JOB)]
    lease, _ = read_lease(store_of(config), "loans")
    assert lease is not None and lease.released_at == at
    assert steps.release_run_lease(config, JOB, now=at).details["released"] is False
