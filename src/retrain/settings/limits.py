"""The `data.limits:` config section: the largest input ingest accepts before reading it."""

from __future__ import annotations

from pydantic import Field

from retrain.settings._base import Section

__all__ = ["InputLimits"]


class InputLimits(Section):
    """Caps on a source, checked before its rows are loaded (`retrain.data.limits`).

    The defaults are far above any real window and far below what exhausts a worker: a file
    past them is refused with exit 2, naming the limit, instead of being loaded whole.
    """

    max_rows: int = Field(default=50_000_000, ge=1, description="Rows in the whole source.")
    max_columns: int = Field(default=2_000, ge=1, description="Columns in any source file.")
    max_file_bytes: int = Field(
        default=8 * 2**30, ge=1, description="Bytes of any one source file (8 GiB)."
    )
    max_value_bytes: int = Field(
        default=2**20, ge=1, description="Bytes of any one text value (1 MiB)."
    )
