"""Each drift method agrees with scipy (or the textbook formula) through the whole engine.

The statistics are computed the way monitoring computes them (profile, then `detect_drift`)
and compared with scipy on the raw values, on data with ties, missing values, constant columns
and categories the reference never saw. The Jensen-Shannon reported is the *distance* (the
square root of the divergence) in base 2, as `scipy.spatial.distance.jensenshannon(p, q,
base=2)` returns it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon as scipy_js
from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance

from retrain.config import Config, config_from_dict
from retrain.drift import METHODS, Comparison, FeatureDrift, build_profile, detect_drift
from retrain.drift._methods import (
    PSI_EMPTY_SHARE,
    WASSERSTEIN_MIN_SCALE,
    register_method,
    unregister_method,
)
from retrain.errors import ValidationError
from retrain.settings import DriftConfig

TOL = 1e-9


def config(kinds: dict[str, str], **drift: Any) -> Config:
    return config_from_dict(
        {
            "name": "m",
            "task": "classification",
            "target": "y",
            "storage_root": "store",
            "data": {"uri": "e", "id_column": "id", "time_column": "t", "features": kinds},
            "labels": {"uri": "l", "id_column": "id", "label_column": "y"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "deploy": {"deployment_name": "m"},
            "drift": drift,
        }
    )


def judge(
    ref: pd.DataFrame, cur: pd.DataFrame, method: str, **drift: Any
) -> dict[str, FeatureDrift]:
    """Every column of `ref` judged by `method` (numeric unless the dtype is text)."""
    kinds = {c: "numeric" if ref[c].dtype.kind == "f" else "categorical" for c in ref}
    cfg = config(kinds, features={c: {"method": method} for c in ref}, **drift)
    report = detect_drift(build_profile(ref, cfg), cur, cfg)
    return {f.feature: f for f in report.features}


def numeric_frames(n_ref: int, n_cur: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ties (values rounded), ~5% missing, a constant column, one that moves, one that is
    constant in the reference only."""
    rng = np.random.default_rng(seed)

    def col(n: int, loc: float, scale: float, digits: int) -> np.ndarray:
        v = np.round(rng.normal(loc, scale, n), digits)
        v[rng.random(n) < 0.05] = np.nan
        return v

    ref = pd.DataFrame(
        {
            "ties": col(n_ref, 0.0, 1.0, 1),
            "shifted": col(n_ref, 10.0, 2.0, 3),
            "constant": np.full(n_ref, 3.0),
            "became_varied": np.full(n_ref, 1.0),
        }
    )
    cur = pd.DataFrame(
        {
            "ties": col(n_cur, 0.1, 1.0, 1),
            "shifted": col(n_cur, 11.0, 2.5, 3),
            "constant": np.full(n_cur, 3.0),
            "became_varied": col(n_cur, 1.0, 0.5, 2),
        }
    )
    return ref, cur


def categorical_frames(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    cats = np.array(["a", "b", "c", "d", "e"])

    def col(n: int, p: list[float], extra: list[str] | None = None) -> pd.Series:
        values = rng.choice(cats, size=n, p=p).astype(object)
        values[rng.random(n) < 0.05] = None
        if extra:
            values[rng.random(n) < 0.04] = extra[0]
            values[rng.random(n) < 0.03] = extra[1]
        return pd.Series(values, dtype="str")

    ref = pd.DataFrame(
        {
            "plan": col(800, [0.4, 0.3, 0.15, 0.1, 0.05]),
            "same": col(800, [0.2] * 5),
            "constant": pd.Series(["x"] * 800, dtype="str"),
        }
    )
    cur = pd.DataFrame(
        {
            "plan": col(600, [0.3, 0.3, 0.2, 0.1, 0.1], extra=["new1", "new2"]),
            "same": col(600, [0.2] * 5),
            "constant": pd.Series(["x"] * 600, dtype="str"),
        }
    )
    return ref, cur


def finite(s: pd.Series) -> np.ndarray:
    v = s.to_numpy(dtype=float)
    return v[np.isfinite(v)]


def bucket_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts in (-inf, e0), [e0, e1), ..., [ek, inf), written out plainly."""
    lows = np.r_[-np.inf, edges]
    highs = np.r_[edges, np.inf]
    return np.array(
        [np.sum((values >= lo) & (values < hi)) for lo, hi in zip(lows, highs, strict=True)]
    )


def category_table(ref: pd.Series, cur: pd.Series) -> np.ndarray:
    """2 x k counts: the reference categories, then one bucket for all unseen ones."""
    cats = sorted(ref.dropna().unique())
    r = [int((ref == c).sum()) for c in cats] + [0]
    seen = cur.isin(cats)
    c = [int((cur == x).sum()) for x in cats] + [int((cur.notna() & ~seen).sum())]
    return np.array([r, c])


# --- numeric --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_ref", "n_cur"), [(300, 200), (900, 900), (20_000, 15_000)])
def test_ks_matches_scipy_statistic_and_p_value(n_ref: int, n_cur: int) -> None:
    """Exact p-values for small samples, the asymptotic distribution for large ones."""
    ref, cur = numeric_frames(n_ref, n_cur, seed=1)
    result = judge(ref, cur, "ks", profile_sample_size=max(n_ref, 10_000))  # the whole column
    for col in ref:
        expected = ks_2samp(finite(ref[col]), finite(cur[col]))
        assert result[col].statistic == pytest.approx(expected.statistic, abs=TOL), col
        assert result[col].p_value == pytest.approx(expected.pvalue, abs=TOL), col
    assert result["constant"].statistic == 0.0
    assert result["shifted"].drifted
    assert not result["constant"].drifted


@pytest.mark.parametrize("method", ["ks", "wasserstein"])
def test_against_a_sketched_reference_the_statistics_stay_within_the_sketch_bound(
    method: str,
) -> None:
    """A reference longer than `profile_sample_size` is a sketch: KS moves by at most the
    sketch's largest run (pi/2 / size of the column), Wasserstein by far less than 0.01."""
    ref, cur = numeric_frames(60_000, 40_000, seed=4)
    result = judge(ref, cur, method, profile_sample_size=10_000)
    for col in ["ties", "shifted"]:
        r, c = finite(ref[col]), finite(cur[col])
        if method == "ks":
            expected, bound = ks_2samp(r, c).statistic, np.pi / 2 / 10_000
        else:
            expected, bound = wasserstein_distance(r, c) / np.std(r), 1e-3
        assert result[col].statistic == pytest.approx(expected, abs=bound), col


@pytest.mark.parametrize("seed", [2, 3])
def test_wasserstein_matches_scipy_divided_by_the_reference_std(seed: int) -> None:
    ref, cur = numeric_frames(700, 500, seed=seed)
    result = judge(ref, cur, "wasserstein")
    for col in ref:
        r, c = finite(ref[col]), finite(cur[col])
        scale = max(float(np.std(r)), WASSERSTEIN_MIN_SCALE)  # population std, floored
        assert result[col].statistic == pytest.approx(
            wasserstein_distance(r, c) / scale, abs=TOL
        ), col
    assert result["constant"].statistic == 0.0
    assert result["became_varied"].drifted  # constant reference, moving current: no crash


@pytest.mark.parametrize("seed", [4, 5])
def test_numeric_jensenshannon_matches_scipy_on_reference_quantile_bins(seed: int) -> None:
    ref, cur = numeric_frames(1000, 800, seed=seed)
    cfg = config(
        {c: "numeric" for c in ref}, features={c: {"method": "jensenshannon"} for c in ref}
    )
    profile = build_profile(ref, cfg)
    result = {f.feature: f for f in detect_drift(profile, cur, cfg).features}
    for col in ref:
        r, c = finite(ref[col]), finite(cur[col])
        edges = profile.features[col].edges  # type: ignore[union-attr]
        if len(np.unique(r)) > 1:
            # The reference min, its inner deciles and the next float above its max.
            inner = np.quantile(r, np.arange(1, 10) / 10)
            assert np.array_equal(
                edges, np.unique(np.r_[r.min(), inner, np.nextafter(r.max(), 1e9)])
            )
        expected = scipy_js(bucket_counts(r, edges), bucket_counts(c, edges), base=2)
        assert result[col].statistic == pytest.approx(expected, abs=TOL), col
    assert result["constant"].statistic == 0.0
    # All current mass outside the single reference value: the distributions are disjoint.
    assert result["became_varied"].statistic > 0.5


def test_numeric_psi_matches_the_formula_on_reference_quantile_bins() -> None:
    ref, cur = numeric_frames(1000, 800, seed=6)
    cfg = config({c: "numeric" for c in ref}, features={c: {"method": "psi"} for c in ref})
    profile = build_profile(ref, cfg)
    result = {f.feature: f for f in detect_drift(profile, cur, cfg).features}
    for col in ref:
        edges = profile.features[col].edges  # type: ignore[union-attr]
        p = bucket_counts(finite(ref[col]), edges) / len(finite(ref[col]))
        q = bucket_counts(finite(cur[col]), edges) / len(finite(cur[col]))
        p, q = np.where(p == 0, PSI_EMPTY_SHARE, p), np.where(q == 0, PSI_EMPTY_SHARE, q)
        assert result[col].statistic == pytest.approx(np.sum((q - p) * np.log(q / p)), abs=TOL)


def test_missing_values_are_counted_and_left_out_of_the_statistic() -> None:
    ref, cur = numeric_frames(400, 300, seed=7)
    cur.loc[cur.index[:30], "ties"] = np.inf  # infinities count with the missing values
    f = judge(ref, cur, "ks")["ties"]
    assert f.n_ref == len(finite(ref["ties"]))
    assert f.n_cur == len(finite(cur["ties"]))
    assert f.null_rate_ref == pytest.approx(ref["ties"].isna().mean())
    assert f.null_rate_cur == pytest.approx(1 - len(finite(cur["ties"])) / len(cur))
    assert f.statistic == pytest.approx(
        ks_2samp(finite(ref["ties"]), finite(cur["ties"])).statistic, abs=TOL
    )


# --- categorical ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [8, 9])
def test_chi2_matches_scipy_contingency_without_correction(seed: int) -> None:
    ref, cur = categorical_frames(seed)
    result = judge(ref, cur, "chi2")
    for col in ("plan", "same"):
        table = category_table(ref[col], cur[col])
        table = table[:, table.sum(axis=0) > 0]
        stat, p, _, _ = chi2_contingency(table, correction=False)
        assert result[col].statistic == pytest.approx(stat, abs=TOL), col
        assert result[col].p_value == pytest.approx(p, abs=TOL), col
    assert (result["constant"].statistic, result["constant"].p_value) == (0.0, 1.0)
    assert result["plan"].drifted


@pytest.mark.parametrize("seed", [10, 11])
def test_categorical_jensenshannon_linf_psi_match_their_definitions(seed: int) -> None:
    ref, cur = categorical_frames(seed)
    js, linf, psi = (judge(ref, cur, m) for m in ("jensenshannon", "linf", "psi"))
    for col in ref:
        table = category_table(ref[col], cur[col])
        p, q = table[0] / table[0].sum(), table[1] / table[1].sum()
        assert js[col].statistic == pytest.approx(scipy_js(table[0], table[1], base=2), abs=TOL)
        assert linf[col].statistic == pytest.approx(np.max(np.abs(p - q)), abs=TOL)
        p, q = np.where(p == 0, PSI_EMPTY_SHARE, p), np.where(q == 0, PSI_EMPTY_SHARE, q)
        assert psi[col].statistic == pytest.approx(np.sum((q - p) * np.log(q / p)), abs=TOL)
    assert js["constant"].statistic == 0.0


def test_unseen_categories_are_one_bucket_and_named() -> None:
    ref, cur = categorical_frames(12)
    f = judge(ref, cur, "jensenshannon")["plan"]
    unseen = cur["plan"][cur["plan"].notna() & ~cur["plan"].isin(ref["plan"].dropna())]
    assert f.unseen_rows == len(unseen) > 0
    assert f.unseen_categories == unseen.value_counts().to_dict()
    assert f.histogram[-1].label == "(unseen)"
    assert f.histogram[-1].current == pytest.approx(len(unseen) / cur["plan"].notna().sum())
    assert judge(ref, cur, "jensenshannon")["same"].unseen_categories == {}


def test_integer_and_categorical_dtypes_map_to_the_same_categories() -> None:
    ref = pd.DataFrame({"c": pd.Series([1, 2, 2, 3] * 50)})
    cur_int = pd.DataFrame({"c": pd.Series([1.0, 2.0, np.nan, 4.0] * 40)})  # gained a null
    cur_cat = pd.DataFrame({"c": pd.Categorical(["1", "2", None, "4"] * 40)})
    cfg = config({"c": "categorical"}, features={"c": {"method": "chi2"}})
    profile = build_profile(ref, cfg)
    a = detect_drift(profile, cur_int, cfg).features[0]
    b = detect_drift(profile, cur_cat, cfg).features[0]
    assert a.unseen_categories == b.unseen_categories == {"4": 40}
    assert a.statistic == pytest.approx(b.statistic, abs=TOL)
    assert a.null_rate_cur == b.null_rate_cur == 0.25


# --- the registry ---------------------------------------------------------------------------------


def test_methods_are_registered_by_name_with_their_kinds() -> None:
    assert {"psi", "ks", "wasserstein", "jensenshannon", "chi2", "linf"} <= set(METHODS)
    assert METHODS["ks"].kinds == {"numeric"}
    assert METHODS["chi2"].kinds == {"categorical"}
    assert METHODS["psi"].kinds == METHODS["jensenshannon"].kinds == {"numeric", "categorical"}
    assert METHODS["ks"].test == METHODS["chi2"].test == "p_value"


def test_a_registered_method_is_usable_from_config() -> None:
    @register_method("mean_gap", kinds=("numeric",), test="distance", default_threshold=0.5)
    def mean_gap(c: Comparison) -> Any:
        """Absolute difference of the means, in reference standard deviations."""
        from retrain.drift import MethodResult

        ref, cur = c.sorted_values()
        return MethodResult(abs(cur.mean() - ref.mean()) / max(c.ref_scale, 1e-3))

    try:
        ref, cur = numeric_frames(500, 500, seed=13)
        f = judge(ref, cur, "mean_gap")["shifted"]
        r, c = finite(ref["shifted"]), finite(cur["shifted"])
        assert f.statistic == pytest.approx(abs(c.mean() - r.mean()) / np.std(r), abs=TOL)
        assert judge(ref, cur, "mean_gap")["constant"].statistic == 0.0
        assert (f.threshold, f.drifted) == (0.5, True)
    finally:
        unregister_method("mean_gap")
    assert "mean_gap" not in DriftConfig().thresholds  # nothing left behind for other tests


def test_registering_a_taken_name_or_a_bad_spec_is_refused() -> None:
    with pytest.raises(ValidationError, match="already registered"):
        register_method("psi", kinds=("numeric",), test="distance", default_threshold=0.1)
    with pytest.raises(ValidationError, match="kinds"):
        register_method("x1", kinds=("text",), test="distance", default_threshold=0.1)
    with pytest.raises(ValidationError, match="test must be"):
        register_method("x2", kinds=("numeric",), test="bayes", default_threshold=0.1)
    assert "x1" not in METHODS and "x2" not in METHODS


def test_a_method_refuses_a_kind_it_does_not_handle() -> None:
    c = Comparison("categorical", np.array([1, 2]), np.array([2, 1]))
    with pytest.raises(ValidationError, match="does not apply to categorical"):
        METHODS["ks"](c)


def test_ecdf_area_and_gap_match_scipy_with_and_without_counts() -> None:
    """The sketch arithmetic against scipy on many small samples: ties, sizes either way
    round, integer counts (scipy's u_weights; KS on the expanded sample)."""
    from retrain.drift._methods import ecdf_area, ecdf_gap

    rng = np.random.default_rng(8)
    for case in range(400):
        m, n = int(rng.integers(1, 40)), int(rng.integers(1, 90))
        if case % 2:
            a, b = rng.normal(size=m), rng.normal(0.3, 1.2, size=n)
        else:  # heavy ties
            a, b = rng.integers(0, 4, m).astype(float), rng.integers(0, 5, n).astype(float)
        a.sort()
        b.sort()
        w = rng.integers(1, 25, size=m)
        assert ecdf_area(a, b) == pytest.approx(wasserstein_distance(a, b), abs=TOL)
        assert ecdf_area(a, b, w) == pytest.approx(wasserstein_distance(a, b, u_weights=w), abs=TOL)
        assert ecdf_gap(a, b) == pytest.approx(ks_2samp(a, b, method="asymp").statistic, abs=TOL)
        assert ecdf_gap(a, b, w) == pytest.approx(
            ks_2samp(np.repeat(a, w), b, method="asymp").statistic, abs=TOL
        )


def test_ecdf_area_scales_counts_that_would_overflow_the_rank_grid() -> None:
    """A sketch standing for ~1e13 values against 2e6 would overflow int64 rank products."""
    from retrain.drift._methods import ecdf_area

    rng = np.random.default_rng(9)
    a = np.sort(rng.normal(size=1000))
    b = np.sort(rng.normal(0.2, 1.0, size=2_000_000))
    w = np.full(1000, 10**10, dtype=np.int64)
    assert ecdf_area(a, b, w) == pytest.approx(ecdf_area(a, b), abs=1e-9)  # equal counts
    uneven = rng.integers(10**9, 10**10, size=1000)
    expected = wasserstein_distance(a, b[::1000], u_weights=uneven)  # scipy at a size it can do
    assert ecdf_area(a, b, uneven) == pytest.approx(expected, abs=2e-3)


def test_both_ways_of_adding_up_the_area_agree_with_scipy() -> None:
    """`ecdf_area` picks one of two summations by the sizes; each must be exact everywhere."""
    from retrain.drift._methods import _area_by_runs, _area_by_values, _ranks

    rng = np.random.default_rng(10)
    for case in range(300):
        m = int(rng.integers(1, 30))
        n = int(rng.integers(1, 30) if case % 3 else rng.integers(200, 4000))  # b far longer
        if case % 2:
            a, b = rng.normal(size=m), rng.normal(0.2, 1.1, size=n)
        else:
            a, b = rng.integers(0, 4, m).astype(float), rng.integers(0, 5, n).astype(float)
        a.sort()
        b.sort()
        for w in (None, rng.integers(1, 40, size=m)):
            ranks = _ranks(a, w)
            expected = wasserstein_distance(a, b, u_weights=w)
            for way in (_area_by_runs, _area_by_values):
                assert way(a, b, ranks, int(ranks[-1]), n) == pytest.approx(expected, abs=TOL)
