"""The `triggers:` config section."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from retrain.errors import ValidationError
from retrain.settings._base import Section, check_name
from retrain.settings.cron import parse_cron
from retrain.settings.durations import duration_delta, parse_duration

__all__ = ["KfpSettings", "ScheduleSpec", "TriggerConfig"]


def _duration(value: str) -> str:
    parse_duration(value)  # ValueError -> pydantic names the key
    return value


class ScheduleSpec(Section):
    """A named cron schedule (5 fields, UTC)."""

    name: str = Field(description="Lowercase letters, digits and '-'; unique among schedules.")
    cron: str = Field(description="5-field cron, UTC, e.g. '0 3 * * 1' (Mondays 03:00).")
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        try:
            parse_cron(v)
        except ValidationError as err:
            raise ValueError(str(err)) from None
        return v


class KfpSettings(Section):
    """Where runs go on a cluster: the KFP API, the experiment and the pipeline."""

    host: str | None = Field(default=None, description="KFP API URL; the CLI's --host wins.")
    experiment: str = "retrain"
    namespace: str | None = Field(default=None, description="Multi-user KFP only.")
    image: str | None = Field(
        default=None, description="Components image for the compiled pipeline (default: ours)."
    )
    pipeline_package: str | None = Field(
        default=None, description="A compiled pipeline YAML; compiled on the fly when unset."
    )
    schedule_prefix: str = Field(
        default="retrain-",
        description="Recurring runs whose name starts with this (+ model name) are ours.",
    )
    service_account: str | None = None

    @field_validator("schedule_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", v):
            raise ValueError("must be letters, digits, '.', '-' or '_' (it prefixes run names)")
        return v


class TriggerConfig(Section):
    """When to retrain: schedule, drift, performance drop, new data, cooldown, budget."""

    schedules: list[ScheduleSpec] = Field(default_factory=list)
    schedule_engine: Literal["monitor", "kfp"] = Field(
        default="monitor",
        description=(
            "Who fires the schedules: `retrain monitor --every` (embedded) or KFP recurring runs"
            " (`retrain schedule apply`); the other one ignores them, so they never fire twice."
        ),
    )
    drift: bool = Field(default=True, description="Retrain when the dataset drifts.")
    drift_windows: int = Field(
        default=2, ge=1, description="Hysteresis: consecutive drifted windows before retraining."
    )
    drift_backoff: bool = Field(
        default=True,
        description="After a drift launch whose challenger was not deployed (the drift did not"
        " cost the champion enough to replace it), the next drift launch needs twice the"
        " drifted windows in a row, up to drift_backoff_limit: ongoing drift the champion"
        " copes with stops launching every drift_windows windows. A new serving champion or a"
        " labelled drop shown beyond noise resets it; a drift the labelled metric confirms"
        " never waits for it.",
    )
    drift_backoff_limit: int | None = Field(
        default=None,
        ge=1,
        description="The most drifted windows in a row a backed-off drift launch needs; at"
        " least drift_windows. null: twice drift_windows.",
    )
    performance_drop: float | None = Field(
        default=0.05,
        ge=0.0,
        description="Retrain at once (no hysteresis) when the champion's primary metric on the"
        " newest labelled window is this much below its reference (metric units; for rmse and"
        " mae a share of the reference: 0.05 = 5% worse), as the drift engine measures it, and"
        " the drop's interval lies above zero (sampling noise of few labels does not explain"
        " it). null: off (the drift engine's labelled signal still counts toward the drift"
        " hysteresis).",
    )
    catch_up: bool = Field(
        default=True,
        description="After a confirmed labelled drop launched a retrain whose model was"
        " deployed, retrain again on each newer window whose labels reach"
        " labels.min_coverage, as long as each such model is deployed: the first model after"
        " a concept change has seen one window of the new regime among four parts of history,"
        " and the next windows' labels keep improving it. The chain ends at the first"
        " challenger not deployed (no gain shown), and cooldown and budget still apply.",
    )
    labelled_lookback: int = Field(
        default=14,
        ge=1,
        description="How many windows, the checked one included, the monitor searches newest"
        " first for the newest window whose labels reach labels.min_coverage (only windows"
        " after the champion's training window count). The search goes at least one window"
        " past labels.delay whatever is set here (the monitor and the backtest alike). Each"
        " window passed over costs a read of its ids and of their labels.",
    )
    judge_open_window: bool = Field(
        default=False,
        description="Let a monitor check without --window judge the newest window with events"
        " even while it is still open (its end after the monitor's clock; for period sources,"
        " the source's last window). Off: it judges the newest window that is over, as a"
        " scheduled run trains one, since a partial window of a periodic stream (a week so"
        " far) differs from the reference's whole windows by construction. On: for windows"
        " that must be watched before they end (daily fraud checked hourly).",
    )
    new_data_rows: int | None = Field(
        default=None, ge=1, description="Retrain once this many rows arrived untrained. Unset: off."
    )
    cooldown: str = Field(default="12h", description="Least time between two launches.")
    budget_runs: int = Field(default=4, ge=1, description="At most this many launches ...")
    budget_period: str = Field(default="7d", description="... in any window of this length.")
    lease_ttl: str = Field(
        default="6h", description="A run's lease expires after this (renewed while it runs)."
    )
    kfp: KfpSettings = KfpSettings()

    @field_validator("cooldown", "budget_period", "lease_ttl")
    @classmethod
    def _durations(cls, v: str) -> str:
        return _duration(v)

    @model_validator(mode="after")
    def _unique_schedules(self) -> TriggerConfig:
        names = [s.name for s in self.schedules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"schedule names must be unique: {dupes}")
        return self

    @model_validator(mode="after")
    def _backoff_limit(self) -> TriggerConfig:
        limit = self.drift_backoff_limit
        if limit is not None and limit < self.drift_windows:
            raise ValueError(
                f"drift_backoff_limit ({limit}) is below drift_windows ({self.drift_windows}):"
                " it caps the drifted windows a backed-off drift launch needs; set it to at"
                " least drift_windows, null for twice drift_windows, or drift_backoff: false"
                " to turn the back-off off"
            )
        return self

    @property
    def backoff_limit(self) -> int | None:
        """The drifted windows in a row a backed-off drift launch needs at most (None: no
        back-off; by default twice ``drift_windows``)."""
        if not self.drift_backoff:
            return None
        limit = self.drift_backoff_limit
        return 2 * self.drift_windows if limit is None else limit

    @property
    def cooldown_delta(self) -> timedelta:
        return duration_delta(self.cooldown)

    @property
    def budget_delta(self) -> timedelta:
        return duration_delta(self.budget_period)

    @property
    def lease_delta(self) -> timedelta:
        return duration_delta(self.lease_ttl)
