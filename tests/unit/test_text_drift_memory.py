"""Text drift: memory bounded by a sample on a large window; case read as the model reads it."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from retrain.drift import ReferenceProfile, build_profile, detect_drift
from retrain.drift._text import TextComparison, TextProfile, compare_text, text_profile
from tests.unit.test_text_drift import _corpus
from tests.unit.test_text_features import text_cfg


def _peak_bytes(ref: TextProfile, window: pd.Series, sample_size: int) -> int:
    tracemalloc.start()
    try:
        compare_text(ref, window, alpha=0.01, sample_size=sample_size)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _fires(c: TextComparison) -> bool:
    assert c.distance is not None and c.null_threshold is not None
    return c.distance >= max(0.1, c.null_threshold)


def _uniform(n: int, rng: np.random.Generator) -> pd.Series:
    """Texts of 20 words drawn from 100: a small vocabulary, so that the null's cost (which
    grows with the vocabulary, not the window) does not hide the window's own."""
    words = np.array([f"w{i}" for i in range(100)])
    return pd.Series([" ".join(row) for row in words[rng.integers(0, 100, size=(n, 20))]])


def test_peak_memory_does_not_grow_with_the_window() -> None:
    rng = np.random.default_rng(11)
    ref = text_profile(_uniform(2000, rng))
    small, large = _uniform(5000, rng), _uniform(40_000, rng)
    # Eight times the texts. Holding every token of every text and a 64 x texts matrix of
    # random halves took 10 MB at 5,000 texts and 79 MB at 40,000; with the sample, the
    # extra cost is the per-text mask and pointer copy (9 bytes a text, 0.3 MB here).
    peak_small = _peak_bytes(ref, small, sample_size=2000)
    peak_large = _peak_bytes(ref, large, sample_size=2000)
    assert peak_large < peak_small + 2_000_000, (peak_small, peak_large)


def test_sampled_design_effect_keeps_the_verdicts_and_is_reported() -> None:
    rng = np.random.default_rng(12)
    ref = text_profile(_corpus(3000, rng))
    same, changed = _corpus(12_000, rng), _corpus(12_000, rng, slang=0.15)
    for window, expected in ((same, False), (changed, True)):
        whole = compare_text(ref, window, alpha=0.01, sample_size=len(window))
        sampled = compare_text(ref, window, alpha=0.01, sample_size=2000)
        assert _fires(whole) is expected and _fires(sampled) is expected
        # Every text is still counted: only the design effect comes from the sample.
        assert sampled.distance == whole.distance and sampled.oov_rate == whole.oov_rate
        assert whole.design_effect is not None and sampled.design_effect is not None
        assert abs(sampled.design_effect - whole.design_effect) < 0.25 * whole.design_effect
        assert (whole.design_sample, sampled.design_sample) == (len(window), 2000)
        assert sampled.details()["design_sample"] == 2000


@pytest.mark.parametrize("lowercase", [True, False])
def test_drift_reads_case_as_the_model_does(lowercase: bool) -> None:
    # The window shouts the reference's words: the same words to a lower-casing vectoriser,
    # new ones to a case-keeping one. The drift verdict follows training.text.lowercase.
    cfg = text_cfg({"lowercase": lowercase})
    mixed = text_profile(pd.Series(["Good good GOOD"]), lowercase=lowercase)
    assert mixed.terms == ({"good": 3} if lowercase else {"GOOD": 1, "Good": 1, "good": 1})
    rng = np.random.default_rng(13)
    words = _corpus(400, rng)
    reference = pd.DataFrame({"review": words, "stars_shown": rng.normal(size=400)})
    profile = ReferenceProfile.from_json(build_profile(reference, cfg).to_json())
    ref = profile.features["review"]
    assert isinstance(ref, TextProfile) and ref.lowercase is lowercase
    window = pd.DataFrame({"review": words.str.upper(), "stars_shown": rng.normal(size=400)})
    row = next(f for f in detect_drift(profile, window, cfg).features if f.feature == "review")
    assert row.drifted is not lowercase
    assert (row.text["oov_rate"] == 1.0) is not lowercase
