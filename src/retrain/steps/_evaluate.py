"""`evaluate`: challenger vs champion on recent and historical holdouts; the gates decide."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from retrain.config import Config
from retrain.data.io import from_parquet_bytes
from retrain.data.windows import windows_between
from retrain.evaluation.gates import evaluate_challenger
from retrain.registry import Registry
from retrain.steps.records import (
    StepOutcome,
    finish_step,
    load_step_config,
    recorded_step,
    skip_step,
)
from retrain.training.artifact import ModelCard, load_model_dir, load_registered

__all__ = ["EvaluateDetails", "EvaluateOutcome", "evaluate"]


class EvaluateDetails(TypedDict):
    """What the evaluate step reports (and records under ``runs/<run_id>/evaluate.json``)."""

    blessed: bool
    outcome: str  # blessed, rejected, or undecided: too few evaluation rows to show a gain
    reason: str
    challenger: str
    champion: str | None
    metrics: dict[str, Any]
    comparison: dict[str, Any]
    gates: list[dict[str, Any]]


@dataclass
class EvaluateOutcome(StepOutcome):
    blessed: bool = False
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    confusion: dict[str, Any] | None = None


def evaluate(
    config_yaml: str,
    run_id: str,
    model_dir: str,
    holdout_dir: str,
    report_path: str | None = None,
    *,
    html_path: str | None = None,
) -> EvaluateOutcome:
    """Challenger vs champion on recent and historical holdouts; the gates say blessed or not."""
    cfg, store = load_step_config(config_yaml)
    if (
        skipped := skip_step(store, run_id, "evaluate", report_path, html_path=html_path)
    ) is not None:
        return EvaluateOutcome("evaluate", skipped.summary, skipped.details, blessed=False)
    with recorded_step(store, run_id, "evaluate") as rec:
        challenger, card = load_model_dir(model_dir)
        reg = Registry(store, cfg.name)
        champion_version = reg.get_alias("champion").version
        champion, champion_card = (
            load_registered(reg, champion_version) if champion_version else (None, None)
        )
        age = _champion_age(cfg, champion_card, card.window)
        recent, _ = from_parquet_bytes((Path(holdout_dir) / "recent.parquet").read_bytes())
        hist_path = Path(holdout_dir) / "history.parquet"
        history = from_parquet_bytes(hist_path.read_bytes())[0] if hist_path.exists() else None
        # A card from before the training target was recorded has none: the first model's
        # constant is then fitted on the recent rows, and the reason says so.
        recorded = card.provenance.get("training_target")
        result = evaluate_challenger(
            cfg,
            challenger,
            champion,
            recent,
            history,
            seed=cfg.seed,
            training_target=recorded if isinstance(recorded, dict) else None,
            champion_age=age,
        )
        flat = _flatten_metrics(result.metrics)
        summary = f"{result.outcome.upper()}: {result.reason}"
        markdown = result.markdown()
        kept = card.provenance.get("provisional")
        if isinstance(kept, dict) and kept.get("rows"):  # a reader can tell
            note = (
                "the recent set includes the evaluation rows of provisional windows "
                f"({kept['rows']} rows labelled as of {kept.get('as_of')}, not in history)"
            )
            summary += f"; {note}"
            markdown += f"\nNote: {note}.\n"
        details: EvaluateDetails = {
            "blessed": result.blessed,
            "outcome": result.outcome,
            "reason": result.reason,
            "challenger": card.version,
            "champion": champion_version,
            "metrics": result.metrics,
            "comparison": result.comparison,
            "gates": [g.__dict__ for g in result.gates],
        }
        rec["blessed"] = result.blessed
        rec["outcome"] = result.outcome
        finish_step(rec, report_path, summary, details, markdown, html_path=html_path)
        confusion = getattr(result, "confusion", None)
        return EvaluateOutcome(
            "evaluate",
            summary,
            details,
            blessed=result.blessed,
            reason=result.reason,
            metrics=flat,
            confusion=confusion,
        )


def _champion_age(cfg: Config, card: ModelCard | None, window: str | None) -> float | None:
    """How many windows newer the challenger's training window is than the champion's (their
    model cards' windows), for a refresh; None if there is no champion (`card`) or either window
    is unknown.

    The count is start to start in the current `data.window_size`. After that size changed
    (weekly to daily, say), a challenger whose window starts inside the champion's would count
    as newer; a card that records where its window ended (provenance ``window_end``) rules
    that out: such a challenger is not newer (0, or its negative age if it starts earlier).
    """
    if card is None:
        return None
    age = windows_between(cfg.data, card.window, window)
    end = card.provenance.get("window_end")
    if age is not None and isinstance(end, (str, int)) and not isinstance(end, bool):
        past_end = windows_between(cfg.data, str(end), window)
        if past_end is not None and past_end < 0:
            return min(age, 0.0)
    return age


def _flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in metrics.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten_metrics(v, f"{name}."))
        elif isinstance(v, (int, float)) and v == v:  # drop NaN: KFP Metrics rejects it
            out[name] = float(v)
    return out
