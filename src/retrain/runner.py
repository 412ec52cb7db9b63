"""Run one retraining cycle: through the KFP pipeline on this machine, or step by step.

`engine="kfp-local"` runs the compiled-from-the-same-code KFP pipeline with `kfp.local`'s
SubprocessRunner: the embedded default, and the same definition that runs on Kubeflow.
`engine="direct"` calls the same step functions in this process with the same gate; it
needs no kfp and is what the backtest uses.

Either way the outcome is read back from the run records that every step writes to the
store, so the summary and the exit code are the same whichever engine ran.

``"auto"`` window or run ids (what scheduled runs pass) are resolved here first, by the same
`retrain.steps.resolve_run` the pipeline's resolve task calls, with this process standing in for
the KFP job; either engine then runs with the resolved ids, which the pipeline's resolve task
passes through. So both engines agree, and the run's id is known before it starts.

``as_of`` is the run's time for the label join (labels dated later have not arrived). Given, it
is passed to the label step as is. Not given, a scheduled run (window ``"auto"``) of a
timestamp or date source uses the instant its window was resolved at, so both agree; a run
with an explicit window leaves it to the label step's own clock (period sources: no cut).

A window ``"auto"`` makes the run a scheduled one, here as in the pipeline: resolving takes the
run lease as ``pipeline:<this process's job id>`` (or fails with exit 75 while another run holds
it), and the cycle releases it when it ends, however it ends, as the pipeline's exit task does.
The lease lasts ``triggers.lease_ttl`` and nothing renews it meanwhile (the monitor renews only
the leases of KFP runs it can poll). A release that fails is logged, never the cycle's result.
A run given an explicit window takes the same lease before its first step (unless its caller
holds it already: ``take_lease=False``, as the monitor's launcher does), so two manual runs
never replace each other's canary; the second exits 75 naming the holder. The lease names
this process (host and pid): a run SIGKILLed while holding it cannot release it, and the next
run on this host takes it over at once instead of exiting 75 until it expires (the lease's
``taken_over`` keeps the dead holder's; the run's log, and an auto run's resolve record, say
so), so re-running a killed run converges.

A SIGTERM stops the cycle at a safe point (`retrain.steps.signals`): the step in progress
records that it was stopped, kfp.local's step processes are stopped too, the lease is
released, and the result exits 75 (re-run to finish). A step that fails without leaving a
record (the store refused the write) gets one here, made from its error.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from retrain import steps
from retrain.config import Config
from retrain.data.windows import as_of_text, parse_as_of, parse_window
from retrain.errors import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_TRANSIENT,
    RetrainError,
    Terminated,
    exit_code_for,
)
from retrain.steps import signals
from retrain.steps.lease import take_run_lease, takeover_note
from retrain.steps.records import StepRecord, unrecorded_failure
from retrain.steps.resolve_rules import AUTO, auto_run_id, check_keyword, utc_instant
from retrain.storage import LocalStorage, Storage, open_storage

__all__ = ["RUN_STEPS", "STEP_ORDER", "CycleResult", "new_run_id", "run_cycle", "step_line"]

#: The steps every run reports on, in order (a terminal shows a line for each).
STEP_ORDER = ("ingest", "label", "train", "evaluate", "deploy", "rollout")
#: Every step that may leave a record, in order. `resolve` records only when it resolved an
#: "auto" id (or failed to), so it is shown only then and runs given explicit ids look as before.
RUN_STEPS = ("resolve", *STEP_ORDER)


@dataclass
class CycleResult:
    """What one cycle did, step by step, with the exit code it maps to."""

    run_id: str
    window_id: str
    records: dict[str, StepRecord]
    exit_code: int
    log_path: str | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def blessed(self) -> bool:
        return bool(self.records.get("evaluate", {}).get("blessed"))

    @property
    def failed_step(self) -> StepRecord | None:
        for name in RUN_STEPS:
            rec = self.records.get(name)
            if rec and rec.get("status") == "failed":
                return rec
        return None

    def lines(self) -> list[str]:
        """A short per-step summary for a terminal (resolve only if it recorded)."""
        names = [n for n in RUN_STEPS if n in STEP_ORDER or n in self.records]
        return [step_line(name, self.records) for name in names]


def step_line(name: str, records: dict[str, StepRecord]) -> str:
    """One terminal line for a step: ok with its summary, FAILED with the reason, or skipped."""
    rec = records.get(name)
    if rec is None:
        blocked = (
            name in ("deploy", "rollout") and "evaluate" in records and "deploy" not in records
        )
        why = "not blessed" if blocked else "not run"
        return f"  {name:<9} - skipped ({why})"
    if rec.get("status") == "failed":
        msg = str(rec.get("message", "")).replace("\n", "\n              ")
        return f"  {name:<9} x FAILED ({rec.get('error')}): {msg}"
    return f"  {name:<9} ok {rec.get('summary', '')} [{rec.get('seconds', 0):.1f}s]"


class _StepWatcher(threading.Thread):
    """Reports each step's record as soon as it lands in the store (progress while it runs)."""

    def __init__(
        self, store: Storage, run_id: str, on_step: Callable[[str, StepRecord], None]
    ) -> None:
        super().__init__(daemon=True)
        self._store, self._run_id, self._on_step = store, run_id, on_step
        self._seen: set[str] = set()
        self._stop_event = threading.Event()

    def poll(self) -> None:
        records = steps.read_run(self._store, self._run_id)
        for name in sorted(records, key=lambda n: RUN_STEPS.index(n) if n in RUN_STEPS else 99):
            rec = records[name]
            if name not in self._seen:
                self._seen.add(name)
                self._on_step(name, rec)

    def run(self) -> None:
        while not self._stop_event.wait(0.25):
            with contextlib.suppress(Exception):  # a half-listed directory: try again next tick
                self.poll()

    def finish(self) -> None:
        self._stop_event.set()
        self.join()
        self.poll()


def new_run_id(window_id: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    safe = "".join(c if c.isalnum() else "-" for c in window_id)
    return f"w{safe}-{stamp}-{uuid.uuid4().hex[:6]}"


def run_cycle(
    cfg: Config,
    window_id: str,
    *,
    engine: str = "kfp-local",
    run_id: str | None = None,
    pipeline_root: str | None = None,
    log_path: str | None = None,
    on_step: Callable[[str, StepRecord], None] | None = None,
    now: datetime | None = None,
    as_of: str | None = None,
    take_lease: bool = True,
) -> CycleResult:
    """One cycle for one window. Never raises for a failed step: see `CycleResult.exit_code`.

    `window_id` and `run_id` may be ``"auto"`` (see the module docstring); `now` is the run's
    time for resolving them (default: the real clock). `as_of` is the run's time for the
    label join (see the module docstring). `on_step(name, record)` is called as each step
    finishes, in the order they finish.

    A resolve that fails without leaving a record (the store refused the write) still gives a
    ``resolve`` record in the result, made here from its error with the exit code the error
    maps to (`retrain.errors.exit_code_for`; ``"recorded": False``). A run lease that cannot
    be released at the end is reported on stderr and in `log_path`, and leaves the result as
    is.

    Raises:
        ValidationError: `as_of` does not fit the source's time kind (nothing is written).
    """
    if engine not in ("kfp-local", "direct"):
        raise ValueError(f"unknown engine {engine!r} (kfp-local or direct)")
    resolve_at = now
    if as_of:
        as_of = as_of_text(parse_as_of(cfg.data, as_of))  # bad input fails before any write
    elif window_id == AUTO and cfg.data.time_kind != "period":
        # The label join is as of the instant resolve chooses the window at.
        resolve_at = now if now is not None else datetime.now(timezone.utc)
        as_of = as_of_text(utc_instant(resolve_at))
    # No id can name a window that is not resolved yet: let resolve derive it.
    run_id = run_id or (AUTO if window_id == AUTO else new_run_id(window_id))
    check_keyword("run_id", run_id)
    if run_id != AUTO:
        steps.check_run_id(run_id)  # before any path uses it
    config_yaml = cfg.to_yaml()
    store = open_storage(cfg.storage_root)
    job_id = uuid.uuid4().hex[:12]  # this process is the job: it stands in for KFP's job id
    lease_job = job_id if window_id == AUTO or take_lease else None
    with signals.stop_on_sigterm(signals.terminate_descendants) as sigterm:
        try:
            result = _resolve_and_run(
                cfg,
                config_yaml,
                store,
                window_id,
                run_id,
                job_id,
                engine,
                pipeline_root,
                log_path=log_path,
                on_step=on_step,
                now=resolve_at,
                as_of=as_of or None,
                lease_job=lease_job,
            )
        except Terminated:  # between steps, before any record could say so
            result = CycleResult(run_id, window_id, {}, EXIT_TRANSIENT, log_path)
        finally:
            with sigterm.deferred():  # a second SIGTERM must not keep the lease held
                if lease_job is not None:  # release the lease if this run took it
                    _release_lease(cfg, config_yaml, job_id, now, log_path)
    if sigterm.received and result.exit_code == EXIT_OK:
        result.exit_code = EXIT_TRANSIENT  # stopped after its last step: still re-run it
        _log(
            f"retrain: run {result.run_id} stopped by SIGTERM after its last step: every step"
            " finished and the run lease is released; it exits 75 as any stopped run does,"
            " and a re-run converges",
            log_path,
        )
    return result


def _release_lease(
    cfg: Config, config_yaml: str, job_id: str, now: datetime | None, log_path: str | None
) -> None:
    """Release the cycle's run lease; a failure is logged, never raised.

    Raising from run_cycle's `finally` would replace the finished cycle's result (or the error
    it is already raising) with a lease problem. The lease then expires on its own.
    """
    try:
        steps.release_run_lease(config_yaml, job_id, now=now)
    except Exception as err:
        _log(
            f"retrain: could not release the run lease of {cfg.name!r} for job {job_id} "
            f"({type(err).__name__}: {err}); if this run took it, it stays held until it "
            f"expires (triggers.lease_ttl {cfg.triggers.lease_ttl} after it was taken) and "
            "other runs of this model are refused until then",
            log_path,
        )


def _log(message: str, log_path: str | None) -> None:
    """A line to stderr and to the run's log file (where kfp.local's output goes), if any."""
    print(message, file=sys.stderr, flush=True)
    if log_path is not None:
        with contextlib.suppress(OSError):  # stderr has told already
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(message + "\n")


def _resolve_and_run(
    cfg: Config,
    config_yaml: str,
    store: Storage,
    window_id: str,
    run_id: str,
    job_id: str,
    engine: str,
    pipeline_root: str | None,
    *,
    log_path: str | None,
    on_step: Callable[[str, StepRecord], None] | None,
    now: datetime | None,
    as_of: str | None,
    lease_job: str | None,
) -> CycleResult:
    try:
        if window_id != AUTO and lease_job is not None:  # a manual run: the same lease
            parse_window(cfg.data, window_id)  # a bad window id writes nothing, not even a lease
            at = now if now is not None else datetime.now(timezone.utc)
            lease = take_run_lease(
                cfg, store, run_id=run_id, window_id=window_id, job_id=lease_job, at=at,
                kfp_run=False,
            )  # fmt: skip
            note = takeover_note(lease)
            if note is not None:  # a killed run's lease (also kept in the lease's taken_over)
                _log(f"retrain: run {run_id} of {cfg.name!r} {note}", log_path)
        # No KFP run has this job id: the lease gets no external id for the monitor to poll.
        resolved = steps.resolve_run(
            config_yaml, window_id, run_id, job_id, now=now, kfp_run=False, as_of=as_of or ""
        )
    except Exception as err:
        return _failed_resolve(store, window_id, run_id, job_id, err, log_path, on_step)
    # A scheduled run's labels are those known at the instant resolve chose its window.
    window_id, run_id, as_of = resolved.window_id, resolved.run_id, resolved.as_of or None
    watcher = _StepWatcher(store, run_id, on_step) if on_step else None
    if watcher:
        watcher.start()
    crash: Exception | None = None
    try:
        if engine == "kfp-local":
            root = pipeline_root or _default_pipeline_root(cfg)
            _run_kfp_local(config_yaml, window_id, run_id, root, log_path, as_of)
        else:
            _run_direct(config_yaml, window_id, run_id, as_of)
    except Exception as err:  # a step's error (it recorded it, if it could) or a SIGTERM
        crash = err
    finally:
        if watcher:
            watcher.finish()
    records = _read_run_or_empty(store, run_id)
    failed = next((r for r in records.values() if r.get("status") == "failed"), None)
    if failed is None and "evaluate" not in records:  # stopped without a step saying why
        where = f"; see its log {log_path}" if log_path else ""
        crash = crash or RetrainError(f"the pipeline stopped without a record of why{where}")
    if failed is None and crash is not None:
        failed = _unrecorded_failure(records, run_id, crash, log_path)
        if on_step:
            on_step(failed["step"], failed)
    if failed is not None:
        code = int(failed.get("exit_code", EXIT_INTERNAL))
    elif "evaluate" not in records:
        code = EXIT_INTERNAL  # the pipeline stopped without a step saying why
    else:
        code = EXIT_OK
    if isinstance(crash, Terminated):
        code = EXIT_TRANSIENT
    return CycleResult(run_id, window_id, records, code, log_path)


def _read_run_or_empty(store: Storage, run_id: str) -> dict[str, StepRecord]:
    try:
        return steps.read_run(store, run_id)
    except Exception:  # the store that failed the step may fail this read too
        return {}


def _unrecorded_failure(
    records: dict[str, StepRecord], run_id: str, err: Exception, log_path: str | None
) -> StepRecord:
    """A failure record for the step that raised `err` but could not record it (added to
    `records`), also told on stderr: a run never ends in silence."""
    step = next((n for n in STEP_ORDER if n not in records), STEP_ORDER[-1])
    records[step] = record = unrecorded_failure(step, run_id, err)
    _log(
        f"retrain: step {step} of run {run_id} failed without a record: {record['message']}",
        log_path,
    )
    return record


def _failed_resolve(
    store: Storage,
    window_id: str,
    run_id: str,
    job_id: str,
    err: Exception,
    log_path: str | None,
    on_step: Callable[[str, StepRecord], None] | None,
) -> CycleResult:
    """The result of a cycle whose resolve raised `err`: its record, or one made from `err`."""
    try:
        failed_id = _failed_resolve_id(store, run_id, job_id)
        records = steps.read_run(store, failed_id)
    except Exception:  # the store that failed resolve may fail these reads too
        failed_id = run_id if run_id != AUTO else auto_run_id(None, job_id)[0]
        records = {}
    record = records.get("resolve")
    if record is None or not _records_error(record, err):
        # Resolve could not record this failure (or a record of an earlier attempt under the
        # same given run id is in the way): keep the error's message and exit code here.
        record = unrecorded_failure("resolve", failed_id, err)
        records = {**records, "resolve": record}
    if on_step:
        for name, rec in records.items():
            on_step(name, rec)
    code = int(record.get("exit_code", exit_code_for(err)))
    # A window resolved before the failure (a refused lease) is in the record.
    window_id = (record.get("report") or {}).get("window_id") or window_id
    return CycleResult(failed_id, window_id, records, code, log_path)


def _records_error(record: StepRecord, err: Exception) -> bool:
    """Whether `record` is the failure record resolve wrote for `err` (not an older one)."""
    return record.get("status") == "failed" and (record.get("error"), record.get("message")) == (
        type(err).__name__,
        str(err),
    )


def _failed_resolve_id(store: Storage, run_id: str, job_id: str) -> str:
    """Where resolve_run recorded its failure: the given run id, or one derived from the job.

    A derived id names the window when it was resolved (a refused lease), else ``auto-<job>``.
    """
    if run_id != AUTO:
        return run_id
    fallback = auto_run_id(None, job_id)[0]
    if store.exists(f"runs/{fallback}/resolve.json"):
        return fallback
    # The job id is this process's own random one, so one folder at most ends with it.
    suffix = f"-{job_id}/resolve.json"
    found = [k.split("/")[1] for k in store.list("runs") if k.endswith(suffix)]
    return found[0] if found else fallback


def _default_pipeline_root(cfg: Config) -> str:
    store = open_storage(cfg.storage_root)
    if isinstance(store, LocalStorage):
        return str(Path(store.root).parent / (Path(store.root).name + "-kfp"))
    return tempfile.mkdtemp(prefix="retrain-kfp-")


def _run_direct(config_yaml: str, window_id: str, run_id: str, as_of: str | None) -> None:
    """The steps in this process; a step's error propagates (the caller reads its record)."""
    with tempfile.TemporaryDirectory(prefix=f"retrain-{run_id}-") as tmp:
        t = Path(tmp)
        steps.ingest(
            config_yaml, window_id, run_id, str(t / "dataset.parquet"), str(t / "ingest.md")
        )
        steps.label(
            config_yaml,
            window_id,
            run_id,
            str(t / "dataset.parquet"),
            str(t / "labelled.parquet"),
            str(t / "queue.parquet"),
            str(t / "label.md"),
            as_of,
        )
        steps.train(
            config_yaml,
            window_id,
            run_id,
            str(t / "labelled.parquet"),
            str(t / "model"),
            str(t / "holdout"),
            str(t / "train.md"),
        )
        outcome = steps.evaluate(
            config_yaml, run_id, str(t / "model"), str(t / "holdout"), str(t / "evaluate.md")
        )
        if outcome.blessed:
            steps.deploy(config_yaml, run_id, str(t / "model"), str(t / "deploy.md"))
            steps.rollout(config_yaml, run_id, str(t / "rollout.md"))


@contextlib.contextmanager
def _output_to(path: str | None) -> Iterator[None]:
    """Send this process's (and its children's) stdout/stderr to a file for the duration."""
    if path is None:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _run_kfp_local(
    config_yaml: str,
    window_id: str,
    run_id: str,
    pipeline_root: str,
    log_path: str | None,
    as_of: str | None,
) -> None:
    from kfp import local
    from retrain_pipelines import build_pipeline

    Path(pipeline_root).mkdir(parents=True, exist_ok=True)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=pipeline_root,
        raise_on_error=False,
    )
    pipeline = build_pipeline(local=True)  # lightweight, fail fast; see build_pipeline
    with _output_to(log_path), signals.steps_die_with_this_process():
        pipeline(config_yaml=config_yaml, window_id=window_id, run_id=run_id, as_of=as_of or "")
