"""Text features: one vectoriser per text column inside the saved pipeline.

Each text column gets its own vectoriser on a 1-D column selector (a ColumnTransformer entry
``("text:<name>", vectoriser, "<name>")``): scikit-learn's vectorisers take a sequence of
documents, not a 2-D frame. The vectorisers cannot skip missing values, so a missing text is
turned into an empty one before the model sees it (`fill_missing_text`), here and in the model
server alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer

from retrain.config import Config

__all__ = ["TEXT_PREFIX", "fill_missing_text", "text_transformers"]

#: ColumnTransformer entries for text columns are named this plus the column.
TEXT_PREFIX = "text:"
# Every run of word characters, single ones included (scikit-learn's default drops "a", "i").
_TOKEN_PATTERN = r"(?u)\b\w+\b"


def text_vectorizer(cfg: Config) -> HashingVectorizer | TfidfVectorizer:
    """An unfitted vectoriser per `training.text`."""
    t = cfg.training.text
    if t.vectorizer == "hashing":
        # Non-negative counts, L2-normalised: comparable to TF-IDF without a fitted vocabulary.
        return HashingVectorizer(
            n_features=t.n_features,
            ngram_range=t.ngram_range,
            lowercase=t.lowercase,
            alternate_sign=False,
            norm="l2",
            token_pattern=_TOKEN_PATTERN,
        )
    return TfidfVectorizer(
        max_features=t.max_features,
        min_df=t.min_df,
        ngram_range=t.ngram_range,
        lowercase=t.lowercase,
        token_pattern=_TOKEN_PATTERN,
        sublinear_tf=True,
        dtype=np.float64,
    )


def text_transformers(cfg: Config) -> list[tuple[str, Any, str]]:
    """ColumnTransformer entries for the text features of `cfg`, in config order."""
    return [(f"{TEXT_PREFIX}{name}", text_vectorizer(cfg), name) for name in cfg.text_features]


def fill_missing_text(X: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """`X` with every missing value of a text feature replaced by "" (a copy if any changed)."""
    columns = [c for c in cfg.text_features if c in X.columns]
    if not columns or not any(X[c].isna().any() for c in columns):
        return X
    out = X.copy()
    for c in columns:
        out[c] = out[c].astype(object).where(out[c].notna(), "")
    return out
