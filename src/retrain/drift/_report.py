"""The drift report: one row per feature, the dataset-level signals, JSON and Markdown."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from retrain.drift._performance import PerformanceCheck, PerformanceEstimate

__all__ = ["Bar", "DriftReport", "FeatureDrift", "Signal"]

_BAR_WIDTH = 24


@dataclass(frozen=True)
class Bar:
    """One bucket of a histogram: its label and the reference and current shares."""

    label: str
    reference: float
    current: float


@dataclass(frozen=True)
class FeatureDrift:
    """The verdict on one feature (or on the model's scores, for prediction drift).

    `statistic` is on non-null values; null rates are beside it. For a distance method the
    feature drifted when `statistic >= threshold`; for a p-value test when `p_value < alpha`,
    where `alpha` is `threshold` after the Bonferroni correction. A distance verdict also
    needs `statistic >= null_threshold`: the distance that two samples of these sizes from
    the reference's own distribution exceed with chance alpha (None for a method without a
    known null). `warning` marks a distance at or above the method's warning level (and the
    null threshold) but below its threshold. A text feature's `text` holds its
    out-of-vocabulary rate, lengths, empty shares and new and vanished terms
    (`retrain.drift._text`); its `unseen_categories` are the new terms.
    """

    feature: str
    kind: str
    method: str
    test: str
    statistic: float | None
    threshold: float
    drifted: bool
    p_value: float | None = None
    alpha: float | None = None
    null_threshold: float | None = None
    warning: bool = False
    n_ref: int = 0
    n_cur: int = 0
    null_rate_ref: float = 0.0
    null_rate_cur: float = 0.0
    unseen_categories: dict[str, int] = field(default_factory=dict)
    unseen_rows: int = 0
    histogram: list[Bar] = field(default_factory=list)
    note: str = ""
    text: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The feature's name (the same as `feature`)."""
        return self.feature

    @property
    def strength(self) -> float:
        """How far past (> 1) or short of (< 1) its threshold the feature is."""
        if self.statistic is None:
            return 0.0
        if self.test == "p_value":
            if self.p_value is None or self.alpha is None:
                return 0.0
            # -log p against -log alpha: 1 at the boundary, larger as evidence grows.
            return -math.log(max(self.p_value, 1e-300)) / -math.log(self.alpha)
        return self.statistic / max(self.threshold, self.null_threshold or 0.0)

    def verdict(self) -> str:
        """'drift', 'warning', 'ok' or 'n/a' (nothing to compare)."""
        if self.statistic is None:
            return "n/a"
        return "drift" if self.drifted else "warning" if self.warning else "ok"

    def to_dict(self) -> dict[str, Any]:
        return _clean_doc(asdict(self))


@dataclass(frozen=True)
class Signal:
    """One dataset-level reason to retrain, and whether it fired.

    Names: ``feature_share``, ``weighted_feature_share``, ``prediction_drift``,
    ``performance_drop`` (labels known) and ``estimated_performance_drop`` (no labels yet).
    `available` is False when its inputs were missing; `detail` says why in words.
    """

    name: str
    fired: bool
    value: float | None
    threshold: float | None
    detail: str
    available: bool = True

    def to_dict(self) -> dict[str, Any]:
        return _clean_doc(asdict(self))


@dataclass(frozen=True)
class DriftReport:
    """Per-feature verdicts, the dataset-level signals and the model-side checks."""

    features: list[FeatureDrift]
    signals: list[Signal]
    n_ref: int
    n_cur: int
    prediction: FeatureDrift | None = None
    performance: PerformanceCheck | None = None
    estimated_performance: PerformanceEstimate | None = None
    reference_estimated_accuracy: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def drift_detected(self) -> bool:
        """True if any signal fired."""
        return any(s.fired for s in self.signals)

    @property
    def dataset_drifted(self) -> bool:
        """The dataset-level decision: the same as `drift_detected`."""
        return self.drift_detected

    @property
    def share_drifted(self) -> float:
        """Share of the compared features that drifted (0 if none could be compared)."""
        judged = [f for f in self.features if f.statistic is not None]
        return sum(f.drifted for f in judged) / len(judged) if judged else 0.0

    @property
    def fired(self) -> list[str]:
        """Names of the signals that fired."""
        return [s.name for s in self.signals if s.fired]

    @property
    def drifted_features(self) -> list[str]:
        """Drifted features, strongest first."""
        return [f.feature for f in self.ranked() if f.drifted]

    def signal(self, name: str) -> Signal:
        """The signal called `name` (KeyError if there is none)."""
        for s in self.signals:
            if s.name == name:
                return s
        raise KeyError(name)

    def ranked(self) -> list[FeatureDrift]:
        """Features, drifted first, then by strength."""
        return sorted(self.features, key=lambda f: (not f.drifted, -f.strength, f.feature))

    def summary(self) -> str:
        """One line: how many features drifted and which signals fired."""
        judged = [f for f in self.features if f.statistic is not None]
        drifted = self.drifted_features
        head = f"{len(drifted)}/{len(judged)} features drifted"
        if drifted:
            head += f" ({', '.join(drifted[:3])}{', …' if len(drifted) > 3 else ''})"
        if self.drift_detected:
            return f"drift: {head}; fired: {', '.join(self.fired)}"
        return f"no drift signal: {head}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes null), features in config order."""
        return _clean_doc(
            {
                "drift_detected": self.drift_detected,
                "fired": self.fired,
                "summary": self.summary(),
                "n_ref": self.n_ref,
                "n_cur": self.n_cur,
                "settings": self.settings,
                "signals": [s.to_dict() for s in self.signals],
                "features": [f.to_dict() for f in self.features],
                "prediction": self.prediction.to_dict() if self.prediction else None,
                "performance": self.performance.to_dict() if self.performance else None,
                "estimated_performance": (
                    self.estimated_performance.to_dict() if self.estimated_performance else None
                ),
                "reference_estimated_accuracy": self.reference_estimated_accuracy,
                "warnings": list(self.warnings),
            }
        )

    def to_json(self) -> str:
        """Strict JSON text of `to_dict`."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def markdown(self, title: str = "Drift", histograms: int | None = None) -> str:
        """A report for the Kubeflow UI: signals, a feature table, text histograms.

        Args:
            title: the section heading (level 2).
            histograms: how many drifted features to draw (default: `settings['histograms']`,
                else 3).
        """
        top = histograms if histograms is not None else int(self.settings.get("histograms", 3))
        verdict = (
            f"**Drift detected**: {', '.join(self.fired)} fired."
            if self.drift_detected
            else "No drift signal fired."
        )
        lines = [
            f"## {title}",
            "",
            f"Reference: {self.n_ref} rows; current window: {self.n_cur} rows. {verdict}",
            "",
            *[f"> **Warning**: {w}\n" for w in self.warnings],
            "| signal | value | threshold | fired | detail |",
            "|---|---:|---:|:---:|---|",
        ]
        for s in self.signals:
            fired = "**yes**" if s.fired else ("no" if s.available else "n/a")
            lines.append(
                f"| {s.name} | {_num(s.value)} | {_num(s.threshold)} | {fired} | {s.detail} |"
            )
        lines += [
            "",
            "### Features",
            "",
            "| feature | kind | method | statistic | threshold | verdict | p-value "
            "| n ref | n cur | null rate ref → cur | unseen |",
            "|---|---|---|---:|---:|:---:|---:|---:|---:|---|---|",
        ]
        rows = self.ranked() + ([self.prediction] if self.prediction else [])
        for f in rows:
            name = f"`{f.feature}`" if f is not self.prediction else "*model scores*"
            verdict_cell = f"**{f.verdict()}**" if f.drifted else f.verdict()
            threshold = _num(f.threshold) + (
                f" (α {_num(f.alpha)})" if f.alpha is not None and f.alpha != f.threshold else ""
            )
            if f.null_threshold is not None:
                threshold += f" (null {_num(f.null_threshold)})"
            unseen = ", ".join(f"{k} ({v})" for k, v in list(f.unseen_categories.items())[:5])
            if f.note:
                unseen = (unseen + "; " if unseen else "") + f.note
            lines.append(
                f"| {name} | {f.kind} | {f.method} | {_num(f.statistic)} | {threshold} "
                f"| {verdict_cell} | {_num(f.p_value)} | {f.n_ref} | {f.n_cur} "
                f"| {f.null_rate_ref:.1%} → {f.null_rate_cur:.1%} | {unseen} |"
            )
        drawn = [f for f in self.ranked() if f.drifted and f.histogram][:top]
        if self.prediction is not None and self.prediction.drifted and self.prediction.histogram:
            drawn.append(self.prediction)
        if drawn:
            lines += ["", "### Reference vs current", ""]
            for f in drawn:
                lines += _histogram(f)
        texts = [f for f in self.ranked() if f.text]
        if texts:
            lines += ["", "### Text", ""]
            for f in texts:
                lines += _text_lines(f)
        if self.estimated_performance is not None or self.performance is not None:
            lines += ["", "### Model performance", ""]
            est = self.estimated_performance
            if est is not None:
                ref = self.reference_estimated_accuracy
                lines.append(
                    f"- estimated accuracy without labels: {est.value:.3f} "
                    f"({est.confidence:.0%} interval [{est.lower:.3f}, {est.upper:.3f}], "
                    f"{est.n} rows); reference estimate {_num(ref)}"
                )
            perf = self.performance
            if perf is not None:
                lines.append(
                    f"- {perf.metric} on labelled rows: {perf.current:.3f} ({perf.confidence:.0%} "
                    f"interval [{perf.lower:.3f}, {perf.upper:.3f}], {perf.n} rows) vs reference "
                    f"{perf.reference:.3f}: drop {perf.drop:+.3f} "
                    f"[{perf.drop_lower:+.3f}, {perf.drop_upper:+.3f}]"
                )
        return "\n".join(lines) + "\n"


def _text_lines(f: FeatureDrift) -> list[str]:
    t = f.text

    def share(key: str) -> str:
        value = t.get(key)
        return "–" if value is None else f"{value:.1%}"

    def terms(key: str) -> str:
        named = t.get(key) or {}
        return ", ".join(f"{k} ({v})" for k, v in named.items()) or "none"

    return [
        f"- `{f.feature}`: out-of-vocabulary tokens {share('oov_rate')} (reference beyond its "
        f"kept terms {share('reference_other_rate')}); tokens per text "
        f"{_num(t.get('mean_length_ref'))} → {_num(t.get('mean_length_cur'))}; empty texts "
        f"{share('empty_share_ref')} → {share('empty_share_cur')}",
        f"  - new terms: {terms('new_terms')}",
        f"  - vanished terms: {terms('vanished_terms')}",
    ]


def _histogram(f: FeatureDrift) -> list[str]:
    label = f"`{f.feature}`" if f.kind != "score" else "model scores"
    head = f"#### {label}: {f.method} {_num(f.statistic)}"
    head += f", p {_num(f.p_value)} < α {_num(f.alpha)}" if f.test == "p_value" else ""
    head += f" (threshold {_num(f.threshold)})" if f.test == "distance" else ""
    head += f" (null {_num(f.null_threshold)})" if f.null_threshold is not None else ""
    biggest = max([b.reference for b in f.histogram] + [b.current for b in f.histogram] + [1e-12])
    width = max([len(b.label) for b in f.histogram] + [6])
    out = [head, "", "```text", f"{'bucket':<{width}}  {'reference':<{_BAR_WIDTH + 7}}  current"]
    for b in f.histogram:
        out.append(f"{b.label:<{width}}  {_bar(b.reference, biggest)}  {_bar(b.current, biggest)}")
    out += ["```", ""]
    return out


def _bar(share: float, biggest: float) -> str:
    cells = round(share / biggest * _BAR_WIDTH)
    return f"{'█' * cells:<{_BAR_WIDTH}} {share:>5.1%}"


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if value == 0:
        return "0"
    if abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _clean_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """`_clean` of a mapping."""
    return {k: _clean(v) for k, v in doc.items()}


def _clean(value: Any) -> Any:
    """NaN and infinities become None, recursively (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value
