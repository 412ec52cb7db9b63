"""The `drift:` config section.

Every default is explained in `retrain.drift` (the package docstring); in short: distances at
any sample size (normalised Wasserstein 0.1 for numbers, Jensen-Shannon 0.1 for categories, as
Evidently) that must also exceed their null threshold (what two samples of these sizes from
one distribution reach with chance `null_alpha`, 0.01, Bonferroni-divided), KS at 0.01 (also
Bonferroni-divided) for numbers when the smaller sample has fewer than `small_sample` (1000)
values, and a dataset counts as drifted when at least half of its features drifted
(`drift_share`). A numeric column of more than `max_sample_rows` (100,000) finite values is
judged on a seeded uniform sample of that many.

Thresholds merge with the defaults key by key, and a per-feature override changes that
feature only, so setting one never resets another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator, model_validator

from retrain.errors import ValidationError
from retrain.settings._base import Section

__all__ = [
    "KINDS",
    "METHOD_CATALOGUE",
    "TESTS",
    "DriftConfig",
    "FeatureOverride",
    "MethodInfo",
    "check_declaration",
    "declare_method",
    "forget_method",
    "method_names",
]

KINDS = ("numeric", "categorical")
TESTS = ("distance", "p_value")


@dataclass(frozen=True)
class MethodInfo:
    """What the config needs to know of a drift method: where it applies, how it is judged.

    The statistics themselves live in `retrain.drift` (which implements every name declared
    here); keeping the catalogue beside the settings lets a config be validated without
    importing the engine.
    """

    name: str
    kinds: frozenset[str]
    test: str
    default_threshold: float
    default_warn: float | None = None
    description: str = ""


#: Every declared method by name: the built-ins below, plus any `register_method` adds.
METHOD_CATALOGUE: dict[str, MethodInfo] = {}


def check_declaration(info: MethodInfo, *, replace: bool = False) -> None:
    """Refuse a malformed declaration (or a second one of a name, unless `replace`).

    Raises:
        ValidationError: every problem named.
    """
    problems = []
    name = info.name
    if not name or not name.replace("_", "").isalnum():
        problems.append(f"name {name!r} must be letters, digits and '_'")
    if name in METHOD_CATALOGUE and not replace:
        problems.append(f"{name!r} is already registered (pass replace=True to replace it)")
    if not info.kinds or set(info.kinds) - set(KINDS):
        problems.append(f"kinds must be a non-empty subset of {KINDS}, got {tuple(info.kinds)}")
    if info.test not in TESTS:
        problems.append(f"test must be one of {TESTS}, got {info.test!r}")
    if not info.default_threshold > 0.0:
        problems.append(f"default_threshold must be > 0, got {info.default_threshold}")
    if info.default_warn is not None and (
        info.test != "distance" or info.default_warn > info.default_threshold
    ):
        problems.append("default_warn is for distance methods and must not exceed the threshold")
    if problems:
        raise ValidationError(f"cannot register drift method {name!r}", problems)


def declare_method(info: MethodInfo, *, replace: bool = False) -> None:
    """Add a method to the catalogue (the drift engine does when one is registered)."""
    check_declaration(info, replace=replace)
    METHOD_CATALOGUE[info.name] = info


def forget_method(name: str) -> None:
    """Remove a declared method (the drift engine does when one is unregistered)."""
    METHOD_CATALOGUE.pop(name, None)


def method_names(kind: str | None = None) -> list[str]:
    """Declared method names, for one feature kind or all."""
    return sorted(n for n, m in METHOD_CATALOGUE.items() if kind is None or kind in m.kinds)


def _builtin(name: str, kinds: tuple[str, ...], test: str, threshold: float, **kw: Any) -> None:
    declare_method(MethodInfo(name, frozenset(kinds), test, threshold, **kw))


_builtin(
    "ks",
    ("numeric",),
    "p_value",
    0.01,
    description="Two-sample Kolmogorov-Smirnov: largest ECDF gap, with scipy's two-sided p-value.",
)
_builtin(
    "wasserstein",
    ("numeric",),
    "distance",
    0.1,
    description="Wasserstein-1 distance divided by the reference standard deviation.",
)
_builtin(
    "psi",
    ("numeric", "categorical"),
    "distance",
    0.25,
    default_warn=0.1,
    description="Population stability index over reference-quantile bins or categories.",
)
_builtin(
    "jensenshannon",
    ("numeric", "categorical"),
    "distance",
    0.1,
    description="Jensen-Shannon distance (square root of the divergence, base 2: from 0 to 1).",
)
_builtin(
    "linf",
    ("categorical",),
    "distance",
    0.3,
    description="L-infinity distance: the largest change in any category's share.",
)
_builtin(
    "chi2",
    ("categorical",),
    "p_value",
    0.01,
    description="Pearson's chi-square on the 2 x k table of category counts "
    "(no continuity correction).",
)


def _known(name: str, kind: str | None = None) -> str:
    if name not in METHOD_CATALOGUE:
        raise ValueError(f"unknown drift method {name!r}; choose one of {method_names()}")
    if kind is not None and kind not in METHOD_CATALOGUE[name].kinds:
        raise ValueError(
            f"drift method {name!r} does not apply to {kind} features; "
            f"choose one of {method_names(kind)}"
        )
    return name


class FeatureOverride(Section):
    """One feature's own method and threshold; the other features keep theirs."""

    method: str | None = Field(
        default=None, description="A registered method; replaces the sample-size-based choice."
    )
    threshold: float | None = Field(
        default=None,
        gt=0.0,
        description="Distance methods: drift at or above it. p-value tests: the alpha.",
    )

    @field_validator("method")
    @classmethod
    def _method_known(cls, v: str | None) -> str | None:
        return None if v is None else _known(v)

    @model_validator(mode="after")
    def _threshold_needs_method(self) -> FeatureOverride:
        # A threshold means different things for different methods (a distance, an alpha), and
        # the default method changes with the sample size: say which one it is for.
        if self.threshold is not None and self.method is None:
            raise ValueError(
                "a threshold needs the method it is for (e.g. method: wasserstein, "
                "threshold: 0.2): a distance and a p-value are on different scales"
            )
        return self


class DriftConfig(Section):
    """Which drift methods run and when a feature or the dataset counts as drifted."""

    enabled: bool = Field(
        default=True,
        description="Build reference profiles at training and compare each ingested window.",
    )
    numeric_method: str = Field(default="wasserstein", description="Numeric features, large n.")
    categorical_method: str = Field(
        default="jensenshannon", description="Categorical features, large n."
    )
    small_sample: int = Field(
        default=1000,
        ge=0,
        description="Below this many values in the smaller sample, use the p-value tests.",
    )
    small_sample_numeric_method: str = "ks"
    # Not chi2: its p-values assume expected counts of about 5 per category and, with many
    # rare categories, are wrong by orders of magnitude (measured: 97% false alarms at
    # alpha 0.01 for 500 Zipf categories and 1,000 rows). Jensen-Shannon with its simulated
    # null threshold holds its rate there.
    small_sample_categorical_method: str = "jensenshannon"
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        validate_default=True,
        description="Per method: distance at or above which a feature drifted, or the alpha of "
        "a p-value test. Merged with the defaults: name only the ones you change.",
    )
    warn_thresholds: dict[str, float] = Field(
        default_factory=dict,
        validate_default=True,
        description="Per distance method: a lower level reported as a warning (psi 0.1).",
    )
    bonferroni: bool = Field(
        default=True,
        description="Divide the alphas (p-value tests and null_alpha) by the number of verdicts "
        "in a report (features, plus the model's scores).",
    )
    null_alpha: float = Field(
        default=0.01,
        gt=0.0,
        lt=1.0,
        description="Distance methods: a feature drifts only if its distance also exceeds the "
        "one that two samples of these sizes from the reference's distribution reach with "
        "this chance (the null threshold).",
    )
    bins: int = Field(
        default=10, ge=2, le=100, description="Reference-quantile bins for psi/jensenshannon."
    )
    features: dict[str, FeatureOverride] = Field(
        default_factory=dict, description="Per-feature method and threshold."
    )
    drift_share: float = Field(
        default=0.5, gt=0.0, le=1.0, description="Dataset drift: this share of features drifted."
    )
    weighted_drift_share: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Dataset drift: drifted features carry this share of the model's importance.",
    )
    prediction_method: str | None = Field(
        default=None, description="Prediction drift method; default: as for a numeric feature."
    )
    prediction_threshold: float | None = Field(default=None, gt=0.0)
    max_performance_drop: float = Field(
        default=0.05,
        ge=0.0,
        description="Labels known: drop of the primary metric vs the reference (metric units;"
        " for rmse and mae, in the target's units, a share of the reference: 0.05 = 5% worse).",
    )
    max_estimated_accuracy_drop: float = Field(
        default=0.05, ge=0.0, description="No labels yet: drop of the estimated accuracy."
    )
    calibrate_estimate: bool = Field(
        default=True,
        description="At training, map the model's confidence to its measured chance of being "
        "right on the held-out rows (isotonic), so the label-free estimate holds for a "
        "miscalibrated model too.",
    )
    max_estimate_gap: float = Field(
        default=0.02,
        ge=0.0,
        description="Warn when the label-free estimate on the held-out reference rows is off "
        "the measured accuracy by more than this.",
    )
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    bootstrap_samples: int = Field(default=200, ge=20, le=10000)
    profile_sample_size: int = Field(
        default=10_000,
        ge=10_000,
        description="Runs of the sorted sketch per numeric feature in the reference profile; "
        "a column up to this size is kept whole (at least 10,000, the size up to which KS "
        "p-values are exact). Also the texts (at most) of a window on which a text feature's "
        "design effect is estimated.",
    )
    max_sample_rows: int | None = Field(
        default=100_000,
        ge=1000,
        description="A numeric feature (and the model's scores) with more finite values than "
        "this is judged on a seeded uniform sample of this many, drawn without replacement "
        "(reference and window alike): its quantile bins, sketch, distances, p-values and "
        "null thresholds are the sample's, at the sample's size; its counts, null rate, "
        "range, mean and std stay the whole column's. At 100,000 the Wasserstein null "
        "threshold is far below its 0.1 effect size, so verdicts are decided by effect size. "
        "null: every value, sorted whole.",
    )
    importance_repeats: int = Field(
        default=3, ge=0, le=50, description="Permutation-importance repeats at training; 0: off."
    )
    importance_rows: int = Field(
        default=1000, ge=50, description="Held-out rows (at most) for permutation importance."
    )
    score_champion: bool = Field(
        default=True,
        description="At ingest, score the window with the champion (prediction drift and a "
        "label-free accuracy estimate).",
    )
    histograms: int = Field(
        default=3, ge=0, le=50, description="Drifted features drawn as text histograms."
    )

    @field_validator("numeric_method", "small_sample_numeric_method")
    @classmethod
    def _numeric_method(cls, v: str) -> str:
        return _known(v, "numeric")

    @field_validator("categorical_method", "small_sample_categorical_method")
    @classmethod
    def _categorical_method(cls, v: str) -> str:
        return _known(v, "categorical")

    @field_validator("prediction_method")
    @classmethod
    def _prediction_method(cls, v: str | None) -> str | None:
        return None if v is None else _known(v, "numeric")

    @field_validator("thresholds")
    @classmethod
    def _merge_thresholds(cls, v: dict[str, float]) -> dict[str, float]:
        for name, value in v.items():
            _known(name)
            if not value > 0.0:
                raise ValueError(f"threshold of {name!r} must be > 0, got {value}")
            if METHOD_CATALOGUE[name].test == "p_value" and not value < 1.0:
                raise ValueError(f"{name!r} is a p-value test: its alpha must be < 1, got {value}")
        # Key by key: naming one method's threshold keeps every other default.
        return {**{n: m.default_threshold for n, m in METHOD_CATALOGUE.items()}, **v}

    @field_validator("warn_thresholds")
    @classmethod
    def _merge_warnings(cls, v: dict[str, float]) -> dict[str, float]:
        for name, value in v.items():
            _known(name)
            if METHOD_CATALOGUE[name].test != "distance":
                raise ValueError(f"{name!r} is a p-value test: warnings are for distances")
            if not value > 0.0:
                raise ValueError(f"warn threshold of {name!r} must be > 0, got {value}")
        defaults = {
            n: m.default_warn for n, m in METHOD_CATALOGUE.items() if m.default_warn is not None
        }
        return {**defaults, **v}

    @model_validator(mode="after")
    def _warn_below_threshold(self) -> DriftConfig:
        if self.prediction_threshold is not None and self.prediction_method is None:
            raise ValueError(
                "prediction_threshold needs prediction_method (the method it is for): "
                "a distance and a p-value are on different scales"
            )
        for name, warn in self.warn_thresholds.items():
            if warn > self.thresholds.get(name, warn):
                raise ValueError(
                    f"warn_thresholds.{name} ({warn}) is above thresholds.{name} "
                    f"({self.thresholds[name]})"
                )
        return self

    def threshold_for(self, method: str) -> float:
        """The configured threshold of a method (its registered default if not configured)."""
        return self.thresholds.get(method, METHOD_CATALOGUE[method].default_threshold)

    def warn_for(self, method: str) -> float | None:
        """The warning level of a distance method, if it has one."""
        return self.warn_thresholds.get(method, METHOD_CATALOGUE[method].default_warn)

    def summary(self) -> dict[str, Any]:
        """The settings a report quotes."""
        return {
            "numeric_method": self.numeric_method,
            "categorical_method": self.categorical_method,
            "small_sample": self.small_sample,
            "small_sample_methods": [
                self.small_sample_numeric_method,
                self.small_sample_categorical_method,
            ],
            "bonferroni": self.bonferroni,
            "null_alpha": self.null_alpha,
            "max_sample_rows": self.max_sample_rows,
            "drift_share": self.drift_share,
            "weighted_drift_share": self.weighted_drift_share,
        }
