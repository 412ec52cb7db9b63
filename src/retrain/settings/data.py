"""The `data:` and `labels:` config sections: where events and their late labels come from."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from retrain.settings._base import Section
from retrain.settings.durations import parse_duration
from retrain.settings.limits import InputLimits

__all__ = ["DataSource", "FeatureType", "LabelSource", "TimeKind"]

#: ``identifier``: a high-cardinality key such as a user or item id (encoded by
#: `training.identifier_encoding`; drift is judged by the unseen-id share and top-k mass, and a
#: new id is never taken for a bad value). ``text``: free text, vectorised by `training.text`.
FeatureType = Literal["numeric", "categorical", "identifier", "text"]
TimeKind = Literal["timestamp", "date", "period"]


class DataSource(Section):
    """Where new events come from and what they look like."""

    uri: str = Field(description="File or directory of Parquet/CSV files (local path or gs://).")
    format: Literal["parquet", "csv"] = "parquet"
    id_column: str
    time_column: str
    time_kind: TimeKind = "timestamp"
    features: dict[str, FeatureType] = Field(
        description=(
            "Feature name -> kind: numeric, categorical, or text (free text, vectorised inside"
            " the model per training.text; a missing text is treated as an empty one)."
        )
    )
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
        description=(
            "Numeric values beyond the reference range by more than this fraction of its width"
            " are counted and reported as drift (the window proceeds). The reference is the"
            " serving champion's training data, or the first window before there is one."
        ),
    )
    max_quarantine_share: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description=(
            "Rows with a problem of their own (no id, a non-number in a numeric feature, a"
            " category seen in fewer than min_category_rows rows) are set aside in the store's"
            " quarantine/ with a reason; a window with a larger share of such rows fails."
        ),
    )
    min_category_rows: int = Field(
        default=3,
        ge=1,
        description=(
            "A category the reference never saw is a new category (drift, kept) when at least"
            " this many rows of the window carry it; rarer ones are taken for bad values and"
            " their rows quarantined."
        ),
    )
    ignore_columns: list[str] = Field(
        default_factory=list,
        description=(
            "Source columns that are neither id, time, features nor the prediction (e.g. a"
            " logged probability): dropped at ingest and listed in its report."
        ),
    )
    extra_columns: Literal["fail", "ignore"] = Field(
        default="fail",
        description=(
            "Any other unexpected column: 'fail' (default: a new column is a contract change)"
            " or 'ignore' (drop and list it, as ignore_columns does)."
        ),
    )
    window_anchor: str | int | None = Field(
        default=None,
        description=(
            "Where the window grid starts: an integer period, or an ISO date or datetime."
            " Unset: period 0, or Monday 1970-01-05 00:00 UTC for time windows (so weekly"
            " windows are ISO weeks). Set it to the first event to align windows to the data."
        ),
    )
    limits: InputLimits = Field(default_factory=InputLimits)
    partitioning: Literal["none", "date", "window"] = Field(
        default="none",
        description=(
            "Hive-style directories that name event time, trusted to skip files unopened:"
            " 'date' (date=YYYY-MM-DD, UTC days), 'window' (window=<id> on the grid of"
            " partition_size) or 'none' (default: every file is opened; row-group statistics"
            " still skip the data pages of other windows)."
        ),
    )
    partition_size: str | int | None = Field(
        default=None,
        description=(
            "With partitioning 'window': the span each window=<id> directory holds, as written"
            " (e.g. '7d', or periods); required, so a later window_size change keeps it."
        ),
    )

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
        self._check_anchor()
        self._check_partitioning()
        if self.id_column == self.time_column:
            raise ValueError(
                f"id_column and time_column are both {self.id_column!r}: ingest parses the time"
                " column into times, so it cannot also be the id the labels are joined on (no"
                " label would match); give each row an id column of its own (a row number, or"
                " the time copied into another column)"
            )
        return self

    def _check_partitioning(self) -> None:
        if self.partitioning == "date" and self.time_kind == "period":
            raise ValueError("partitioning 'date' needs a timestamp or date time_kind, not period")
        if self.partitioning != "window":
            if self.partition_size is not None:
                raise ValueError("partition_size applies only to partitioning: window")
            return
        size = self.partition_size
        if size is None:
            raise ValueError(
                "partitioning 'window' needs partition_size: the span its window=<id>"
                " directories were written with (e.g. '7d'), which may differ from window_size"
            )
        if self.time_kind == "period":
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError("partition_size must be a positive integer for periods")
        elif not isinstance(size, str):
            raise ValueError(f"partition_size {size!r} needs a unit (e.g. '7d')")
        elif parse_duration(size) % 86400 and self.time_kind == "date":
            raise ValueError("partition_size must be whole days when time_kind is 'date'")

    def _check_anchor(self) -> None:
        anchor = self.window_anchor
        if anchor is None:
            return
        if self.time_kind == "period":
            if isinstance(anchor, bool) or not isinstance(anchor, int):
                raise ValueError(
                    f"window_anchor {anchor!r} must be an integer period when time_kind is 'period'"
                )
            return
        text = str(anchor).strip()
        try:
            dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise ValueError(
                f"window_anchor {anchor!r} must be an ISO date or datetime (e.g. 2024-01-03 or"
                f" 2024-01-03T06:00:00Z) when time_kind is {self.time_kind!r}"
            ) from None


def _named_class(value: str | int, classes: list[str]) -> bool:
    """Whether `value` is one of `classes` as written, or as the same number (0 and '0.0')."""
    if str(value) in classes:
        return True
    try:
        number = float(value)
    except ValueError:
        return False
    for c in classes:
        try:
            if float(c) == number:
                return True
        except ValueError:
            continue
    return False


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
    provisional_windows: int = Field(
        default=0,
        ge=0,
        description=(
            "Train on partly labelled recent windows: a run also uses the labels known at its"
            " time for up to this many newest windows after its own that ended by then and are"
            " not in history (coverage still short of min_coverage): their training rows join"
            " the new data, their evaluation rows the recent evaluation set. Nothing of them"
            " is written to history; the run's reports list them. 0 (default): off. Valid"
            " only when a label's arrival does not depend on its value (early labels must be"
            " a fair sample); where, say, frauds are confirmed before legitimate transactions,"
            " early labels over-represent one class and bias both training and the gate:"
            " check_arrival refuses them there."
        ),
    )
    check_arrival: bool = Field(
        default=True,
        description=(
            "With provisional_windows: before using them, re-enact each one's early labels on a"
            " settled window of history (the run's own or one before it whose labels have"
            " stopped arriving, at least min_coverage; else the best covered, its unlabelled"
            " events left open) and use none if a class's odds among them are shown (exact"
            " interval, 5% over all comparisons) more than 1.25 times off its odds among all"
            " (regression: the share above the median); none either if the check cannot be"
            " made. The label report says which class, its shares and the window. Off: trust"
            " the label source."
        ),
    )
    classes: list[str] | None = Field(
        default=None,
        description=(
            "Classification: every class a label may take. A label outside it is an error;"
            " unset, the champion's classes are the reference (the first model: any)."
        ),
    )
    positive_class: str | int | bool | None = Field(
        default=None,
        description=(
            "Binary classification: the class the rare-event metrics (average_precision,"
            " recall_at_precision_<P>) and the canary's ranking checks judge, e.g. 'fraud'."
            " Unset: the second of the two classes in sorted order (1 of 0/1, True of"
            " booleans, 'yes' of 'no'/'yes'; but 'ok' of 'fraud'/'ok', so set it for text"
            " labels). ROC AUC, accuracy, log loss, Brier and F1 (macro) do not depend on it."
            " Refused with more than two classes: at load when classes lists them, else at the"
            " train step when the training labels hold more."
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

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_as_text(cls, v: Any) -> Any:
        # Labels are matched to classes by value (0, 0.0, "0" and False are the class 0), so
        # classes written as numbers or booleans (YAML's `[0, 1]`) are that value's text.
        if isinstance(v, list):
            return [
                str(int(c)) if isinstance(c, bool) else str(c) if isinstance(c, int | float) else c
                for c in v
            ]
        return v

    @model_validator(mode="after")
    def _positive_among_classes(self) -> LabelSource:
        if self.positive_class is None or self.classes is None:
            return self
        if isinstance(self.positive_class, bool):
            # YAML reads an unquoted yes/no/on/true as a boolean, the class 1 or 0 (as labels
            # are matched): a text class must be quoted.
            if not _named_class(int(self.positive_class), self.classes):
                raise ValueError(
                    f"labels.positive_class is the boolean {self.positive_class}, not one of"
                    f" labels.classes {self.classes}: quote a text class (positive_class: 'yes')"
                )
        elif not _named_class(self.positive_class, self.classes):
            raise ValueError(
                f"labels.positive_class {self.positive_class!r} is not one of labels.classes"
                f" {self.classes}"
            )
        return self

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
