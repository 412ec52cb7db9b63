"""`train`: a challenger on history + the new window at the configured mix (or an update)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, TypedDict

import pandas as pd

from retrain._threads import openmp_threads
from retrain.config import Config
from retrain.continuous import train_or_update
from retrain.data.history import history_row_budget, read_history
from retrain.data.io import content_sha256, to_parquet_bytes
from retrain.data.targets import reconcile_targets
from retrain.data.windows import parse_window
from retrain.drift import PROFILE_FILE, profile_for_model
from retrain.errors import ValidationError
from retrain.evaluation import target_constant
from retrain.labels.classes import check_label_classes, class_count, without_unknown_classes
from retrain.registry import Registry
from retrain.settings.evaluation import check_fits_classes
from retrain.steps._provisional import with_provisional
from retrain.steps.records import (
    StepOutcome,
    finish_step,
    load_step_config,
    now_iso,
    read_dataset,
    recorded_step,
    skip_step,
)
from retrain.training.artifact import (
    MODEL_CARD_FILE,
    ModelCard,
    library_versions,
    load_registered_model,
    model_files,
)
from retrain.training.mix import TrainingSet

__all__ = ["TrainDetails", "train"]


class TrainDetails(TypedDict):
    """What the train step reports (and records under ``runs/<run_id>/train.json``)."""

    version: str
    parent: str | None  # the champion at training time
    provenance: dict[str, Any]  # the training mix: rows by role, shares, ids' sha256
    data_hashes: dict[str, Any]
    fit_seconds: float
    fit_threads: int | None  # OpenMP's threads for the fit (retrain._threads); None: not loaded


def train(
    config_yaml: str,
    window_id: str,
    run_id: str,
    labelled_path: str,
    model_dir: str,
    holdout_dir: str,
    report_path: str | None = None,
    *,
    html_path: str | None = None,
) -> StepOutcome:
    """Train a challenger on history + the new window at the configured mix."""
    cfg, store = load_step_config(config_yaml)
    if (skipped := skip_step(store, run_id, "train", report_path, html_path=html_path)) is not None:
        return skipped
    with recorded_step(store, run_id, "train") as rec:
        window = parse_window(cfg.data, window_id)
        window_id = window.id  # one spelling: "01" is "1"
        new, new_meta = read_dataset(labelled_path)
        # The window's own rows are the drift reference; provisional ones join `new` below.
        window_rows = new
        new_sha256 = new_meta.get("sha256", content_sha256(new))
        # Recent windows' labels known so far, kept by the label step for this run only: their
        # training rows train as new data, their evaluation rows join the recent set.
        new, provisional = with_provisional(cfg, store, run_id, new)
        # Read window by window and sampled to what the mix can use: memory does not grow
        # with the number of windows kept.
        loaded = read_history(store, cfg, window_id, max_rows=history_row_budget(cfg, len(new)))
        # Handed to training without a reference kept here, so the history frame is freed
        # before the fit, the step's peak.
        history_notes = loaded.notes() if loaded.sampled else None
        left_out = loaded.left_out
        # One label type before the classes are checked: text "1" and the number 1 are one
        # class to the checks and to training alike.
        both = reconcile_targets([new, loaded.frame], ["the new window", "history"], cfg.target)
        new = new if both[0] is None else both[0]
        handed_over = [both[1]]
        del both
        del loaded
        reg = Registry(store, cfg.name)
        champion = reg.get_alias("champion").version
        parent, parent_card = None, None
        if cfg.continuous.enabled and champion:  # continuous mode updates the champion
            parent_card = ModelCard.from_json(reg.read_file(champion, MODEL_CARD_FILE).decode())
            parent = load_registered_model(reg, champion)
        dropped: dict[str, int] = {}
        if cfg.task == "classification":
            known = _check_classes(cfg, reg, champion, parent, new, window_id)
            if known is not None and handed_over[0] is not None:
                handed_over[0], dropped = without_unknown_classes(handed_over[0], cfg.target, known)
            _check_metric_fits(cfg, new, handed_over[0], window_id)  # before a model is fitted
        # Of the rows training gets: after any history row of a class not known is left out.
        history_sha256 = content_sha256(handed_over[0]) if handed_over[0] is not None else None
        t0 = time.perf_counter()
        result = train_or_update(
            cfg, new, handed_over.pop(), cfg.seed, champion=parent, champion_card=parent_card
        )
        ts, model = result.training_set, result.model
        fit_seconds = time.perf_counter() - t0
        fit_threads = openmp_threads()  # in the thread that fitted: OpenMP's limit is per thread
        if history_notes is not None:
            result.provenance["history_load"] = history_notes
        if dropped:
            result.provenance["history_unknown_classes"] = dropped
        # What a first model's constant prediction is taken from (retrain.evaluation._baseline).
        result.provenance["training_target"] = target_constant(
            cfg.task, ts.train[cfg.target], ts.sample_weight
        )
        if left_out:
            result.provenance["history_left_out"] = left_out
        # The window's end under this run's data.window_size: a later challenger's age is
        # counted in its own run's window size, and one that starts before this end is not
        # trained on newer data, whatever that count says (evaluate's refresh).
        result.provenance["window_end"] = window.as_dict()["end"]
        hashes = {
            "new_window": new_sha256,
            "history": history_sha256,
            "train": content_sha256(ts.train),
        }
        if provisional is not None:
            result.provenance["provisional"] = provisional
            hashes["provisional"] = provisional.get("sha256")
        if result.plan.mode == "continuous" and parent_card is not None:
            hashes["parent_model"] = parent_card.model_sha256  # the update depends on it
        version = _version_id(window_id, hashes, cfg)
        card = ModelCard(
            version=version,
            parent=champion,
            created_at=now_iso(),
            task=cfg.task,
            target=cfg.target,
            features=dict(cfg.data.features),
            estimator=cfg.model.estimator,
            params=dict(cfg.model.params),
            data_hashes=hashes,
            provenance=result.provenance,
            metrics={},
            library_versions=library_versions(),
            model_sha256="",
            seed=cfg.seed,
            window=window_id,
            run_id=run_id,
        )
        out = Path(model_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, data in model_files(model, card).items():
            (out / name).write_bytes(data)
        # -- drift (retrain.drift): the reference profile, registered with the model by deploy
        if cfg.drift.enabled:
            # Later windows are compared with the newest window the model learned, not with
            # its training mix: after a change the mix is mostly the old regime, and every
            # later window would look drifted against it however well the model serves.
            profile = profile_for_model(
                cfg, model, window_rows, _reference_rows(cfg, ts, new), seen=ts.train
            )
            (out / PROFILE_FILE).write_text(profile.to_json())
        # -- end drift
        hold = Path(holdout_dir)
        hold.mkdir(parents=True, exist_ok=True)
        (hold / "recent.parquet").write_bytes(to_parquet_bytes(ts.recent_holdout, {}))
        if ts.history_holdout is not None:
            (hold / "history.parquet").write_bytes(to_parquet_bytes(ts.history_holdout, {}))
        p = result.provenance
        summary = (
            f"challenger {version}"
            + (f" ({result.plan.summary()})" if cfg.continuous.enabled else "")
            + f": {len(ts.train)} rows "
            f"({p.get('history_rows', 0)} history + {p.get('new_rows', 0)} new, "
            f"history share {p.get('realised_share', 0):.0%}), fit in {fit_seconds:.1f}s"
        )
        if provisional is not None:
            summary += f"; new includes {provisional.get('rows', 0)} provisional rows"
        if dropped:
            summary += (
                f"; left out {sum(dropped.values())} history rows of classes not known "
                "(labels.classes, else the champion's)"
            )
        if left_out:
            summary += (
                f"; left out {', '.join(left_out)} of history: its labels cannot be one type"
                " with the others (history_left_out)"
            )
        details: TrainDetails = {
            "version": version,
            "parent": champion,
            "provenance": p,
            "data_hashes": hashes,
            "fit_seconds": fit_seconds,
            "fit_threads": fit_threads,
        }
        markdown = _train_markdown(version, champion, p, hashes, fit_seconds, fit_threads)
        finish_step(rec, report_path, summary, details, markdown, html_path=html_path)
        return StepOutcome("train", summary, details)


def _version_id(window_id: str, hashes: dict[str, Any], cfg: Config) -> str:
    """Content-addressed: the same data, model spec and seed give the same version id."""
    basis = json.dumps(
        {
            "hashes": hashes,
            "model": cfg.model.model_dump(mode="json"),
            "seed": cfg.seed,
            "mix": cfg.training.model_dump(mode="json"),
            # An update's result also depends on how it updates (passes, replay, ...).
            **(
                {"continuous": cfg.continuous.model_dump(mode="json")}
                if "parent_model" in hashes
                else {}
            ),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(basis.encode()).hexdigest()[:10]
    safe_window = "".join(c if c.isalnum() else "-" for c in window_id)
    return f"w{safe_window}-{digest}"


def _train_markdown(
    version: str,
    parent: str | None,
    prov: dict[str, Any],
    hashes: dict[str, Any],
    fit_seconds: float,
    fit_threads: int | None = None,
) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in prov.items() if not isinstance(v, (dict, list)))
    hrows = "\n".join(f"| {k} | `{v}` |" for k, v in hashes.items())
    notes = list(prov.get("encoding_warnings") or [])
    dropped = prov.get("history_unknown_classes")
    if isinstance(dropped, dict) and dropped:
        listed = ", ".join(f"{k!r} ({v} rows)" for k, v in list(dropped.items())[:5])
        notes.append(
            f"history rows of classes not known were left out of training: {listed}; list "
            "the class in labels.classes to train on it"
        )
    warnings = "".join(f"- warning: {w}\n" for w in notes) + ("\n" if notes else "")
    return (
        f"# Train: challenger `{version}`\n\nParent (champion at training time): "
        f"`{parent or 'none: first model'}`. Fit in {fit_seconds:.2f} s"
        f"{f' ({fit_threads} OpenMP threads)' if fit_threads else ''}.\n\n"
        f"{_continuous_markdown(prov)}{_provisional_markdown(prov)}{warnings}"
        f"## Training mix (provenance)\n\n| field | value |\n|---|---|\n{rows}\n\n"
        f"## Data hashes\n\n| dataset | sha256 |\n|---|---|\n{hrows}\n"
    )


def _continuous_markdown(prov: dict[str, Any]) -> str:
    """What continuous learning did and why (empty when it is off)."""
    plan = prov.get("plan")
    if not isinstance(plan, dict):
        return ""
    lines = [f"## Continuous learning\n\n{plan.get('summary', '')}.\n"]
    reason = plan.get("method_reason")
    if isinstance(reason, str) and reason not in str(plan.get("summary")):
        lines.append(f"Method: {reason}.\n")
    size = prov.get("size")
    if isinstance(size, dict):
        before = "" if size.get("before") is None else f"{size['before']} → "
        lines.append(
            f"Size ({size.get('unit')}, read from the fitted model): {before}{size.get('after')}.\n"
        )
    return "\n".join(lines) + "\n"


def _provisional_markdown(prov: dict[str, Any]) -> str:
    """The provisional windows this challenger used (empty when none)."""
    kept = prov.get("provisional")
    if not isinstance(kept, dict):
        return ""
    used = [w for w in kept.get("windows", []) if "coverage" in w]
    listed = ", ".join(f"{w['window']} ({w['coverage']:.0%})" for w in used) or "none"
    return (
        f"## Provisional windows (not in history)\n\n{kept.get('rows', 0)} labelled rows known "
        f"as of {kept.get('as_of')} of windows short of labels.min_coverage, in the new data: "
        f"{listed}.\n\n"
    )


def _reference_rows(cfg: Config, ts: TrainingSet, new: pd.DataFrame) -> pd.DataFrame:
    """The evaluation rows the profile measures the model on: the new window's own.

    The drift engine compares later windows with this reference, so it must describe the
    regime the model is deployed into: rows pooled from earlier windows (or history) would
    set the reference on the old regime after a change and keep the performance signal firing.
    With no evaluation row in the new window, the whole recent set stands in.
    """
    ids = cfg.data.id_column
    own = ts.recent_holdout[ts.recent_holdout[ids].isin(new[ids])]
    return own.reset_index(drop=True) if len(own) else ts.recent_holdout


def _check_classes(
    cfg: Config,
    reg: Registry,
    champion: str | None,
    loaded: Any,
    new: pd.DataFrame,
    window_id: str,
) -> list[Any] | None:
    """The window's label classes against `labels.classes`, else the champion's classes.

    Returns the known classes as given (None: nothing to check against, the first model
    defines them, or a champion that cannot be loaded, which evaluate refuses by name).
    """
    if cfg.labels.classes is not None:
        known, source = cfg.labels.classes, "labels.classes"
    elif champion is not None:
        try:
            model = loaded if loaded is not None else load_registered_model(reg, champion)
        except ValidationError:
            return None
        known, source = list(model.classes_), f"champion {champion}"
    else:
        return None
    where = f"window {window_id}, target {cfg.target!r}"
    check_label_classes(new[cfg.target], known, where=where, known_from=source)
    return list(known)  # as given: compared as text where used, 1.0 as 1 (labels.classes)


def _check_metric_fits(
    cfg: Config, new: pd.DataFrame, history: pd.DataFrame | None, window_id: str
) -> None:
    """Refuse a metric, rollout check or ``labels.positive_class`` that needs two classes when
    training has more.

    Without `labels.classes` the config cannot know the classes; the training labels are the
    first to tell, and every later evaluation would fail on them (or, for the positive class,
    never read it)."""
    labels = [new[cfg.target]]
    if history is not None and cfg.target in history.columns:
        labels.append(history[cfg.target])
    n = class_count(*labels)
    checks = [c.name for c in cfg.rollout.checks or ()]
    found = f"window {window_id}: the training labels (new window and history) hold {n} classes"
    problems = []
    try:
        check_fits_classes(n, cfg.primary_metric, checks, found=found)
    except ValueError as err:
        problems.append(str(err))
    if cfg.labels.positive_class is not None and n > 2:
        problems.append(
            f"labels.positive_class is for two classes; {found}: remove it (multiclass metrics"
            " judge every class)"
        )
    if problems:  # both listed at once when both apply
        fix = "list every class in labels.classes to have the config checked on load"
        raise ValidationError(problems[0], [*problems[1:], fix])
