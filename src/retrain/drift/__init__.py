"""Drift detection: statistical methods registered by name, reference profiles, reports.

At training time `build_profile` summarises the newest window the model learned (a training
run's own window, not its mix of history) and the model (stored with the model as
``profile.json``); at monitoring time `detect_drift` compares a window with it and returns a
`DriftReport`: a verdict per feature, five dataset-level signals and which fired.

Methods (`METHODS`; `register_method` adds one, `unregister_method` removes it), each on
non-null values only:

============  ===========  ======================================================  =========
name          kinds        statistic                                               default
============  ===========  ======================================================  =========
wasserstein   numeric      Wasserstein-1 / reference std (ddof 0; see below)        0.1
ks            numeric      KS statistic; scipy's two-sided p-value                 p < 0.01
psi           both         PSI on reference-quantile bins or categories            0.25
jensenshannon both         JS *distance* (sqrt of the divergence), base 2: [0, 1]  0.1
linf          categorical  largest change of a category's share                    0.3
chi2          categorical  Pearson chi-square on the 2 x k counts, no correction   p < 0.01
============  ===========  ======================================================  =========

Why these defaults:

- **Effect sizes, not p-values, by default.** With enough rows every test rejects: a shift of
  a hundredth of a standard deviation is "significant" at a million rows, and everything
  drifts (evidentlyai/evidently#50). A distance estimates how far apart the distributions are
  and does not grow with n, so numeric features use normalised Wasserstein at 0.1 (Evidently's
  default: a mean shift of a tenth of a standard deviation) and categorical ones Jensen-Shannon
  at 0.1 (NannyML's and Evidently's default).
- **A distance must also beat noise.** Two samples of one distribution are some distance
  apart, more so when they are small or have many categories: Jensen-Shannon between two
  samples of 1,000 rows over 50 equally likely categories is about 0.13, so a fixed 0.1
  flags almost every such window. Every distance verdict therefore also needs the distance
  to exceed its *null threshold*: the distance two samples of these sizes from the
  reference's own distribution exceed with chance `null_alpha` (0.01), divided by the
  number of verdicts in the report (features and the model's scores; Bonferroni, as
  alibi-detect). Wasserstein's comes from a bound on its large-sample law, the bucket
  methods' from random splits of the pooled counts (see `retrain.drift._null`); both cost
  no more at a million rows than at a thousand. At large n the null threshold is tiny and the
  effect size decides; at small n or with many categories the null threshold does. The
  report gives both per feature. Measured on simulated windows (`benchmarks/decisions/
  drift.py`): at most about 1 % false alarms per feature for 2 to 500 categories and 200 to
  1M rows, and a 0.2-sigma mean shift caught in every window at 10,000 rows.
- **KS for small numeric samples.** Below `small_sample` (1000) values in the smaller
  sample, numeric features use KS at alpha 0.01 (Bonferroni-divided like the null
  thresholds): its exact p-values hold at any size. Categorical features keep
  Jensen-Shannon with its null threshold: chi-square's p-values assume about five expected
  rows per category and are wrong by orders of magnitude with many rare ones.
- **Long columns on a sample.** A numeric feature (or the model's scores) with more finite
  values than `max_sample_rows` (100,000) is judged on a seeded uniform sample of that many,
  drawn without replacement from the reference at profile time and from each window at
  detection (seeded by the config's seed and the feature's name: a re-run gives the same
  report). Bins, sketch, distances, p-values and null thresholds are the sample's, at the
  sample's size; counts, null rates, range, mean and standard deviation stay the whole
  column's. At 100,000 the Wasserstein null threshold is 0.019-0.020 (0.023-0.024 at alpha
  0.01 / 25), far below the 0.1 effect size, so verdicts are decided by effect size as for
  every value; at 1M rows the sample moved the normalised Wasserstein distance by 0.004 on
  average (0.012 at most) and KS by 0.002 (0.0044 at most) from every value's
  (`benchmarks/bench_drift_sample.py`), and only the sample is sorted. `null` judges every
  value.
- **Units do not matter.** Wasserstein divides by the reference standard deviation; a
  constant reference by a thousandth of its magnitude (of the window's if the reference is
  all zeros). Scaling a column by any factor keeps every verdict.
- **PSI** flags 0.1 as a warning and 0.25 as drift, the long-standing credit-scoring reading
  (below 0.1 stable, 0.1 to 0.25 moderate, above 0.25 significant). Empty buckets count as a
  share of 0.0001 (as Evidently), else PSI is infinite.
- **L-infinity** at 0.3 is TFDV's and Vertex AI's default for categorical skew.
- **Dataset drift** when at least half the compared features drifted (`drift_share` 0.5, as
  Evidently), or when the drifted features carry at least half the model's permutation
  importance (`weighted_drift_share` 0.5): one drifted feature the model relies on can matter
  more than five it ignores.
- **Performance** once labels arrive: the primary metric drops by more than 0.05 against the
  reference (the model's metric on held-out rows at training) and the bootstrap interval of
  the drop excludes zero. Before labels: the expected accuracy of a calibrated classifier
  (mean of its largest class probability, CBPE-style) drops by more than 0.05 and its interval
  excludes the reference estimate. With `calibrate_estimate` (default on) the confidence is
  first mapped to the chance of being right measured on the held-out rows at training
  (isotonic), so a miscalibrated model's estimate holds too; the report warns when the
  estimate missed the measured accuracy on those rows by more than `max_estimate_gap` (0.02).

Buckets: a numeric feature has `bins` (10) reference-quantile bins plus one bucket below the
reference minimum and one above its maximum (so a constant column that moves is seen). A
categorical feature has the reference categories plus one bucket for every unseen category;
the unseen ones are named in the report. Missing values (and infinities) are not part of any
distribution: they are counted, and the null rate is reported beside each statistic.

Per-feature overrides (`drift.features.<name>: {method, threshold}`) change that feature only,
and `drift.thresholds` merges with the defaults key by key, so setting one never resets others
(evidentlyai/evidently#678).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retrain._exports import lazy_exports

if TYPE_CHECKING:
    from retrain.drift._champion import ChampionDrift, champion_drift, profile_for_model
    from retrain.drift._detect import detect_drift
    from retrain.drift._labelled import (
        drop_fired,
        labelled_window_check,
        performance_against_profile,
        performance_fired,
    )
    from retrain.drift._methods import (
        METHODS,
        Comparison,
        DriftMethod,
        MethodResult,
        method_names,
        register_method,
        unregister_method,
    )
    from retrain.drift._performance import (
        EstimateCalibration,
        PerformanceCheck,
        PerformanceEstimate,
        check_performance,
        estimate_performance,
        fit_estimate_calibration,
        metric_sd,
        permutation_importance,
        score_vector,
    )
    from retrain.drift._profile import (
        PROFILE_FILE,
        CategoricalProfile,
        NumericProfile,
        ReferenceProfile,
        build_profile,
    )
    from retrain.drift._reference import champion_reference
    from retrain.drift._report import Bar, DriftReport, FeatureDrift, Signal

if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "_champion": ("ChampionDrift", "champion_drift", "profile_for_model"),
            "_reference": ("champion_reference",),
            "_detect": ("detect_drift",),
            "_labelled": (
                "drop_fired",
                "labelled_window_check",
                "performance_against_profile",
                "performance_fired",
            ),
            "_methods": (
                "METHODS",
                "Comparison",
                "DriftMethod",
                "MethodResult",
                "method_names",
                "register_method",
                "unregister_method",
            ),
            "_performance": (
                "EstimateCalibration",
                "PerformanceCheck",
                "PerformanceEstimate",
                "check_performance",
                "estimate_performance",
                "fit_estimate_calibration",
                "metric_sd",
                "permutation_importance",
                "score_vector",
            ),
            "_profile": (
                "PROFILE_FILE",
                "CategoricalProfile",
                "NumericProfile",
                "ReferenceProfile",
                "build_profile",
            ),
            "_report": ("Bar", "DriftReport", "FeatureDrift", "Signal"),
        },
    )

__all__ = [
    "METHODS",
    "PROFILE_FILE",
    "Bar",
    "CategoricalProfile",
    "ChampionDrift",
    "Comparison",
    "DriftMethod",
    "DriftReport",
    "EstimateCalibration",
    "FeatureDrift",
    "MethodResult",
    "NumericProfile",
    "PerformanceCheck",
    "PerformanceEstimate",
    "ReferenceProfile",
    "Signal",
    "build_profile",
    "champion_drift",
    "champion_reference",
    "check_performance",
    "detect_drift",
    "drop_fired",
    "estimate_performance",
    "fit_estimate_calibration",
    "labelled_window_check",
    "method_names",
    "metric_sd",
    "performance_against_profile",
    "performance_fired",
    "permutation_importance",
    "profile_for_model",
    "register_method",
    "score_vector",
    "unregister_method",
]
