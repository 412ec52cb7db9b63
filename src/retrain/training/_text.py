"""Text features: one vectoriser per text column inside the saved pipeline.

Each text column gets its own vectoriser on a 1-D column selector (a ColumnTransformer entry
``("text:<name>", vectoriser, "<name>")``): scikit-learn's vectorisers take a sequence of
documents, not a 2-D frame. The vectorisers cannot skip missing values, so a missing text is
turned into an empty one before the model sees it (`fill_missing_text`), here and in the model
server alike.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer

from retrain.config import Config

__all__ = [
    "TEXT_PREFIX",
    "empty_text_problems",
    "fill_missing_text",
    "frozen_vocabulary_reason",
    "text_transformers",
]

#: ColumnTransformer entries for text columns are named this plus the column.
TEXT_PREFIX = "text:"
# Every run of word characters, single ones included (scikit-learn's default drops "a", "i").
_TOKEN_PATTERN = r"(?u)\b\w+\b"
# A text holds a token of `_TOKEN_PATTERN` exactly when it holds a word character.
_HAS_TOKEN = re.compile(r"\w")


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


def empty_text_problems(X: pd.DataFrame, cfg: Config) -> list[str]:
    """Per text feature of `X` without a single word, a problem naming it (tfidf only).

    A tfidf vocabulary learnt from no words is empty, and scikit-learn's error would blame the
    estimator; the hashing vectoriser needs no vocabulary, so such a column only carries no
    signal there.
    """
    if cfg.training.text.vectorizer != "tfidf":
        return []
    return [
        f"text feature '{c}' has no words in any of its {len(X)} training row(s) (every text "
        "is empty or missing), so training.text.vectorizer 'tfidf' has no vocabulary to learn"
        for c in cfg.text_features
        if c in X.columns and not any(_HAS_TOKEN.search(str(v)) for v in X[c].to_numpy())
    ]


def frozen_vocabulary_reason(preprocess: Any) -> str | None:
    """Why a fitted pipeline's text features call for a full refit, or None.

    A fitted tfidf vocabulary (and its idf weights) is frozen in an incremental update: a
    word first seen since the last full fit would be dropped, and the model could never learn
    it. The hashing vectoriser is stateless and needs no such refit.
    """
    columns = [
        column
        for name, transformer, column in getattr(preprocess, "transformers_", [])
        if name.startswith(TEXT_PREFIX) and isinstance(transformer, TfidfVectorizer)
    ]
    if not columns:
        return None
    listed = ", ".join(f"'{c}'" for c in columns)
    return (
        f"the tfidf vocabulary of text column(s) {listed} is refitted on the replay mix (a "
        "fitted vocabulary cannot learn new words in an update; training.text.vectorizer: "
        "hashing can)"
    )
