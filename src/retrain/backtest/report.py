"""The backtest's table (Markdown and JSON) and plot (PNG) from the policies' replays."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from retrain._provenance import code_version
from retrain.backtest.replay import PolicyResult, WindowRecord

__all__ = ["PolicySummary", "common_windows", "json_safe", "summarise", "write_outputs"]


@dataclass(frozen=True)
class PolicySummary:
    """One row of the table: quality over the scored windows, and what it cost.

    `mean` is over the windows every policy of the backtest scored (`common_windows`), so the
    means compare like with like; `mean_own` is over this policy's own scored windows.
    `windows_skipped` counts windows the policy should have scored but could not (ingest or
    scoring failed), listed with their reasons in `skipped`. `failed` lists the windows in which
    an unexpected error (not one of retrain's own; the baseline records them) was met.
    `undefined` lists the windows a model served and whose labelled rows (their count given)
    leave the metric undefined, e.g. ROC AUC on labels of one class: neither scored nor skipped.
    `refreshes` counts the blessings that were a refresh (`evaluation.refresh_after`: a
    challenger trained on newer data blessed without a shown gain); it is in the JSON only,
    the Markdown table keeping its columns.
    """

    policy: str
    metric: str
    windows_scored: int
    windows_skipped: int
    common_windows: int
    mean: float | None
    mean_own: float | None
    worst: float | None
    worst_window: str | None
    mean_after_drift: float | None
    below_slo: int | None
    retrains: int
    deploys: int
    cache_hits: int
    train_seconds: float
    labels_consumed: int
    skipped: dict[str, str]
    failed: dict[str, str]
    undefined: dict[str, int] = field(default_factory=dict)
    refreshes: int = 0


def _undefined(w: WindowRecord) -> bool:
    """Served and labelled, yet no value: the metric is undefined on the window's labels."""
    unscored = w.metric is None or math.isnan(w.metric)
    return unscored and w.champion is not None and not w.skipped and w.rows_scored > 0


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _scored_indices(result: PolicyResult) -> set[int]:
    return {w.index for w in result.windows if w.metric is not None and not math.isnan(w.metric)}


def common_windows(results: list[PolicyResult]) -> set[int]:
    """The windows every policy scored: the ones the means are taken over."""
    sets = [_scored_indices(r) for r in results]
    return set.intersection(*sets) if sets else set()


def summarise(
    result: PolicyResult,
    *,
    slo: float | None = None,
    drift_index: int | None = None,
    common: set[int] | None = None,
) -> PolicySummary:
    """Aggregate a replay. `slo` counts windows worse than it (below for AUC, above for RMSE);
    `drift_index` is the first window after a known drift point, for the after-drift mean;
    `common` the windows the means are over (None: the policy's own scored windows)."""
    own = _scored_indices(result)
    common = own if common is None else common
    scored = [w for w in result.windows if w.index in common]
    values = [float(w.metric) for w in scored if w.metric is not None]
    sign = 1.0 if result.greater_is_better else -1.0
    worst = min(scored, key=lambda w: sign * float(w.metric or 0.0)) if scored else None
    after = [
        float(w.metric)
        for w in scored
        if drift_index is not None and w.index >= drift_index and w.metric is not None
    ]
    below = None
    if slo is not None:
        below = sum(1 for v in values if (v < slo if result.greater_is_better else v > slo))
    return PolicySummary(
        policy=result.policy,
        metric=result.metric,
        windows_scored=len(own),
        windows_skipped=sum(1 for w in result.windows if w.skipped),
        common_windows=len(common),
        mean=_mean(values),
        mean_own=_mean([float(w.metric or 0.0) for w in result.windows if w.index in own]),
        worst=float(worst.metric) if worst is not None and worst.metric is not None else None,
        worst_window=worst.window if worst is not None else None,
        mean_after_drift=_mean(after) if drift_index is not None else None,
        below_slo=below,
        retrains=sum(1 for w in result.windows if w.retrained),
        deploys=sum(1 for w in result.windows if w.deployed),
        cache_hits=sum(1 for w in result.windows if w.cache_hit),
        train_seconds=round(sum(w.train_seconds for w in result.windows), 3),
        labels_consumed=result.labels_consumed,
        skipped={w.window: str(w.skipped) for w in result.windows if w.skipped},
        failed={w.window: str(w.failed) for w in result.windows if w.failed},
        undefined={w.window: w.rows_scored for w in result.windows if _undefined(w)},
        refreshes=sum(1 for w in result.windows if w.refreshed),
    )


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def markdown(
    summaries: list[PolicySummary], settings: dict[str, Any], title: str = "Backtest"
) -> str:
    """The table as Markdown, with the settings it was run with."""
    metric = summaries[0].metric if summaries else "metric"
    slo = settings.get("slo")
    head = (
        f"# {title}\n\n"
        + ", ".join(f"{k}: {v}" for k, v in settings.items() if v is not None)
        + "\n\n"
        f"| policy | mean {metric} | scored (skipped) | worst window | mean after drift | "
        f"windows worse than SLO{f' ({slo})' if slo is not None else ''} | retrains | deploys | "
        "training s (cache hits) | labels consumed |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = [
        f"| {s.policy} | {_fmt(s.mean)} | {s.windows_scored} ({s.windows_skipped}) | "
        f"{_fmt(s.worst)} ({s.worst_window or '-'}) | "
        f"{_fmt(s.mean_after_drift)} | {'-' if s.below_slo is None else s.below_slo} | "
        f"{s.retrains} | {s.deploys} | {s.train_seconds:.1f} ({s.cache_hits}) | "
        f"{s.labels_consumed} |"
        for s in summaries
    ]
    common = summaries[0].common_windows if summaries else 0
    notes = (
        f"\n\nMeans, worst windows and SLO counts are over the {common} windows every policy "
        "scored; 'scored (skipped)' counts each policy's scored windows and the windows it "
        "could not score because ingest or scoring failed. "
        "The serving model (the registry champion) scores each window before that window's "
        "labels are used (prequential). Training seconds count each policy's trainings as if it "
        "ran alone; cache hits are trainings another policy had already run on identical inputs. "
        "Labels consumed: labelled rows the policy had to take into history.\n"
    )
    failures = [
        f"- {s.policy}, window {window}: {why}"
        for s in summaries
        for window, why in s.failed.items()
    ]
    undefined = [
        f"{s.policy}: " + ", ".join(f"{w} ({n} labelled rows)" for w, n in s.undefined.items())
        for s in summaries
        if s.undefined
    ]
    if undefined:
        notes += (
            f"\nWindows served and labelled but not scored, {metric} being undefined on their "
            "labels (e.g. ROC AUC on labels of one class, average precision without a "
            "positive): " + "; ".join(undefined) + ".\n"
        )
    if failures:
        notes += (
            f"\n{len(failures)} unexpected error(s), each recorded in its window and the replay "
            "going on (a failed scoring is a skipped window; a failed refit leaves the previous "
            "model serving):\n\n" + "\n".join(failures) + "\n"
        )
    return head + "\n".join(rows) + notes


def plot(
    results: list[PolicyResult], path: Path, *, known_drift: list[int], slo: float | None
) -> None:
    """The metric per window per policy, with retrain (o), drift-engine (x) and known drift
    (dashed line) markers; written as PNG with the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    for r in results:
        xs = [w.index for w in r.windows]
        ys = [w.metric if w.metric is not None else math.nan for w in r.windows]
        (line,) = ax.plot(xs, ys, label=r.policy, linewidth=1.5)
        # A retrain at the end of window i changes what serves window i + 1.
        rx = [w.index for w in r.windows if w.deployed]
        ry = [ys[x] for x in rx]
        ax.plot(rx, ry, "o", color=line.get_color(), markersize=6)
        dx = [w.index for w in r.windows if w.drift]
        dy = [ys[x] for x in dx]
        ax.plot(dx, dy, "x", color=line.get_color(), markersize=8)
    for k, d in enumerate(known_drift):
        ax.axvline(d, color="grey", linestyle="--", label="known drift" if k == 0 else None)
    if slo is not None:
        ax.axhline(slo, color="red", linestyle=":", label=f"SLO {slo}")
    metric = results[0].metric if results else "metric"
    ax.set_xlabel("window (o: deployed a new model at its end; x: drift engine fired)")
    ax.set_ylabel(f"{metric} of the serving model")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    windows = results[0].windows if results else []
    if windows and len(windows) <= 30:
        ax.set_xticks([w.index for w in windows], [w.window for w in windows], rotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float (NaN, inf) as None: JSON has no NaN, and a bare
    ``NaN`` in a file breaks jq, JavaScript and most parsers. A reader computing on the file
    reads null as "no value" (NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_outputs(
    results: list[PolicyResult],
    out_dir: Path,
    *,
    settings: dict[str, Any],
    slo: float | None = None,
    known_drift: list[int] | None = None,
    stem: str = "backtest",
    title: str = "Backtest",
) -> list[PolicySummary]:
    """Write ``<stem>.md``, ``<stem>.json`` and ``<stem>.png`` into `out_dir`."""
    known = known_drift or []
    common = common_windows(results)
    drift_index = known[0] if known else None
    summaries = [summarise(r, slo=slo, drift_index=drift_index, common=common) for r in results]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.md").write_text(markdown(summaries, settings, title))
    doc = {
        "code": code_version(),  # the commit the results were measured on
        "settings": settings,
        "summary": [asdict(s) for s in summaries],
        "policies": [r.to_dict() for r in results],
    }
    # allow_nan=False: a non-finite value that escaped `json_safe` fails here, not in a reader.
    text = json.dumps(json_safe(doc), indent=2, default=str, allow_nan=False)
    (out_dir / f"{stem}.json").write_text(text + "\n")
    plot(results, out_dir / f"{stem}.png", known_drift=known, slo=slo)
    return summaries
