"""A window's rows and the labels known for them as of a time: what the monitor reads to judge
the champion, and the two ways that can give no label (`LabelSourceMissing`: none written
yet; `LabelsRefused`: the label join refused them, which is not the same as none arrived).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from retrain.config import Config
from retrain.data.io import SourceNotFound
from retrain.data.source import read_matching, read_window
from retrain.data.windows import parse_window, window_mask
from retrain.errors import RetrainError, ValidationError
from retrain.labels.join import join_labels, label_columns, without_coverage_floor

__all__ = ["LabelSourceMissing", "LabelsRefused", "known_labels", "window_rows"]


def window_rows(
    cfg: Config, window: str, columns: Sequence[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the source read for `window` (only its rows on the fast path, more otherwise) and
    the window's own rows; with `columns`, only those (and the time column).

    Raises:
        ValidationError: as `read_window`.
    """
    win = parse_window(cfg.data, window)
    source, _ = read_window(cfg.data.uri, cfg.data.format, cfg.data, win, columns=columns)
    rows = source.loc[window_mask(source[cfg.data.time_column], win, cfg.data.time_kind)]
    return source, rows.reset_index(drop=True)


class LabelsRefused(ValidationError):
    """The label join refused a window's labels: its message is the join's reasons, on one
    line. Not the same as no label known yet: no measurement may take it for that."""

    @classmethod
    def from_join(cls, err: ValidationError) -> LabelsRefused:
        head = str(err).splitlines()[0] if str(err) else type(err).__name__
        return cls(f"{head}: {'; '.join(err.problems)}" if err.problems else head)


class LabelSourceMissing(RetrainError):
    """The label source has no file yet: no label of any window is known. Not a refusal (a
    brand-new deployment is in this state until its first labels are written); the monitor
    says so in its note."""


def known_labels(cfg: Config, rows: pd.DataFrame, as_of: Any) -> pd.Series | None:
    """Labels aligned with a window's rows (NaN where none has arrived, or one is dated after
    `as_of`), or None when the join finds no label.

    Raises:
        LabelSourceMissing: no label file exists yet (a new deployment): no label is known,
            which is not a refusal of any.
        LabelsRefused: the label source cannot be read, or the label join refuses the
            window's labels (more than 1% dated before their event, infinite or non-numeric
            regression labels, labels of one id that disagree at its latest time, missing
            columns).
    """
    try:
        ids = rows[cfg.data.id_column]
        labels, read = read_matching(
            cfg.labels.uri, cfg.labels.format, cfg.labels.id_column, ids, label_columns(cfg)
        )
        label_ids = labels.get(cfg.labels.id_column)
        if not read["filtered"] and label_ids is not None and label_ids.dtype == ids.dtype:
            # Only this window's labels: the join's key normalisation is slow on all.
            # (A hash lookup of the window's ids: `isin` on Arrow strings converts them to
            # Python one by one.)
            labels = labels[pd.Index(ids.unique()).get_indexer(label_ids) >= 0]
        # Coverage is judged by the caller: the join takes whatever labels have arrived.
        relaxed = without_coverage_floor(cfg)
        # The join needs the id and the time only: the rows read from the source may also
        # hold the label itself (labels kept in the events' file, an ignored column there).
        keys = [cfg.data.id_column, cfg.data.time_column]  # distinct (checked at load)
        labelled = join_labels(relaxed, rows[keys], labels, as_of=as_of).labelled
    except SourceNotFound as err:
        raise LabelSourceMissing(str(err)) from err
    except ValidationError as err:
        raise LabelsRefused.from_join(err) from err
    if labelled.empty:
        return None
    by_id = labelled.drop_duplicates(cfg.data.id_column).set_index(cfg.data.id_column)
    return rows[cfg.data.id_column].map(by_id[cfg.target])
