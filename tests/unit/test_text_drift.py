"""Text drift: vocabulary, OOV rate and distance against hand counts and scipy; measured rates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from retrain.drift import ReferenceProfile, build_profile, detect_drift
from retrain.drift._text import TextProfile, compare_text, text_profile
from retrain.errors import ValidationError
from retrain.reports import step_html
from retrain.settings.drift import DriftConfig
from tests.unit.test_text_features import text_cfg


def test_profile_keeps_hand_counted_terms_and_totals() -> None:
    ref = text_profile(pd.Series(["Good good, bad!", "nice", "", None]), max_terms=2)
    # good 2, bad 1, nice 1: the two most frequent kept (ties by term), one token beyond.
    assert ref.terms == {"good": 2, "bad": 1}
    assert (ref.n, ref.nulls, ref.tokens, ref.other, ref.empty) == (3, 1, 4, 1, 1)
    assert TextProfile.from_dict(ref.to_dict()) == ref


def test_oov_rate_and_distance_match_hand_counts_and_scipy() -> None:
    ref = text_profile(pd.Series(["good good bad", "nice", ""]))
    cur = compare_text(ref, pd.Series(["good lit", "lit lit", None]), alpha=0.01)
    # Window tokens: good 1, lit 3 -> 3 of 4 are not reference terms.
    assert cur.oov_rate == pytest.approx(0.75)
    assert (cur.n_cur, cur.nulls, cur.empty_share_cur, cur.mean_length_cur) == (2, 1, 0.0, 2.0)
    assert cur.empty_share_ref == pytest.approx(1 / 3)
    # Buckets good, bad, nice, other token, empty text.
    expected = jensenshannon([2, 1, 1, 0, 1], [1, 0, 0, 3, 0], base=2)
    assert cur.distance == pytest.approx(expected)
    assert cur.new_terms == {"lit": 3}


def test_vanished_terms_are_named_only_when_their_absence_is_telling() -> None:
    ref = text_profile(pd.Series(["refund broken item"] * 20 + ["rare word"]))
    cur = compare_text(ref, pd.Series(["mid item"] * 20), alpha=0.01)
    # 'refund' was a sixth of the tokens: 40 tokens expected it about 6.5 times. 'rare' once
    # in 62: expected 0.6 times, so its absence says nothing.
    assert list(cur.vanished_terms) == ["broken", "refund"]
    assert "rare" not in cur.vanished_terms
    assert cur.new_terms == {"mid": 20}


def _corpus(n: int, rng: np.random.Generator, slang: float = 0.0) -> pd.Series:
    """Reviews of Zipf-distributed words with topics (words of one review are related);
    `slang` of the tokens replaced by forty new words."""
    vocab = np.array([f"w{i}" for i in range(2000)])
    zipf = 1.0 / np.arange(1, 2001)
    zipf /= zipf.sum()
    topics = np.arange(2000).reshape(40, 50)
    out = []
    for _ in range(n):
        k = rng.poisson(10)
        topic = topics[rng.integers(40)]
        idx = np.where(rng.random(k) < 0.3, rng.choice(topic, k), rng.choice(2000, k, p=zipf))
        words = [f"slang{rng.integers(40)}" if rng.random() < slang else str(w) for w in vocab[idx]]
        out.append(" ".join(words))
    return pd.Series(out)


def _fires(ref: TextProfile, window: pd.Series, threshold: float = 0.1) -> bool:
    c = compare_text(ref, window, alpha=0.01)
    assert c.distance is not None and c.null_threshold is not None
    return c.distance >= max(threshold, c.null_threshold)


def test_false_alarms_are_rare_and_a_vocabulary_change_is_caught() -> None:
    # Small windows (300 reviews) where a fixed 0.1 cut-off would fire on every window: two
    # samples of this corpus are about 0.35 apart by chance alone.
    false_alarms = detected = 0
    for r in range(12):
        rng = np.random.default_rng(r)
        ref = text_profile(_corpus(300, rng))
        false_alarms += _fires(ref, _corpus(300, rng))
        detected += _fires(ref, _corpus(300, rng, slang=0.15))
    assert false_alarms <= 1
    assert detected == 12


def test_detect_drift_reports_text_in_json_and_markdown() -> None:
    cfg = text_cfg()
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"review": _corpus(400, rng), "stars_shown": rng.normal(size=400)})
    profile = ReferenceProfile.from_json(build_profile(reference, cfg).to_json())
    assert isinstance(profile.features["review"], TextProfile)
    window = pd.DataFrame(
        {"review": _corpus(400, rng, slang=0.3), "stars_shown": rng.normal(size=400)}
    )
    report = detect_drift(profile, window, cfg)
    row = next(f for f in report.features if f.feature == "review")
    assert row.kind == "text" and row.drifted
    assert row.text["oov_rate"] > 0.25
    assert all(term.startswith("slang") for term in row.text["new_terms"])
    assert report.to_dict()["features"][0]["text"]["new_terms"] == row.text["new_terms"]
    md = report.markdown()
    assert "### Text" in md and "new terms: slang" in md
    html = step_html("ingest", "drift", {"drift": report.to_dict()}, md)
    top = next(iter(row.text["new_terms"]))
    assert "Text features" in html and f"{top} ({row.text['new_terms'][top]})" in html


def test_all_empty_window_drifts_and_says_so() -> None:
    cfg = text_cfg()
    rng = np.random.default_rng(4)
    reference = pd.DataFrame({"review": _corpus(300, rng), "stars_shown": rng.normal(size=300)})
    profile = build_profile(reference, cfg)
    window = pd.DataFrame({"review": [""] * 300, "stars_shown": rng.normal(size=300)})
    row = detect_drift(profile, window, cfg).features[0]
    assert row.drifted and row.note == "every text in the window is empty"
    assert row.text["empty_share_cur"] == 1.0 and row.text["oov_rate"] == 0.0


def test_one_repeated_token_window_drifts_and_names_it() -> None:
    cfg = text_cfg()
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"review": _corpus(300, rng), "stars_shown": rng.normal(size=300)})
    profile = build_profile(reference, cfg)
    window = pd.DataFrame({"review": ["spam spam spam"] * 300, "stars_shown": rng.normal(size=300)})
    row = detect_drift(profile, window, cfg).features[0]
    assert row.drifted
    assert row.text["new_terms"] == {"spam": 900} and row.text["oov_rate"] == 1.0


def test_method_override_for_a_text_feature_is_refused() -> None:
    rng = np.random.default_rng(6)
    reference = pd.DataFrame({"review": _corpus(50, rng), "stars_shown": rng.normal(size=50)})
    profile = build_profile(reference, text_cfg())
    dc = DriftConfig.model_validate({"features": {"review": {"method": "ks"}}})
    with pytest.raises(ValidationError, match="does not apply to text"):
        detect_drift(profile, reference, dc)
