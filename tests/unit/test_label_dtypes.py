"""Windows whose labels arrive with different types (0/1 integers in one, the text "0"/"1" or
booleans in another): combined for training they are one target dtype, numbers written as
text being those numbers; labels that cannot be reconciled are refused, naming the windows
and their types, never merged."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from required import require
from retrain.config import Config, config_from_dict, load_config
from retrain.data.history import commit_history, read_history
from retrain.data.io import content_sha256
from retrain.errors import EXIT_OK, ValidationError
from retrain.runner import run_cycle
from retrain.storage import LocalStorage
from retrain.training.mix import build_training_set
from retrain.training.model import fit_model

NOW = datetime(2030, 1, 7, 3, 0, tzinfo=timezone.utc)


def _cfg(tmp_path: Path, **extra: Any) -> Config:
    return config_from_dict(
        {
            **extra,
            "name": "loans",
            "task": "classification",
            "target": "y",
            "storage_root": str(tmp_path / "store"),
            "data": {
                "uri": "u",
                "id_column": "id",
                "time_column": "week",
                "time_kind": "period",
                "features": {"x": "numeric"},
            },
            "labels": {"uri": "u", "id_column": "id", "label_column": "y"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "deploy": {"deployment_name": "loans"},
        }
    )


def _window(week: int, labels: list[Any], n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(week)
    x = rng.normal(size=n)
    values = [labels[int(v > 0)] for v in x]  # the second label where x > 0
    return pd.DataFrame(
        {"id": [f"w{week}-{i}" for i in range(n)], "week": week, "x": x, "y": values}
    )


def _commit(store: LocalStorage, week: int, frame: pd.DataFrame) -> None:
    commit_history(store, str(week), frame, {"sha256": content_sha256(frame)})


@pytest.mark.parametrize(
    "second",
    [["0", "1"], [False, True], ["0.0", "1.0"]],
    ids=["text", "bool", "text-floats"],
)
def test_history_windows_of_int_and_text_or_bool_labels_train_as_two_classes(
    tmp_path: Path, second: list[Any]
) -> None:
    cfg = _cfg(tmp_path)
    store = LocalStorage(cfg.storage_root)
    _commit(store, 0, _window(0, [0, 1]))
    _commit(store, 1, _window(1, second))
    floats = _window(2, [0.0, 1.0])
    floats.loc[3, "y"] = np.nan  # a window with a missing label: its column is float64
    _commit(store, 2, floats)
    history = read_history(store, cfg, "3").frame
    assert history is not None
    assert history["y"].dtype == np.float64  # a missing label: numbers as floats
    assert int(history["y"].isna().sum()) == 1
    assert sorted(history["y"].dropna().unique().tolist()) == [0.0, 1.0]
    # The new window's labels as text too, against the integer-and-text history.
    ts = build_training_set(_window(3, ["0", "1"]), history, cfg, cfg.seed)
    model = fit_model(cfg, ts.train)
    assert sorted(model.classes_.tolist()) == [0, 1]


@pytest.mark.parametrize(
    ("first", "second", "kinds"),
    [
        ([0, 1], ["no", "yes"], ("window 0: int64", "window 1: str")),
        ([False, True], ["False", "True"], ("window 0: bool", "window 1: str")),
    ],
)
def test_a_stored_window_that_cannot_be_reconciled_is_left_out_with_a_note(
    tmp_path: Path, first: list[Any], second: list[Any], kinds: tuple[str, str]
) -> None:
    # Committed before the label step checked it: history is immutable, so refusing it would
    # stop every later training. It is left out, and the load says which and why.
    cfg = _cfg(tmp_path)
    store = LocalStorage(cfg.storage_root)
    _commit(store, 0, _window(0, first))
    _commit(store, 1, _window(1, second))
    _commit(store, 2, _window(2, first))
    loaded = read_history(store, cfg, "3")
    assert loaded.frame is not None and len(loaded.frame) == 240  # windows 0 and 2
    assert list(loaded.left_out) == ["window 1"]
    note = loaded.left_out["window 1"]
    assert "target 'y' has different types" in note
    assert kinds[0] in note and kinds[1] in note


@pytest.mark.parametrize(
    ("windows", "left_out"),
    [
        ([["no", "yes"], [0, 1], ["no", "yes"]], ["window 1"]),  # the odd one is older
        ([[0, 1], [0, 1], ["no", "yes"], ["no", "yes"]], ["window 0", "window 1"]),
        ([[0, 1], [0.0, float("inf")], [1, 0]], ["window 1"]),  # an infinite label
    ],
    ids=["odd-older", "source-changed", "infinite"],
)
def test_the_windows_left_out_are_those_that_cannot_join_the_newest(
    tmp_path: Path, windows: list[list[Any]], left_out: list[str]
) -> None:
    cfg = _cfg(tmp_path)
    store = LocalStorage(cfg.storage_root)
    for week, labels in enumerate(windows):
        _commit(store, week, _window(week, labels))
    loaded = read_history(store, cfg, str(len(windows)))
    assert sorted(loaded.left_out) == left_out
    assert loaded.frame is not None
    assert len(loaded.frame) == 120 * (len(windows) - len(left_out))


def test_the_label_step_refuses_a_window_whose_labels_cannot_join_history(
    tmp_path: Path,
) -> None:
    from retrain.data.history import check_joins_history

    cfg = _cfg(tmp_path)
    store = LocalStorage(cfg.storage_root)
    _commit(store, 0, _window(0, [0, 1]))
    _commit(store, 1, _window(1, [1, 0]))
    with pytest.raises(ValidationError) as caught:
        check_joins_history(store, cfg, "2", _window(2, ["no", "yes"]))
    message = str(caught.value)
    assert message.startswith("window 2 is not committed to history")
    assert "window 0: int64" in message and "window 2: str" in message
    assert "correct the label source" in message
    assert check_joins_history(store, cfg, "2", _window(2, ["0", "1"])) == ""  # numbers as text
    check_joins_history(store, cfg, "0", _window(0, ["no", "yes"]))  # nothing before it


def test_different_values_stay_different() -> None:
    # 0.5 is no integer label; "1" and "01" are two labels of their source, not one number.
    from retrain.data.targets import reconcile_targets

    ints = pd.DataFrame({"y": [0, 1, 1]})
    halves = pd.DataFrame({"y": [0.5, 1.0]})
    a, b = reconcile_targets([ints, halves], ["window 0", "window 1"], "y")
    assert a is not None and b is not None
    assert sorted(set(a["y"]) | set(b["y"])) == [0.0, 0.5, 1.0]
    with pytest.raises(ValidationError, match="window 1: str"):
        reconcile_targets([ints, pd.DataFrame({"y": ["1", "01"]})], ["window 0", "window 1"], "y")


@pytest.mark.integration  # two cycles through the real label and train steps
def test_a_window_labelled_as_text_trains_on_integer_history(tmp_path: Path) -> None:
    require("river", "the demo data generator uses river (extra 'demo')")
    from retrain.data.demo import generate_loans

    cfg = load_config(generate_loans(tmp_path, windows=3, rows_per_window=300, drift_window=2))
    week_1 = Path(cfg.labels.uri) / "week-001.parquet"  # the demo's labels are 0/1 integers
    labels = pd.read_parquet(week_1)
    labels[cfg.labels.label_column] = labels[cfg.labels.label_column].astype(str)
    labels.to_parquet(week_1)
    first = run_cycle(cfg, "0", engine="direct", run_id="first", as_of="2", now=NOW)
    assert first.exit_code == EXIT_OK, first.lines()
    second = run_cycle(cfg, "1", engine="direct", run_id="second", as_of="3", now=NOW)
    assert second.exit_code == EXIT_OK, second.lines()
    train = second.records["train"]
    assert train["status"] == "succeeded", second.lines()
    assert set(train["report"]["provenance"]["class_balance"]["train"]) == {"0", "1"}
    # The gate judged two classes: the champion's 0/1 and the challenger's are the same.
    evaluate = second.records["evaluate"]
    assert evaluate["status"] == "succeeded", second.lines()
    assert evaluate["report"]["comparison"]["classes"] == [0, 1], evaluate["report"]


def test_a_champion_of_text_classes_is_judged_against_a_challenger_of_numbers(
    tmp_path: Path,
) -> None:
    # The label source went from "0"/"1" text to 0/1 integers: the champion learned text
    # classes, the challenger (on history made numbers) integer ones. They are the same two
    # classes, and the champion is scored on them, not given probability 0 for every label.
    from sklearn.metrics import roc_auc_score

    from retrain.evaluation.gates import evaluate_challenger

    cfg = _cfg(tmp_path).model_copy(
        update={"evaluation": _cfg(tmp_path).evaluation.model_copy(update={"min_rows": 50})}
    )
    old = _window(0, ["0", "1"], n=400)
    champion = fit_model(cfg, old)
    challenger = fit_model(cfg, _window(1, [0, 1], n=400))
    recent, history = _window(2, [0, 1], n=300), _window(3, [0, 1], n=300)
    r = evaluate_challenger(cfg, challenger, champion, recent, history, seed=1)
    assert r.comparison["classes"] == [0, 1]
    expected = roc_auc_score(recent["y"], champion.predict_proba(recent[["x"]])[:, 1])
    assert r.metrics["champion"]["recent"]["roc_auc"] == pytest.approx(expected)


def _reconcile(*columns: pd.Series | list[Any]) -> list[pd.Series]:
    from retrain.data.targets import reconcile_targets

    frames = [pd.DataFrame({"y": c, "x": range(len(c))}) for c in columns]
    out = reconcile_targets(frames, [f"window {i}" for i in range(len(frames))], "y")
    return [f["y"] for f in out if f is not None]


@pytest.mark.parametrize(
    "columns",
    [
        [pd.Series(["0", "1"], dtype="category"), pd.Series([0, 1], dtype="category")],
        [pd.Series(["0", "1"], dtype=object), pd.Series([0, 1], dtype=object)],
        [["0", "1"], ["0.0", "1.0"]],  # text written two ways: the same two labels
        [pd.Series(["0", "1", None], dtype="string"), [0, 1, 1]],  # NA-backed text
    ],
    ids=["categories", "object", "text-spellings", "string-dtype"],
)
def test_labels_of_one_value_in_two_spellings_become_one_type(columns: list[Any]) -> None:
    out = _reconcile(*columns)
    present = pd.concat(out, ignore_index=True).dropna()
    assert {type(v) for v in present.tolist()} <= {int, float}  # numbers, not "1" beside 1
    assert sorted(set(present.tolist())) == [0, 1]
    if not any(c.isna().any() for c in out):
        assert all(c.dtype == np.int64 for c in out)


def test_text_written_the_same_way_everywhere_is_kept_as_text() -> None:
    a, b = _reconcile(["no", "yes"], pd.Series(["yes", None], dtype="string"))
    assert a.tolist() == ["no", "yes"] and b.iloc[0] == "yes"


def test_integers_beyond_float_precision_stay_distinct() -> None:
    big = 2**53
    a, b = _reconcile([big, big + 1], [str(big), str(big + 1)])
    assert a.dtype == np.int64 and b.dtype == np.int64
    assert b.tolist() == [big, big + 1]
    # Floats would merge them: refused rather than merged.
    with pytest.raises(ValidationError):
        _reconcile([big, big + 1], [0.5, 1.0])


@pytest.mark.parametrize("odd", [["1e0", "0"], ["inf", "0"], [float("inf"), 0.0]])
def test_exponents_and_infinities_are_refused_beside_integers(odd: list[Any]) -> None:
    # "1e0" and "inf" are no decimal numbers; an infinite float is no label.
    with pytest.raises(ValidationError):
        _reconcile([0, 1], odd)


def test_one_rule_for_the_same_label_in_the_class_checks() -> None:
    from retrain.labels.classes import check_label_classes, class_count

    # The text "1.0", True and 1.0 are the class 1 of a champion that learned 0/1.
    for labels in (["0", "1.0"], [False, True], [0.0, 1.0, None]):
        check_label_classes(pd.Series(labels), [0, 1], where="w", known_from="champion")
    assert class_count(pd.Series([True, False]), pd.Series(["1", "0"])) == 2
    assert class_count(pd.Series(["1.0", "0"]), pd.Series([1, 0])) == 2
    with pytest.raises(ValidationError, match=r"'2' \(1 rows\)"):
        check_label_classes(pd.Series(["2", "1"]), [0, 1], where="w", known_from="champion")


def test_the_gates_align_text_numbers_by_value() -> None:
    from retrain.evaluation.gates import _class_union

    class Fitted:
        def __init__(self, classes: list[Any]) -> None:
            self.classes_ = np.asarray(classes, dtype=object)

    classes = _class_union(Fitted([0, 1]), Fitted(["0.0", "1.0"]), [pd.Series([0, 1])])  # type: ignore[arg-type]
    assert classes == [0, 1]


@pytest.mark.parametrize("labels", [[False, True], ["0.0", "1.0"], [" 0", "1 "]])
def test_the_train_steps_class_checks_take_booleans_and_numeric_text_as_numbers(
    tmp_path: Path, labels: list[Any]
) -> None:
    # A champion of 0/1, a new window of booleans or numbers as text, history of text "0"/"1":
    # two classes to the class check and to the metric check.
    from retrain.steps._train import _check_classes, _check_metric_fits

    cfg = _cfg(tmp_path, evaluation={"metric": "average_precision"})  # needs two classes
    champion = fit_model(cfg, _window(5, [0, 1]))
    new = _window(1, labels)
    assert _check_classes(cfg, None, "v1", champion, new, "1") == [0, 1]
    _check_metric_fits(cfg, new, _window(0, ["0", "1"]), "1")  # 2 classes, not 4


@pytest.mark.integration  # three cycles through the real steps
def test_a_window_of_labels_that_cannot_join_history_is_refused_before_it_is_committed(
    tmp_path: Path,
) -> None:
    require("river", "the demo data generator uses river (extra 'demo')")
    from retrain.data.demo import generate_loans
    from retrain.data.history import history_key
    from retrain.errors import EXIT_VALIDATION

    cfg = load_config(generate_loans(tmp_path, windows=4, rows_per_window=300, drift_window=3))
    week_2 = Path(cfg.labels.uri) / "week-002.parquet"  # the demo's labels are 0/1 integers
    labels = pd.read_parquet(week_2)
    column = cfg.labels.label_column
    labels[column] = labels[column].map({0: "no", 1: "yes"})
    labels.to_parquet(week_2)
    for week in (0, 1):
        done = run_cycle(
            cfg, str(week), engine="direct", run_id=f"w{week}", as_of=str(week + 2), now=NOW
        )
        assert done.exit_code == EXIT_OK, done.lines()
    refused = run_cycle(cfg, "2", engine="direct", run_id="refused", as_of="4", now=NOW)
    assert refused.exit_code == EXIT_VALIDATION, refused.lines()
    failed = refused.failed_step
    assert failed is not None and failed["step"] == "label"
    assert "window 2 is not committed to history" in str(failed["message"])
    store = LocalStorage(cfg.storage_root)
    assert not store.exists(history_key("2"))  # nothing immutable to correct
    # The next window trains on history as it is.
    after = run_cycle(cfg, "3", engine="direct", run_id="after", as_of="5", now=NOW)
    assert after.records["train"]["status"] == "succeeded", after.lines()


# --- one odd window never decides for the rest --------------------------------------------


@pytest.mark.parametrize("odd", [["no", "yes"], [0.0, float("inf")]], ids=["text", "infinite"])
def test_an_odd_first_window_does_not_refuse_every_later_one(
    tmp_path: Path, odd: list[Any]
) -> None:
    # The first window stored is the odd one (committed before the label step checked it):
    # later windows of 0/1 are committed, and history keeps them, leaving the first one out.
    from retrain.data.history import check_joins_history, history_key

    cfg = _cfg(tmp_path)
    store = LocalStorage(cfg.storage_root)
    _commit(store, 0, _window(0, odd))
    note = check_joins_history(store, cfg, "1", _window(1, [0, 1]))
    assert "window 0 is left out of history" in note
    assert store.uri(history_key("0")) in note  # how to remove it deliberately
    _commit(store, 1, _window(1, [0, 1]))
    check_joins_history(store, cfg, "2", _window(2, [1, 0]))
    _commit(store, 2, _window(2, [1, 0]))
    loaded = read_history(store, cfg, "3")
    assert list(loaded.left_out) == ["window 0"]
    assert loaded.frame is not None and len(loaded.frame) == 240
    # A window of the odd type is now the one refused: most of history is of 0/1.
    _commit(store, 3, _window(3, [0, 1]))
    with pytest.raises(ValidationError, match="window 4 is not committed"):
        check_joins_history(store, cfg, "4", _window(4, ["no", "yes"]))


@pytest.mark.parametrize(
    "labels", [[0.0, float("inf")], ["1", "01"], ["1", "1.0"]], ids=["inf", "01", "1.0"]
)
def test_the_first_window_is_checked_on_its_own(tmp_path: Path, labels: list[Any]) -> None:
    from retrain.data.history import check_joins_history

    cfg = _cfg(tmp_path)
    store = LocalStorage(cfg.storage_root)
    frame = _window(0, labels)
    frame.loc[0, "y"] = "0" if isinstance(labels[0], str) else 0.0  # a third label
    with pytest.raises(ValidationError, match="window 0 is not committed to history"):
        check_joins_history(store, cfg, "0", frame)


def test_each_window_left_out_is_given_its_own_reason(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    store = LocalStorage(cfg.storage_root)
    for week, labels in enumerate([["no", "yes"], [0, 1], [1, 0], [0.0, float("inf")]]):
        _commit(store, week, _window(week, labels))
    loaded = read_history(store, cfg, "4")
    assert sorted(loaded.left_out) == ["window 0", "window 3"]
    assert "inf" in loaded.left_out["window 3"]
    assert "inf" not in loaded.left_out["window 0"]
    assert "window 0: str" in loaded.left_out["window 0"]


def test_the_windows_left_out_do_not_depend_on_the_row_budget(tmp_path: Path) -> None:
    # One "unknown" text label among 1,000 text numbers: sampled down, that row could be left
    # out and the window kept; the decision is taken on every distinct label first.
    cfg = _cfg(tmp_path)
    store = LocalStorage(cfg.storage_root)
    _commit(store, 0, _window(0, [0, 1], n=1000))
    _commit(store, 1, _window(1, [1, 0], n=1000))
    rare = _window(2, ["0", "1"], n=1000)
    rare.loc[500, "y"] = "unknown"
    _commit(store, 2, rare)
    full = read_history(store, cfg, "3")
    small = read_history(store, cfg, "3", max_rows=60)
    assert list(small.left_out) == list(full.left_out)
    assert list(full.left_out) == ["window 2"]
    assert small.frame is not None and len(small.frame) == 60  # the budget, from the kept ones


@pytest.mark.parametrize("labels", [["1", "01", "0"], ["1", "1.0", "0"]])
def test_one_label_written_two_ways_in_a_frame_is_refused(labels: list[Any]) -> None:
    # Text spelled the same way in every frame is kept as text, so "1" and "01" would train as
    # two classes where every class check counts one.
    with pytest.raises(ValidationError, match="writes one label in more than one way"):
        _reconcile(labels, labels)
    with pytest.raises(ValidationError, match="writes one label in more than one way"):
        _reconcile(labels)


def test_the_gates_refuse_two_classes_of_one_label(tmp_path: Path) -> None:
    from retrain.evaluation.gates import _scores

    cfg = _cfg(tmp_path)
    frame = _window(0, ["0", "1"])
    frame.loc[frame.index[:30], "y"] = "01"  # committed before such labels were refused
    model = fit_model(cfg, frame)
    assert len(model.classes_) == 3
    with pytest.raises(ValidationError, match="one label"):
        _scores(model, frame, cfg, [0, 1], "challenger")
    with pytest.raises(ValidationError, match="one label"):
        _scores(model, frame, cfg, ["0", "01", "1"], "challenger")


def test_a_rerun_of_a_committed_window_is_not_checked_again(tmp_path: Path) -> None:
    # Window 5 was committed with "no"/"yes" labels (before the check, or by a first attempt
    # that crashed past the commit); windows 3 and 4 of 0/1 are stored too. A re-run with the
    # same content is a no-op commit, not a refusal.
    from test_labels_as_of import step_inputs

    from retrain import steps

    text, dataset = step_inputs(tmp_path)
    labels = pd.read_parquet(tmp_path / "labels.parquet")
    labels["outcome"] = labels["outcome"].map({0: "no", 1: "yes"})
    labels.to_parquet(tmp_path / "labels.parquet")
    steps.label(text, "5", "r1", str(dataset), str(tmp_path / "l1.parquet"), None, None, "6")
    store = LocalStorage(str(tmp_path / "store"))
    for week in (3, 4):
        ints = _window(week, [0, 1]).rename(columns={"y": "defaulted", "id": "app"})
        commit_history(store, str(week), ints, {"sha256": content_sha256(ints)})
    outcome = steps.label(
        text, "5", "r2", str(dataset), str(tmp_path / "l2.parquet"), None, None, "6"
    )
    assert outcome.details["coverage"] == 0.6
    # A different content for window 5 is still checked (and refused: history is of 0/1).
    labels["outcome"] = labels["outcome"].map({"no": "n", "yes": "y"})
    labels.to_parquet(tmp_path / "labels.parquet")
    with pytest.raises(ValidationError, match="window 5 is not committed"):
        steps.label(text, "5", "r3", str(dataset), str(tmp_path / "l3.parquet"), None, None, "6")


def test_the_fitted_constant_counts_labels_by_value() -> None:
    # A model card without the training constant: the shares are fitted on the evaluation
    # rows; their text "0"/"1" are the model's classes 0 and 1, not shares of 0.
    from retrain.evaluation._baseline import baseline_scores

    scores = baseline_scores("log_loss", pd.Series(["0", "1", "1", "1"]), [0, 1], None)
    assert scores.shape == (4, 2)
    assert scores[0].tolist() == [0.25, 0.75]


def test_classes_of_one_label_are_refused_where_labels_are_matched_to_them() -> None:
    # Matching "1" to classes "1" and "01" would pick one of them silently (the metrics of
    # a model of both would be wrong); any caller of class_positions is told instead.
    from retrain.data.targets import class_positions
    from retrain.evaluation.metrics import compute_metrics

    with pytest.raises(ValidationError, match=r"\['1', '01'\] are one label written two ways"):
        class_positions(["1"], ["0", "1", "01"])
    with pytest.raises(ValidationError, match="one label written two ways"):
        compute_metrics("classification", ["1", "0"], np.full((2, 3), 1 / 3), [0, 1.0, "1"])
    assert class_positions(["01", "1", None], [0, 1]).tolist() == [1, 1, -1]
