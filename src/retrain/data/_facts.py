"""What a read of one window tells about the whole source (`retrain.data.source.read_window`),
and about the files the window's rows come from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["SourceFacts", "window_files"]


@dataclass(frozen=True)
class SourceFacts:
    """What ingest reports about the whole source: from Parquet footers, or counted as a CSV
    source streams past.

    ``time_min`` / ``time_max`` are the extreme event times (None when no row has one);
    ``columns`` names every column of the source (also those not read); ``unreadable`` counts
    the times that are not of the time kind, with a few of them as examples.
    ``window_files`` maps each file holding rows of the window (by URI) to its columns where
    the files read do not all have the same columns (a column renamed in an old file, one
    file with an extra column): the window is judged on its own files. None where they all
    have ``columns``.
    """

    rows: int
    no_time: int
    time_min: Any
    time_max: Any
    columns: tuple[str, ...] | None = None
    unreadable: int = 0
    unreadable_examples: tuple[Any, ...] = ()
    window_files: dict[str, tuple[str, ...]] | None = None


def window_files(
    columns: Mapping[str, Sequence[str]], held: Iterable[str]
) -> dict[str, tuple[str, ...]] | None:
    """The columns of the files in `held` (those holding rows of the window), from `columns`
    (every file read, by URI, with its columns); None when every file read has the same
    columns, in whatever order."""
    if len({frozenset(names) for names in columns.values()}) <= 1:
        return None
    return {uri: tuple(columns[uri]) for uri in held}
