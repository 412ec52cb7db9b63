"""The `data:` and `labels:` config sections: where events and their late labels come from."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from retrain.settings._base import Section
from retrain.settings.durations import parse_duration
from retrain.settings.limits import InputLimits

__all__ = ["DataSource", "FeatureType", "LabelSource", "TimeKind"]

FeatureType = Literal["numeric", "categorical"]
TimeKind = Literal["timestamp", "date", "period"]


class DataSource(Section):
    """Where new events come from and what they look like."""

    uri: str = Field(description="File or directory of Parquet/CSV files (local path or gs://).")
    format: Literal["parquet", "csv"] = "parquet"
    id_column: str
    time_column: str
    time_kind: TimeKind = "timestamp"
    features: dict[str, FeatureType]
    prediction_column: str | None = Field(
        default=None, description="The serving model's logged prediction, if the logs carry it."
    )
    window_size: str | int = Field(
        default=1,
        description=(
            "Window length: an integer number of periods (default 1), or a duration like"
            " '7d' (default) for timestamps and dates."
        ),
    )
    min_rows: int = Field(default=100, ge=1, description="Fewer rows in a window is an error.")
    max_null_rate: float = Field(default=0.2, ge=0.0, le=1.0)
    range_tolerance: float = Field(
        default=0.5,
        ge=0.0,
        description="Numeric values may exceed the reference range by this fraction of its width.",
    )
    limits: InputLimits = Field(default_factory=InputLimits)

    @field_validator("features")
    @classmethod
    def _features_not_empty(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("at least one feature is required")
        return v

    @model_validator(mode="before")
    @classmethod
    def _default_window(cls, raw: Any) -> Any:
        # One period for period columns, one week for timestamps and dates.
        if isinstance(raw, dict) and "window_size" not in raw:
            kind = raw.get("time_kind", "timestamp")
            return {**raw, "window_size": 1 if kind == "period" else "7d"}
        return raw

    @model_validator(mode="after")
    def _window_matches_time_kind(self) -> DataSource:
        if (
            self.time_kind == "date"
            and isinstance(self.window_size, str)
            and parse_duration(self.window_size) % 86400
        ):
            raise ValueError("window_size must be whole days when time_kind is 'date'")
        if self.time_kind == "period":
            if not isinstance(self.window_size, int) or self.window_size < 1:
                raise ValueError(
                    "window_size must be a positive integer when time_kind is 'period'"
                )
        elif isinstance(self.window_size, int):
            raise ValueError(
                f"window_size {self.window_size!r} needs a unit (e.g. '7d') for a timestamp or "
                "date column"
            )
        else:
            parse_duration(self.window_size)
        return self


class LabelSource(Section):
    """Ground truth that arrives separately (and late), joined to events by id."""

    uri: str
    format: Literal["parquet", "csv"] = "parquet"
    id_column: str
    label_column: str
    time_column: str | None = Field(
        default=None,
        description=(
            "When the label became known. A run joins only labels dated at or before its time"
            " (the run parameter as_of, else the label step's clock; period sources need"
            " as_of), and the leakage check flags labels dated before their event."
        ),
    )
    min_coverage: float = Field(default=0.8, ge=0.0, le=1.0)
    classes: list[str] | None = Field(
        default=None,
        description=(
            "Classification: every class a label may take. A label outside it is an error;"
            " unset, the champion's classes are the reference (the first model: any)."
        ),
    )
    delay: str | int = Field(
        default=0,
        description=(
            "How long labels take to arrive: a duration like '7d' for timestamp and date"
            " sources, an integer number of periods for period sources; 0 (default) for none."
            " A scheduled run (window 'auto') trains the newest window that ended at least"
            " this long before the run's time, so its labels can pass min_coverage."
        ),
    )

    @field_validator("delay", mode="before")
    @classmethod
    def _delay_shape(cls, v: Any) -> Any:
        # `true` would pass as the integer 1; say what is meant instead.
        if isinstance(v, bool) or (isinstance(v, int) and v < 0):
            raise ValueError(f"{v!r} is not a delay: use 0, a whole number of periods or '7d'")
        if isinstance(v, str):
            parse_duration(v)  # ValueError names the value; pydantic names the key
        return v

    @staticmethod
    def delay_units(delay: str | int, time_kind: str) -> int:
        """`delay` in the units windows of `time_kind` use: seconds, or periods.

        Raises:
            ValueError: the delay does not fit the time kind (a duration for periods, a bare
                number other than 0 for timestamps and dates); the message names the key.
        """
        if time_kind == "period":
            if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
                raise ValueError(
                    f"labels.delay {delay!r} must be a whole number of periods (e.g. 2) when "
                    "data.time_kind is 'period'"
                )
            return delay
        if isinstance(delay, int) and not isinstance(delay, bool):
            if delay == 0:
                return 0
            raise ValueError(
                f"labels.delay {delay!r} needs a unit (e.g. '{delay}d') when data.time_kind "
                f"is {time_kind!r}"
            )
        try:
            return parse_duration(delay)
        except ValueError as err:
            raise ValueError(f"labels.delay: {err}") from None
