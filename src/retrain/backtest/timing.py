"""How the backtest treats time: when labels arrive, and how long a canary serves.

Labels are used only once they exist. With ``labels.time_column`` the labels known at a
window's end are those dated at or before it (`newest_labelled_window`); labels without times
arrive a fixed number of windows late (`ReplayOptions.label_delay`, 0 unless given).

The search for the newest labelled window looks back as far as the monitor does
(``triggers.labelled_lookback``), or one window past ``labels.delay`` when that is longer
(`search_depth`): a window whose labels never reach ``labels.min_coverage`` would otherwise be
joined again at every later window, so a long stream with unusable labels cost a join per pair
of windows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import pandas as pd

from retrain.config import Config, labelled_search_depth
from retrain.data.io import read_source
from retrain.data.windows import parse_window
from retrain.errors import RetrainError, ValidationError
from retrain.labels.join import join_labels

__all__ = ["ReplayOptions", "newest_labelled_window", "search_depth"]


@dataclass(frozen=True)
class ReplayOptions:
    """How the replay treats time: label and canary delays in windows.

    `label_delay` None means the data's own label times (``labels.time_column``), or no delay
    when the labels have none; a number of windows applies only to labels without times.
    `ignore_label_times` replays labels that carry times as if they had none (`applied`): each
    window's labels arrive `label_delay` windows after it (0: by its end), a counterfactual
    that shows what the label times cost each policy.
    """

    label_delay: int | None = None
    canary_delay: int = 0
    ignore_label_times: bool = False

    def applied(self, cfg: Config) -> Config:
        """`cfg` as the replay uses it: without ``labels.time_column`` when the label times
        are ignored, else as given."""
        if not self.ignore_label_times:
            return cfg
        untimed = cfg.labels.model_copy(update={"time_column": None})
        return cfg.model_copy(update={"labels": untimed})

    def resolve(self, cfg: Config, provisional: bool = False) -> tuple[Config, ReplayOptions]:
        """Check, then the config and options a replay runs on: with the label times ignored,
        the config without them (`applied`) and options that no longer ignore them.

        `provisional`: a policy of the replay trains on provisional labels, which are the
        labels known by a window's end: with labels arriving a number of windows late (label
        times ignored, or none and a `label_delay`) there are none to take.

        Raises:
            ValidationError: as `check`; provisional labels without label times; label times
                ignored while some id has more than one label (a correction, which only the
                times order).
        """
        self.check(cfg)
        untimed = self.ignore_label_times or not cfg.labels.time_column
        if provisional and untimed and (self.ignore_label_times or self.label_delay):
            raise ValidationError(
                "provisional labels (a policy's @provisional) are those known by a window's"
                " end, before its window is labelled: they need the labels' own times"
                " (labels.time_column), not "
                + ("--ignore-label-times" if self.ignore_label_times else "--label-delay")
            )
        if not self.ignore_label_times:
            return cfg, self
        _refuse_corrections(cfg)
        return self.applied(cfg), replace(self, ignore_label_times=False)

    def check(self, cfg: Config) -> None:
        """Refuse a label delay for labels that carry their own times (unless they are
        ignored), and ignoring label times the labels do not have.

        Raises:
            ValidationError: names the label time column and the option.
        """
        if self.ignore_label_times:
            if not cfg.labels.time_column:
                raise ValidationError(
                    "--ignore-label-times: the labels have no times to ignore (labels.time_column"
                    " is not set); --label-delay sets when they arrive"
                )
            cfg = self.applied(cfg)
        if self.label_delay is not None and cfg.labels.time_column:
            raise ValidationError(
                f"--label-delay {self.label_delay}: the labels carry their own times "
                f"(labels.time_column {cfg.labels.time_column!r}), which the backtest uses; "
                "a label delay in windows applies only to labels without a time column"
            )
        if self.label_delay is not None and self.label_delay < 0:
            raise ValidationError(
                f"--label-delay must be 0 or more windows, got {self.label_delay}"
            )


def _refuse_corrections(cfg: Config) -> None:
    """Refuse to ignore the label times of a source where some id has more than one label:
    the times say which is the newest, and without them the join would keep another."""
    ids = read_source(cfg.labels.uri, cfg.labels.format)[cfg.labels.id_column]
    repeated = ids[ids.duplicated()]
    if len(repeated):
        raise ValidationError(
            f"--ignore-label-times: {repeated.nunique()} id(s) have more than one label (e.g."
            f" {repeated.iloc[0]!r}), and only the labels' times ({cfg.labels.time_column}) say"
            " which is the newest; replay them by their own times"
        )


def newest_labelled_window(
    cfg: Config,
    windows: Sequence[str],
    events: Callable[[int], pd.DataFrame | None],
    labels: pd.DataFrame,
    i: int,
    *,
    label_delay: int | None = None,
    known: int = -1,
) -> int | None:
    """The index of the newest window whose labels have arrived by window `i`'s end, or None.

    With ``labels.time_column``: the newest window up to `i` whose labels dated at or before
    window `i`'s end pass the label join (``labels.min_coverage`` and the leakage check), as
    `steps.label` judges them; `events(k)` gives window `k`'s events (None: none ingested).
    Windows up to `known` are known to be ready already (labels never un-arrive), so the search
    stops there, and it looks at most `search_depth` windows back. Without a label time
    column: ``i - label_delay``.
    """
    if not cfg.labels.time_column:
        j = i - (label_delay or 0)
        return j if j >= 0 else None
    as_of = parse_window(cfg.data, windows[i]).end
    for k in range(i, max(known, i - search_depth(cfg)), -1):  # newest first
        frame = events(k)
        if frame is None:
            continue
        try:
            join_labels(cfg, frame, labels, as_of=as_of)
        except RetrainError:
            continue
        return k
    return known if known >= 0 else None


def search_depth(cfg: Config) -> int:
    """How many windows, the newest included, the search for labelled windows looks at (see
    `retrain.config.labelled_search_depth`, which the monitor uses too)."""
    return labelled_search_depth(cfg)
