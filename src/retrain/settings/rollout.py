"""The `rollout:` config section (progressive canary analysis).

Durations are plain seconds, so a value means the same to the state machine, the CLI and the
persisted rollout state. Every field has a default; an empty section gives a Flagger-like
rollout: 10 -> 25 -> 50 -> 100 %, one analysis every 5 minutes, rolled back after 2 failed
analyses in a row or 30 minutes without progress, checking error rate, p95 latency and
accuracy (classification) or loss (regression) of the canary against the champion.
"""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from retrain.settings._base import Section

__all__ = [
    "CHECK_NAMES",
    "RANK_CHECKS",
    "RECALL_AT_PRECISION_DROP",
    "CheckSpec",
    "PrometheusSettings",
    "ReplaySettings",
    "RolloutConfig",
    "default_checks",
    "is_rank_check",
]

#: The checks `retrain.rollout.checks` implements; config picks them by name.
CHECK_NAMES: tuple[str, ...] = (
    "error_rate",
    "latency_p95",
    "accuracy_drop",
    "loss_increase",
    "prediction_shift",
    "average_precision_drop",
)
#: ``recall_at_precision_<P>_drop``: the fall in recall at P% precision, any P in 1-99.
RECALL_AT_PRECISION_DROP = re.compile(r"recall_at_precision_([1-9][0-9]?)_drop")


def is_rank_check(name: str) -> bool:
    """Whether `name` is a ranking check (judged on per-request scores and labels)."""
    return name == "average_precision_drop" or RECALL_AT_PRECISION_DROP.fullmatch(name) is not None


#: The ranking checks, as their names are written in config (P is any level 1-99).
RANK_CHECKS = ("average_precision_drop", "recall_at_precision_<P>_drop")


class CheckSpec(Section):
    """One analysis check: a named metric and the largest value that still passes."""

    name: str = Field(
        description=f"One of {', '.join(CHECK_NAMES)} or recall_at_precision_<P>_drop."
    )
    max: float = Field(ge=0.0, description="The check passes while its value is <= max.")
    on_missing: Literal["fail", "skip"] = Field(
        default="fail",
        description=(
            "What a missing metric means: 'fail' (default: no data is not evidence of health) or"
            " 'skip' (for feedback that may not have arrived yet). A quality check with fewer"
            " than min_labelled labels waits under 'fail' and is skipped under 'skip'."
        ),
    )

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in CHECK_NAMES and not is_rank_check(v):
            raise ValueError(
                f"unknown check {v!r}; choose one of {', '.join(CHECK_NAMES)} or "
                "recall_at_precision_<P>_drop (P in 1-99)"
            )
        return v


def default_checks(task: str) -> tuple[CheckSpec, ...]:
    """Health (Flagger's 99% success rate; p95 latency) plus labelled model quality.

    `prediction_shift` is measured and reported in every analysis but is not a default check:
    a canary trained after a concept change is *meant* to predict differently. On the demo's
    drift (river Agrawal, function switch) a good canary sat at Jensen-Shannon distance 0.71
    from the old champion, and two good models of the new concept at 0.38. Add it (with
    ``on_missing: skip`` on the quality check) where labels arrive too late for the rollout.
    """
    quality = (
        CheckSpec(name="accuracy_drop", max=0.02)
        if task == "classification"
        else CheckSpec(name="loss_increase", max=0.1)
    )
    return (
        CheckSpec(name="error_rate", max=0.01),
        CheckSpec(name="latency_p95", max=0.5),
        quality,
    )


class ReplaySettings(Section):
    """The embedded provider: recent labelled windows replayed through both models."""

    windows: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        default="auto",
        description="Newest labelled windows to draw evaluation rows from. 'auto' (default): "
        "the fewest newest windows whose evaluation rows reach min_labelled (and, with a "
        "ranking check on a classifier, min_positives positives), at most max_windows; chosen "
        "at a step's first analysis and kept for the rest of the step. Older windows' "
        "evaluation rows are still rows no model trained on, but auto may reach into windows "
        "from before a change of concept; an int pins exactly that many windows.",
    )
    max_windows: int = Field(
        default=8,
        ge=1,
        description="The most windows 'auto' replays. 8 lets windows of ~313 rows reach the "
        "default min_labelled 500 at the default evaluation_share 0.2 (8 x 313 x 0.2), i.e. "
        "8 days of a daily stream or 2 months of a weekly one; further back the rows more "
        "likely describe an older concept, and each analysis (not just each step) reads up "
        "to max_windows parquet files. Short of min_labelled at the cap, the step ends "
        "'inconclusive' naming it.",
    )
    rows: int = Field(
        default=2000,
        ge=10,
        description="Evaluation rows per analysis, each scored by both models. The analyses of "
        "a step take disjoint rows (consecutive chunks of one permutation, fixed by the seed, "
        "the rollout and the step), so no row is pooled twice; the analysis that takes the last "
        "rows is the step's final look, judged on all of them (or, short of min_labelled, the "
        "rollout ends 'inconclusive' at once, saying so), and later ones replay rows without "
        "labels for the health checks.",
    )
    batch_size: int = Field(default=20, ge=1, description="Rows per simulated request.")
    threads: int = Field(
        default=1, ge=1, description="Threads per prediction, like a one-thread model server."
    )


class PrometheusSettings(Section):
    """PromQL over Seldon's executor metrics and the serving image's own metrics.

    Query templates may use ``{deployment}``, ``{namespace}``, ``{predictor}``, ``{window}``
    and ``{selector}`` (the label matchers of one predictor, including `extra_selector`).
    """

    url: str | None = Field(default=None, description="Base URL, e.g. http://prometheus:9090.")
    window: str = Field(default="5m", description="PromQL range of each analysis.")
    timeout_seconds: float = Field(default=10.0, gt=0.0)
    extra_selector: str = Field(
        default="",
        description="Extra label matchers for every series, e.g. 'namespace=\"models\"'.",
    )
    queries: dict[str, str] = Field(
        default_factory=dict,
        description="Per-metric PromQL overrides (keys: requests, error_rate, latency_p95, "
        "accuracy, loss, labelled, loss_histogram, ready, score_histogram).",
    )

    @field_validator("url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} must be an http:// or https:// URL")
        return v.rstrip("/") if v else v

    @field_validator("window")
    @classmethod
    def _range(cls, v: str) -> str:
        if not re.fullmatch(r"[1-9][0-9]*(ms|s|m|h|d|w|y)", v):
            raise ValueError(f"{v!r} is not a PromQL duration like '5m' or '30s'")
        return v


class RolloutConfig(Section):
    """Canary steps, analysis interval, checks and their thresholds, failure limit, deadline."""

    steps: tuple[int, ...] = Field(
        default=(10, 25, 50, 100),
        description="Canary traffic percentages, increasing, ending at 100 (= promotion).",
    )
    interval_seconds: float = Field(
        default=300.0, ge=0.0, description="Time between analyses (and after each step)."
    )
    analyses_per_step: int = Field(
        default=1, ge=1, description="Passing analyses needed before the next step."
    )
    failure_limit: int = Field(
        default=2, ge=1, description="Consecutive failed analyses that roll the canary back."
    )
    progress_deadline_seconds: float = Field(
        default=1800.0,
        gt=0.0,
        description="A step that makes no progress this long (e.g. never ready) rolls back.",
    )
    max_step_seconds: float = Field(
        default=21600.0,
        gt=0.0,
        description="The longest a step waits for labels. While a step's quality checks wait "
        "and its pooled labelled count still grows, its deadline moves to when the observed "
        "label rate is projected to reach the next look, never later than this after the step "
        "began; a step still short of labels then ends the rollout 'inconclusive' (canary out "
        "of traffic, unjudged). Equal to progress_deadline_seconds: a fixed deadline.",
    )
    checks: tuple[CheckSpec, ...] | None = Field(
        default=None, description="Checks and thresholds; default: `default_checks(task)`."
    )
    confidence: float = Field(
        default=0.95,
        gt=0.5,
        lt=1.0,
        description="A quality check fails only when its value exceeds max and the canary is "
        "worse than the champion beyond noise (the lower bound of the drop is above 0). The "
        "looks at the pooled labels share 1 - confidence: a step's first look is judged at "
        "1 - (1 - confidence) / (2 x canary steps), each further look at half the previous "
        "alpha, so an equal canary fails a look in a rollout at most 1 - confidence of the "
        "time.",
    )
    min_labelled: int = Field(
        default=500,
        ge=1,
        description="Labelled predictions per predictor, pooled over the analyses of the "
        "current step, before a quality check is evaluated; below it the check is 'not "
        "evaluated' and the step waits (the progress deadline still applies), or, when the "
        "provider can bring no more labels (a replay whose evaluation rows are all used), the "
        "rollout ends 'inconclusive' at once. 500 labels "
        "bound a proportion to +-4.4 points at "
        "95%: about the distance between the default 2-point tolerance and a clearly worse "
        "canary.",
    )
    min_positives: int = Field(
        default=100,
        ge=1,
        description="Labelled positives (labels.positive_class, else classes[1]; e.g. frauds) "
        "pooled over the current step's analyses before a ranking check (average_precision_drop, "
        "recall_at_precision_<P>_drop) is evaluated; below it the check is 'not evaluated' and "
        "the step waits, as under min_labelled. An all-negative sample has no ranking to judge.",
    )
    provider: Literal["replay", "prometheus"] = "replay"
    replay: ReplaySettings = ReplaySettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    shift_method: Literal["js", "psi"] = Field(
        default="js",
        description="Distance between champion and canary score distributions: Jensen-Shannon "
        "distance (0-1) or PSI.",
    )
    lock_ttl_seconds: float = Field(
        default=300.0, gt=0.0, description="A lock older than this is taken over (holder died)."
    )
    step_budget_seconds: float | None = Field(
        default=None,
        ge=0.0,
        description=(
            "How long the pipeline's rollout step drives the canary (None: until promoted or"
            " rolled back). 0 starts the canary and leaves the analysis to `retrain deploy"
            " advance` (e.g. a CronJob), so a long rollout does not hold a pipeline pod."
        ),
    )

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(v) < 2:
            raise ValueError("give at least one canary step below 100 and the final 100")
        if any(not 1 <= s <= 100 for s in v):
            raise ValueError(f"every step must be a percentage between 1 and 100, got {list(v)}")
        if any(b <= a for a, b in itertools.pairwise(v)):
            raise ValueError(f"steps must increase strictly, got {list(v)}")
        if v[-1] != 100:
            raise ValueError(f"the last step must be 100 (promotion), got {v[-1]}")
        return v

    @field_validator("checks")
    @classmethod
    def _checks(cls, v: tuple[CheckSpec, ...] | None) -> tuple[CheckSpec, ...] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("give at least one check (or leave the key out for the defaults)")
        names = [c.name for c in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"each check may appear once; repeated: {', '.join(dupes)}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _cap_follows_a_long_deadline(cls, data: Any) -> Any:
        # A fixed deadline longer than the default cap is its own cap (a config written
        # before the cap existed keeps meaning what it said).
        if isinstance(data, dict) and "max_step_seconds" not in data:
            deadline = data.get("progress_deadline_seconds")
            default = cls.model_fields["max_step_seconds"].default
            if isinstance(deadline, (int, float)) and deadline > default:
                return {**data, "max_step_seconds": deadline}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RolloutConfig:
        if self.provider == "prometheus" and not self.prometheus.url:
            raise ValueError("prometheus.url is required when provider is 'prometheus'")
        ranked = [c.name for c in self.checks or () if is_rank_check(c.name)]
        if self.provider == "prometheus" and ranked:
            raise ValueError(
                f"rollout check(s) {', '.join(ranked)} need each request's score and label, "
                "which Prometheus counters do not keep (a precision-recall curve cannot be "
                "rebuilt from feedback totals, and split traffic gives no pairing to bound a "
                "difference by); use provider 'replay', or judge the canary on loss_increase "
                "(log loss is a proper score that a missed positive moves) or accuracy_drop"
            )
        needed = self.interval_seconds * self.analyses_per_step
        if self.progress_deadline_seconds <= needed:
            raise ValueError(
                f"progress_deadline_seconds ({self.progress_deadline_seconds:g}) must exceed "
                f"interval_seconds x analyses_per_step ({needed:g}), or even a healthy canary "
                "would miss it"
            )
        if self.max_step_seconds < self.progress_deadline_seconds:
            raise ValueError(
                f"max_step_seconds ({self.max_step_seconds:g}) must be at least "
                f"progress_deadline_seconds ({self.progress_deadline_seconds:g})"
            )
        return self

    def checks_for(self, task: str) -> tuple[CheckSpec, ...]:
        """The configured checks, or the defaults for the task."""
        return self.checks if self.checks is not None else default_checks(task)
