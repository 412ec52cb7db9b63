"""The Seldon Core v1 model server for one retrain model version.

Run by the serving image as::

    seldon-core-microservice retrain_model.RetrainModel --service-type MODEL --threads 1

`RetrainModel` reads ``MODEL_URI`` (the version's ``model.skops``, or its directory; a local
path, ``file://`` or ``gs://``) and ``MODEL_VERSION`` from the environment, reads the model card
``model.json`` beside the model file, and refuses to start unless the file's sha256 matches the
card and every type in it is on the trusted list of `retrain._safety` (the same list training
uses). The card is read by `retrain._card`, the reader training uses; the image installs the
retrain package with ``--no-deps`` and imports nothing else of it.

Requests are ``data.ndarray`` (or ``data.tensor``) rows with ``data.names`` naming the feature
columns (any order); without names, columns must come in the card's feature order. Bad input
is answered with HTTP 400 and a message naming the column, never with an empty prediction:
Seldon's own handler would answer 500, and its SKLearnServer swallows errors altogether, so
canary analysis would never see them. Requests Seldon cannot decode (a tensor whose values do
not fit its shape, JSON nested too deeply to parse) get 400 too, and a request over
``RETRAIN_MAX_REQUEST_BYTES`` (body, 8 MiB by default: refused before it is read) or
``RETRAIN_MAX_REQUEST_ROWS`` (10,000 by default) gets 413 naming the limit: the guards are a
Flask blueprint handed to Seldon through its ``model_error_handler`` hook (`request_guard`).
BLAS and OpenMP answer a request on ``RETRAIN_SERVING_THREADS`` threads (1 by default), as
threadpoolctl sets them, not on one thread per core of the node.

This module runs in the serving environment only (Python >= 3.12, seldon-core, protobuf 5,
numpy < 2) and must never import kfp, which cannot be installed beside seldon-core.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from flask import Blueprint, Response, jsonify, request
from seldon_core.flask_utils import SeldonMicroserviceException
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits
from werkzeug.exceptions import RequestEntityTooLarge

from retrain._card import ModelCard
from retrain._safety import load_verified
from retrain.errors import ValidationError

__all__ = [
    "FEEDBACK_CORRECT_METRIC",
    "FEEDBACK_LOSS_METRIC",
    "FEEDBACK_METRIC",
    "MAX_REQUEST_BYTES_ENV",
    "MAX_REQUEST_ROWS_ENV",
    "MODEL_CARD_FILE",
    "MODEL_FILE",
    "PREDICTIONS_METRIC",
    "REQUESTS_METRIC",
    "ROWS_METRIC",
    "SCORE_METRIC",
    "VERSION_TAG",
    "RetrainModel",
    "build_frame",
    "feedback_losses",
    "model_locations",
    "parse_card",
    "parse_truth",
    "prediction_scores",
    "read_uri",
    "request_guard",
    "request_limits",
]

logger = logging.getLogger(__name__)

MODEL_FILE = "model.skops"
MODEL_CARD_FILE = "model.json"

#: Custom metric keys; Prometheus exposes counters with a ``_total`` suffix.
REQUESTS_METRIC = "retrain_requests"
ROWS_METRIC = "retrain_prediction_rows"
PREDICTIONS_METRIC = "retrain_predictions"
#: Feedback rows with a truth, and those a classifier got right (counters: ``*_total``).
FEEDBACK_METRIC = "retrain_feedback"
FEEDBACK_CORRECT_METRIC = "retrain_feedback_correct"
#: Per-row loss and per-row score as Seldon TIMERs, its only histogram type: exposed as
#: ``<key>_bucket`` / ``_sum`` / ``_count``. Seldon divides TIMER values by 1000 (it takes
#: milliseconds), so values are sent times 1000 and the series carry the loss / score itself.
FEEDBACK_LOSS_METRIC = "retrain_feedback_loss"
SCORE_METRIC = "retrain_prediction_score"
#: The metric label carrying the model version. Not ``model_version``: Seldon merges its own
#: default labels over custom tags, and its ``model_version`` is the image tag.
VERSION_TAG = "retrain_model_version"

#: Caps on one request, from the environment at start: body bytes and rows (HTTP 413 past them).
MAX_REQUEST_BYTES_ENV = "RETRAIN_MAX_REQUEST_BYTES"
MAX_REQUEST_ROWS_ENV = "RETRAIN_MAX_REQUEST_ROWS"
_DEFAULT_LIMITS = {MAX_REQUEST_BYTES_ENV: 8 * 2**20, MAX_REQUEST_ROWS_ENV: 10_000}
#: Native threads (BLAS, OpenMP) a request may use, from the environment at start; default 1.
#: Left alone, each library starts one thread per core it sees (the node's, not the pod's CPU
#: limit), and a small request pays for waking them; a server scales with workers and replicas.
THREADS_ENV = "RETRAIN_SERVING_THREADS"

_NUMERIC = "numeric"
_CATEGORICAL = "categorical"
#: Ids (user, item): text like categories; the saved pipeline encodes them.
_IDENTIFIER = "identifier"
_TEXT = "text"
_MAX_PROBLEMS = 5
_TIMER_UNIT = 1000.0
_INTEGRAL_TEXT = re.compile(r"-?\d+\.0")
#: Probability floor for log loss, so a confident miss costs ~34.5 instead of infinity.
_PROB_FLOOR = 1e-15


def parse_card(data: bytes, where: str) -> ModelCard:
    """Read a model card with training's own reader (`retrain._card`), then check what
    serving relies on.

    Raises:
        ValidationError: naming `where` and every missing, unknown or mistyped key.
    """
    card = ModelCard.from_json(data, where, ignore_unknown=True)
    problems = []
    for key in ("version", "target", "model_sha256"):
        if not getattr(card, key):
            problems.append(f"'{key}' must be a non-empty str")
    if card.task not in ("classification", "regression"):
        problems.append(f"'task' must be classification or regression, got {card.task!r:.60}")
    if not card.features:
        problems.append("'features' is empty")
    for name, kind in card.features.items():
        if kind not in (_NUMERIC, _CATEGORICAL, _IDENTIFIER, _TEXT):
            problems.append(
                f"features.{name}: kind must be numeric, categorical, identifier or text,"
                f" got {kind!r}"
            )
    if problems:
        raise ValidationError(f"model card {where} is invalid", problems)
    return card


def model_locations(model_uri: str) -> tuple[str, str]:
    """(model file URI, card URI) for a ``MODEL_URI``: the ``model.skops`` file or its directory.

    Raises:
        ValidationError: an empty URI.
    """
    uri = model_uri.strip()
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    if not uri:
        raise ValidationError("MODEL_URI is empty: set it to a model version's model.skops")
    if uri.rstrip("/").endswith(".skops"):
        base = uri.rsplit("/", 1)[0] if "/" in uri else "."
        return uri, f"{base}/{MODEL_CARD_FILE}"
    base = uri.rstrip("/")
    return f"{base}/{MODEL_FILE}", f"{base}/{MODEL_CARD_FILE}"


def read_uri(uri: str) -> bytes:
    """The bytes at a local path or a ``gs://bucket/name`` URI.

    Raises:
        ValidationError: nothing there, a malformed gs:// URI, or gs:// without
            google-cloud-storage installed.
    """
    if uri.startswith("gs://"):
        return _read_gcs(uri)
    if "://" in uri:
        raise ValidationError(f"{uri}: unsupported scheme; use a local path, file:// or gs://")
    try:
        with open(uri, "rb") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise ValidationError(f"no file at {uri}") from None


def _read_gcs(uri: str) -> bytes:
    bucket, _, name = uri[len("gs://") :].partition("/")
    if not bucket or not name:
        raise ValidationError(f"{uri}: expected gs://bucket/path/to/object")
    try:
        from google.api_core import exceptions as gexc
        from google.cloud import storage
    except ImportError:
        raise ValidationError(
            f"{uri}: reading gs:// needs google-cloud-storage, which is not installed in this "
            "environment (install serving/requirements-gcs.txt)"
        ) from None
    try:
        return bytes(storage.Client().bucket(bucket).blob(name).download_as_bytes())
    except gexc.NotFound:
        raise ValidationError(f"no object at {uri}") from None


class RetrainModel:
    """A Seldon Python model serving one verified retrain model version.

    Args:
        model_uri: overrides ``MODEL_URI`` (Seldon passes ``--parameters`` as keyword arguments).
        model_version: overrides ``MODEL_VERSION``; when set, the card's version must equal it.

    The model is loaded here rather than in Seldon's ``load()`` hook, so that a missing,
    tampered or untrusted file stops the process before any server starts.

    Raises:
        ValidationError: the model cannot be read, does not match its card, holds untrusted
            types, or is not the expected version. Every start-up failure is logged as
            ``refusing to serve MODEL_URI=...`` before it is raised.
    """

    def __init__(self, model_uri: str | None = None, model_version: str | None = None) -> None:
        uri = model_uri if model_uri is not None else os.environ.get("MODEL_URI", "")
        expected = model_version if model_version is not None else os.environ.get("MODEL_VERSION")
        self.model_uri = uri
        self._local = threading.local()
        self.max_bytes, self.max_rows = request_limits(os.environ)
        self.threads = serving_threads(os.environ)
        # Seldon registers this blueprint on its Flask app: the request guards.
        self.model_error_handler = request_guard(self.max_bytes)
        try:
            self.card, self.model = _load(uri, expected or None)
        except Exception as err:  # storage errors too: say why before the traceback
            logger.error("refusing to serve MODEL_URI=%r: %s", uri, err)
            raise
        self.version = self.card.version
        self._limit_threads()  # the libraries the model loaded; workers forked later inherit it
        self.feature_names = list(self.card.features)
        self.classes: list[str] = []
        if self.card.task == "classification":
            self.classes = [str(c) for c in self.model.classes_]
        trained_with = self.card.library_versions.get("sklearn")
        if trained_with and trained_with != sklearn.__version__:
            logger.warning(
                "model %s was trained with scikit-learn %s, serving with %s: predictions may "
                "differ; align serving/requirements.txt with the training environment",
                self.version,
                trained_with,
                sklearn.__version__,
            )
        logger.info(
            "serving model version %s (%s, target %s, %d features: %s) from %s",
            self.version,
            self.card.task,
            self.card.target,
            len(self.feature_names),
            ", ".join(self.feature_names),
            uri,
        )

    def load(self) -> None:
        """Seldon's per-worker hook: nothing to do, the model was loaded and verified at start."""

    def predict(self, X: Any, features_names: Sequence[str] | None = None, **_: Any) -> np.ndarray:
        """Class probabilities (rows x `class_names()`) or regression values (rows).

        Raises:
            SeldonMicroserviceException: status 400 naming the problem for bad input, 500 if
                the model fails on input that passed validation.
        """
        self._local.metrics = []
        out = self._predict(X, features_names)
        self._local.metrics = self._request_metrics(out)
        return out

    def send_feedback(
        self,
        features: Any,
        feature_names: Sequence[str] | None,
        reward: float,
        truth: Any,
        routing: int | None = None,
    ) -> None:
        """Seldon's feedback hook: score the request's rows against `truth` as custom metrics.

        Seldon passes the feedback's ``request`` rows and ``truth`` (its ``response`` is not
        passed on), so the rows are predicted again by this very model version. Counts
        `FEEDBACK_METRIC` rows, `FEEDBACK_CORRECT_METRIC` rows whose top class is the truth
        (classifiers only) and observes each row's loss (log loss of the true class, or the
        squared error) as `FEEDBACK_LOSS_METRIC`. `reward` and `routing` are not used.

        Raises:
            SeldonMicroserviceException: status 400 naming the problem for feedback without
                request rows or truth, with a truth per row missing, or with unknown classes.
        """
        self._local.metrics = []
        try:
            expected = parse_truth(truth, self.classes)
        except ValidationError as err:
            raise SeldonMicroserviceException(f"feedback: {err}", status_code=400) from None
        out = self._predict(_untext(features), feature_names, what="feedback request: ")
        if len(expected) != out.shape[0]:
            raise SeldonMicroserviceException(
                f"feedback: truth has {len(expected)} rows but the request has {out.shape[0]}",
                status_code=400,
            )
        losses, correct = feedback_losses(out, expected, self.classes)
        self._local.metrics = self._feedback_metrics(losses, correct)

    def _predict(self, X: Any, names: Sequence[str] | None, what: str = "") -> np.ndarray:
        try:
            frame = build_frame(X, names, self.card.features)
        except ValidationError as err:
            raise SeldonMicroserviceException(what + str(err), status_code=400) from None
        if len(frame) > self.max_rows:
            raise SeldonMicroserviceException(
                f"{what}the request has {len(frame):,} rows, over the limit "
                f"{MAX_REQUEST_ROWS_ENV}={self.max_rows:,}; send it in smaller batches",
                status_code=413,
            )
        self._limit_threads()
        try:
            if self.classes:
                out = np.asarray(self.model.predict_proba(frame), dtype=float)
            else:
                out = np.asarray(self.model.predict(frame), dtype=float).reshape(-1)
        except ValueError as err:
            # The estimator refused values that passed our checks: still the caller's input.
            raise SeldonMicroserviceException(
                f"the model refused the input: {err}", status_code=400
            ) from None
        except Exception as err:
            logger.exception("prediction failed for model %s", self.version)
            raise SeldonMicroserviceException(
                f"prediction failed: {type(err).__name__}: {err}",
                status_code=500,
                reason="MICROSERVICE_INTERNAL_ERROR",
            ) from None
        return out

    def _limit_threads(self) -> None:
        """Limit BLAS and OpenMP to `self.threads`, once per thread that predicts (OpenMP's
        limit is per thread; BLAS's is per process)."""
        if getattr(self._local, "threads_limited", False):
            return
        threadpool_limits(limits=self.threads)  # kept: not restored on return
        self._local.threads_limited = True

    def class_names(self) -> list[str]:
        """Column names of the prediction: the classifier's classes (empty for regression)."""
        return list(self.classes)

    def metrics(self) -> list[dict[str, Any]]:
        """Custom metrics of the request just answered by this thread (Seldon calls this next)."""
        out: list[dict[str, Any]] = getattr(self._local, "metrics", [])
        self._local.metrics = []
        return out

    def tags(self) -> dict[str, str]:
        """Added to every response's ``meta.tags``: which model version answered."""
        return {"model_version": self.version}

    def _request_metrics(self, out: np.ndarray) -> list[dict[str, Any]]:
        tag = {VERSION_TAG: self.version}
        rows = int(out.shape[0])
        metrics: list[dict[str, Any]] = [
            {"type": "COUNTER", "key": REQUESTS_METRIC, "value": 1, "tags": dict(tag)},
            {"type": "COUNTER", "key": ROWS_METRIC, "value": rows, "tags": dict(tag)},
        ]
        if self.classes:
            counts = np.bincount(np.argmax(out, axis=1), minlength=len(self.classes))
            # Every class every time, so each series exists from the first request on.
            metrics += [
                {
                    "type": "COUNTER",
                    "key": PREDICTIONS_METRIC,
                    "value": int(n),
                    "tags": {**tag, "class": name},
                }
                for name, n in zip(self.classes, counts, strict=True)
            ]
            metrics += [
                {"type": "TIMER", "key": SCORE_METRIC, "value": v * _TIMER_UNIT, "tags": dict(tag)}
                for v in prediction_scores(out).tolist()
            ]
        return metrics

    def _feedback_metrics(self, losses: np.ndarray, correct: int | None) -> list[dict[str, Any]]:
        tag = {VERSION_TAG: self.version}
        # Seldon adds a "method" label into each metric's tags dict: every metric its own copy.
        metrics: list[dict[str, Any]] = [
            {"type": "COUNTER", "key": FEEDBACK_METRIC, "value": len(losses), "tags": dict(tag)}
        ]
        if correct is not None:
            metrics.append(
                {
                    "type": "COUNTER",
                    "key": FEEDBACK_CORRECT_METRIC,
                    "value": correct,
                    "tags": dict(tag),
                }
            )
        metrics += [
            {
                "type": "TIMER",
                "key": FEEDBACK_LOSS_METRIC,
                "value": loss * _TIMER_UNIT,
                "tags": dict(tag),
            }
            for loss in losses.tolist()
        ]
        return metrics


def _untext(features: Any) -> Any:
    # Seldon parses feedback through protobuf, where every JSON number is a float and rows
    # mixing numbers and text become an array of text: the category 2 arrives as "2.0".
    array = np.asarray(features)
    if array.dtype.kind != "U":
        return features
    return np.vectorize(lambda v: v[:-2] if _INTEGRAL_TEXT.fullmatch(v) else v, otypes=[object])(
        array
    )


def prediction_scores(probabilities: np.ndarray) -> np.ndarray:
    """One score per row for the rollout's shift check, as `retrain.rollout.providers` makes
    them: P(second class) for a binary classifier, else the index of the top class."""
    if probabilities.shape[1] == 2:
        return np.asarray(probabilities[:, 1], dtype=float)
    return np.argmax(probabilities, axis=1).astype(float)


def parse_truth(truth: Any, classes: Sequence[str]) -> list[Any]:
    """The feedback's truth as one value per row: class names (classifier) or floats.

    Accepts a column (rows) or rows of one value; a classifier also takes one-hot rows with
    one column per class. Numbers naming a class are read as ingest writes labels (``1.0`` is
    class ``"1"``), since Seldon's JSON turns every number into a float.

    Raises:
        ValidationError: no truth, a shape other than those, a missing value, an unknown
            class or a regression truth that is not a number; names the row.
    """
    array = np.asarray(truth, dtype=object)
    if array.size == 0:
        raise ValidationError("no truth: send truth.data.ndarray with one value per row")
    if array.ndim == 2 and classes and array.shape[1] == len(classes) > 1:
        try:
            onehot = array.astype(float)
        except (TypeError, ValueError):
            raise ValidationError("one-hot truth rows must hold numbers") from None
        return [classes[i] for i in np.argmax(onehot, axis=1)]
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        want = f"or rows x {len(classes)} one-hot " if len(classes) > 1 else ""
        raise ValidationError(
            f"truth must be one value per row {want}(rows or rows x 1), got shape {array.shape}"
        )
    values: list[Any] = []
    problems: list[str] = []
    for i, v in enumerate(array.tolist()):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            problems.append(f"row {i}: truth is missing")
        elif classes:
            name = str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
            if name in classes:
                values.append(name)
            else:
                problems.append(f"row {i}: {v!r:.40} is not a class ({', '.join(classes)})")
        else:
            try:
                values.append(float(v))
            except (TypeError, ValueError):
                problems.append(f"row {i}: {v!r:.40} is not a number")
    if problems:
        extra = len(problems) - _MAX_PROBLEMS
        shown = problems[:_MAX_PROBLEMS] + ([f"... and {extra} more"] if extra > 0 else [])
        raise ValidationError("the truth has values the model cannot score", shown)
    return values


def feedback_losses(
    out: np.ndarray, truth: Sequence[Any], classes: Sequence[str]
) -> tuple[np.ndarray, int | None]:
    """Per-row losses and, for a classifier, how many rows' top class is the truth.

    `out` is what `RetrainModel.predict` answers; `truth` what `parse_truth` returns; no
    `classes` means a regressor. Log loss of the true class (probabilities floored at 1e-15)
    or squared error.
    """
    if not classes:
        err = out.reshape(-1) - np.asarray(truth, dtype=float)
        return err**2, None
    index = {c: i for i, c in enumerate(classes)}
    true = np.array([index[t] for t in truth], dtype=int)
    p = out[np.arange(len(true)), true]
    losses = -np.log(np.clip(p, _PROB_FLOOR, 1.0))
    return losses, int(np.sum(np.argmax(out, axis=1) == true))


def _load(uri: str, expected_version: str | None) -> tuple[ModelCard, Pipeline]:
    model_uri, card_uri = model_locations(uri)
    card = parse_card(read_uri(card_uri), card_uri)
    if expected_version is not None and card.version != expected_version:
        raise ValidationError(
            f"MODEL_VERSION is {expected_version!r} but {card_uri} describes version "
            f"{card.version!r}; refusing to serve a different model than the deployment names"
        )
    model = load_verified(
        read_uri(model_uri),
        card.model_sha256,
        what=f"model file {model_uri} (version {card.version})",
    )
    if not isinstance(model, Pipeline):
        raise ValidationError(f"{model_uri} holds a {type(model).__name__}, not a Pipeline")
    if card.task == "classification" and not (
        hasattr(model, "predict_proba") and hasattr(model, "classes_")
    ):
        raise ValidationError(
            f"{model_uri}: the card says classification but the model has no predict_proba/classes_"
        )
    return card, model


def build_frame(X: Any, names: Sequence[str] | None, features: Mapping[str, str]) -> pd.DataFrame:
    """The request as a DataFrame with the card's feature columns, in the card's order.

    Numeric columns become float64 (null -> NaN, imputed by the model); categorical and
    identifier columns become text the way ingest writes them (integral numbers print as
    integers, so ``3`` and ``3.0`` both mean category ``"3"``), missing values NaN; text
    columns become text, a missing value an empty text.

    Raises:
        ValidationError: not a 2-D array, no rows, wrong column count or names, or values that
            are not numbers in numeric columns; the message names the columns.
    """
    expected = list(features)
    if isinstance(X, (str, bytes, dict)):
        kind = type(X).__name__
        raise ValidationError(
            f"expected data.ndarray or data.tensor rows of features, got a {kind} payload"
        )
    array = np.asarray(X)
    if array.ndim != 2:
        raise ValidationError(
            f"expected a 2-D array (rows x {len(expected)} features), got shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValidationError("the request has no rows")
    given = [str(n) for n in names] if names is not None and len(names) else []
    if given:
        if len(given) != array.shape[1]:
            raise ValidationError(
                f"data.names has {len(given)} entries but rows have {array.shape[1]} columns"
            )
        problems = [f"unknown feature '{n}'" for n in given if n not in features]
        problems += [f"missing feature '{n}'" for n in expected if n not in given]
        problems += sorted({f"feature '{n}' given twice" for n in given if given.count(n) > 1})
        if problems:
            raise ValidationError(
                f"data.names must be exactly the model's features: {', '.join(expected)}",
                problems,
            )
        columns = {n: array[:, i] for i, n in enumerate(given)}
    else:
        if array.shape[1] != len(expected):
            raise ValidationError(
                f"expected {len(expected)} feature columns ({', '.join(expected)}), got "
                f"{array.shape[1]}; send data.names to name the columns"
            )
        columns = {n: array[:, i] for i, n in enumerate(expected)}
    out: dict[str, pd.Series] = {}
    problems = []
    for name in expected:
        if features[name] == _NUMERIC:
            out[name], bad = _numeric_column(columns[name])
            problems += [
                f"column '{name}' (numeric), row {i}: {v!r:.40} is not a number" for i, v in bad
            ]
        elif features[name] == _TEXT:
            out[name] = _text_column(columns[name])
        else:
            out[name] = _category_column(columns[name])
    if problems:
        extra = len(problems) - _MAX_PROBLEMS
        shown = problems[:_MAX_PROBLEMS] + ([f"... and {extra} more"] if extra > 0 else [])
        raise ValidationError("the request has values the model cannot use", shown)
    return pd.DataFrame(out)


def _numeric_column(values: np.ndarray) -> tuple[pd.Series, list[tuple[int, Any]]]:
    if values.dtype.kind in "iuf":
        return pd.Series(values.astype("float64")), []
    out = np.empty(len(values), dtype="float64")
    bad: list[tuple[int, Any]] = []
    for i, v in enumerate(values.tolist()):
        if v is None:
            out[i] = math.nan
        elif isinstance(v, bool):
            # JSON true/false is not a number, although Python would call it 1/0.
            bad.append((i, v))
        elif isinstance(v, (int, float)):
            out[i] = float(v)
        else:
            try:
                out[i] = float(str(v))
            except ValueError:
                bad.append((i, v))
    return pd.Series(out), bad


def _category_column(values: np.ndarray) -> pd.Series:
    # Mirrors retrain.data.schema.as_category_strings, which shaped the training data.
    out: list[object] = []
    for v in values.tolist():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(np.nan)
        elif isinstance(v, float) and v.is_integer():
            out.append(str(int(v)))
        else:
            out.append(str(v))
    return pd.Series(out, dtype=object)


def _text_column(values: np.ndarray) -> pd.Series:
    # As retrain.training.model.feature_frame: a missing text is an empty one.
    out = [
        "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
        for v in values.tolist()
    ]
    return pd.Series(out, dtype=object)


def request_limits(environ: Mapping[str, str]) -> tuple[int, int]:
    """(max body bytes, max rows) of a request, from `MAX_REQUEST_BYTES_ENV` and
    `MAX_REQUEST_ROWS_ENV` (defaults 8 MiB and 10,000).

    Raises:
        ValidationError: a value that is not a positive integer, naming the variable.
    """
    values = []
    for name, default in _DEFAULT_LIMITS.items():
        text = environ.get(name, "").strip()
        if not text:
            values.append(default)
            continue
        if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
            raise ValidationError(f"{name}={text!r}: expected a positive whole number")
        values.append(int(text))
    return values[0], values[1]


def serving_threads(environ: Mapping[str, str]) -> int:
    """Native threads per request, from `THREADS_ENV` (default 1).

    Raises:
        ValidationError: a value that is not a positive integer, naming the variable.
    """
    text = environ.get(THREADS_ENV, "").strip()
    if not text:
        return 1
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
        raise ValidationError(f"{THREADS_ENV}={text!r}: expected a positive whole number")
    return int(text)


def _refusal(message: str, status: int) -> Response:
    response = jsonify(SeldonMicroserviceException(message, status_code=status).to_dict())
    response.status_code = status
    return response


def request_guard(max_bytes: int) -> Blueprint:
    """A Flask blueprint (Seldon's ``model_error_handler`` hook) guarding every request.

    A body over `max_bytes` is refused with 413 before it is read (by its Content-Length, and
    by Flask's ``MAX_CONTENT_LENGTH`` for a body sent without one); JSON too deeply nested to
    parse, and a request Seldon cannot decode into an array (values that do not fit the
    tensor's shape), get 400 rather than Flask's 500. The model's own errors never reach these
    handlers: `RetrainModel` answers them itself.
    """
    guard = Blueprint("retrain_request_guard", __name__)
    too_big = f"the request body is over the limit {MAX_REQUEST_BYTES_ENV}={max_bytes:,} bytes"
    guard.record_once(lambda state: state.app.config.update(MAX_CONTENT_LENGTH=max_bytes))

    @guard.before_app_request
    def _check_size() -> Response | None:
        length = request.content_length
        if length is not None and length > max_bytes:
            return _refusal(f"{too_big} ({length:,} bytes); send it in smaller batches", 413)
        return None

    @guard.app_errorhandler(RequestEntityTooLarge)
    def _too_large(err: RequestEntityTooLarge) -> Response:
        return _refusal(f"{too_big}; send it in smaller batches", 413)

    @guard.app_errorhandler(RecursionError)
    def _too_deep(err: RecursionError) -> Response:
        return _refusal("the request's JSON is nested too deeply to read", 400)

    @guard.app_errorhandler(ValueError)
    def _undecodable(err: ValueError) -> Response:
        return _refusal(f"the request could not be decoded: {str(err)[:200]}", 400)

    return guard
