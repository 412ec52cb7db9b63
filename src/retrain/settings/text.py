"""The `training.text:` config section: how text features become model inputs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from retrain.settings._base import Section

__all__ = ["TextConfig"]


class TextConfig(Section):
    """The vectoriser every `text` feature gets inside the saved model pipeline.

    ``hashing`` (the default) needs no vocabulary: a word first seen after training still
    lands in a column the model can learn, so continuous updates (`partial_fit`) keep up with
    new expressions, and the model file does not grow with the vocabulary. ``tfidf`` learns a
    vocabulary at each full fit (at most `max_features` terms seen in at least `min_df`
    documents) and weighs terms by rarity; terms it never saw are ignored until the next full
    fit. Either way rows are L2-normalised, and a missing text is an empty one.
    """

    vectorizer: Literal["hashing", "tfidf"] = Field(
        default="hashing",
        description="'hashing' (stateless; what continuous learning needs) or 'tfidf'.",
    )
    n_features: int = Field(
        default=2**18,
        ge=16,
        le=2**24,
        description="hashing: columns of the hashed term space (collisions are rare below it).",
    )
    max_features: int | None = Field(
        default=20_000, ge=1, description="tfidf: keep at most this many terms (most frequent)."
    )
    min_df: int = Field(
        default=2, ge=1, description="tfidf: ignore terms found in fewer documents than this."
    )
    ngram_range: tuple[int, int] = Field(
        default=(1, 2), description="Smallest and largest word n-gram, e.g. [1, 2]."
    )
    lowercase: bool = True

    @model_validator(mode="after")
    def _ngrams_ordered(self) -> TextConfig:
        lo, hi = self.ngram_range
        if not 1 <= lo <= hi <= 3:
            raise ValueError(
                f"ngram_range {list(self.ngram_range)} must be [lo, hi] with 1 <= lo <= hi <= 3"
            )
        return self
