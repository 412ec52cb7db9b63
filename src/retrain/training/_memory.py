"""Lighter forms of the training frames, for the fit only: the fitted model does not change.

scikit-learn turns a text column into a NumPy object array before imputing or one-hot encoding
it. From an Arrow-backed text column (pandas' default ``str``) that makes one Python string per
row, in every transformer that validates its input: about 60 bytes a value, the largest
transient of the fit. From a pandas ``category`` column it makes an array of references to the
few category strings. The values, and so every fitted attribute, are the same.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
from sklearn.pipeline import Pipeline

__all__ = ["one_hot_columns", "release_unused_memory", "text_as_categories"]

#: The ColumnTransformer entry that one-hot encodes (`retrain.training.model.build_estimator`).
_ONE_HOT = "categorical"


def one_hot_columns(model: Pipeline) -> list[str]:
    """The columns an unfitted pipeline of `build_estimator` one-hot encodes."""
    preprocess = model.steps[0][1] if model.steps else None
    for name, _, columns in getattr(preprocess, "transformers", []):
        if name == _ONE_HOT:
            return list(columns)
    return []


def text_as_categories(X: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """`X` with its Arrow-backed text columns among `columns` as ``category`` (a new frame;
    `X` is left as it is). Object and non-text columns are kept: their conversion to NumPy
    copies no strings."""
    chosen = [c for c in columns if c in X.columns and _arrow_text(X[c].dtype)]
    if not chosen:
        return X
    return X.assign(**{c: X[c].astype("category") for c in chosen})


def _arrow_text(dtype: object) -> bool:
    return isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"


def release_unused_memory() -> None:
    """Hand memory freed by earlier stages back to the operating system.

    glibc's allocator keeps freed small and medium blocks (a pandas column of a window is one)
    in its heap, and after large frees it raises its threshold for serving allocations from
    fresh mappings, so the history read and the mix leave a heap that is mostly free but still
    resident, while the fit's large arrays are mapped anew beside it. Arrow's pool keeps freed
    pages too. Trimming both before the fit removes that dead weight from the step's peak.
    A no-op where glibc is not the C library.
    """
    pa.default_memory_pool().release_unused()
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)
