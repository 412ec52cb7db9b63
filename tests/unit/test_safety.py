"""retrain._safety: the one trusted-type list and verified loading, light enough for the server."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import retrain.errors
import retrain.training
from retrain import _safety
from retrain._safety import TRUSTED_TYPES, check_sha256, load_verified, sha256_hex
from retrain.errors import ValidationError
from retrain.training import artifact

SAFETY = Path(_safety.__file__)
#: What the serving image may need to import `retrain._safety`: it installs no other dependency
#: of the retrain package.
ALLOWED_THIRD_PARTY = {"numpy", "skops"}
ALLOWED_RETRAIN = {"retrain.errors"}


def _model() -> Pipeline:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y)


def _imports(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_the_trusted_list_has_one_source() -> None:
    assert artifact.TRUSTED_TYPES is TRUSTED_TYPES
    assert retrain.training.TRUSTED_TYPES is TRUSTED_TYPES
    assert "sklearn.pipeline.Pipeline" in TRUSTED_TYPES


def test_safety_imports_only_the_standard_library_numpy_and_skops() -> None:
    problems = []
    for module in sorted(_imports(SAFETY) | _imports(Path(retrain.errors.__file__))):
        top = module.split(".")[0]
        if top == "retrain":
            if module not in ALLOWED_RETRAIN and module != "retrain":
                problems.append(module)
        elif top not in sys.stdlib_module_names and top not in ALLOWED_THIRD_PARTY:
            problems.append(module)
    assert problems == []


def test_importing_safety_loads_no_config_or_orchestration_code() -> None:
    code = (
        "import sys, retrain._safety\n"
        "heavy = ['kfp', 'pydantic', 'yaml', 'google.cloud', 'retrain.config', "
        "'retrain.training', 'retrain.data']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == ""


def test_load_verified_round_trip() -> None:
    model = _model()
    data = sio.dumps(model)
    loaded = load_verified(data, sha256_hex(data).upper())  # hex digits in either case
    X = np.array([[0.3, -1.0], [2.0, 0.5]])
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("expected", ["", "0" * 64])
def test_a_hash_mismatch_is_refused_before_reading(expected: str) -> None:
    data = b"not even a zip file"
    with pytest.raises(ValidationError, match=r"model file \(v9\) does not match its card"):
        load_verified(data, expected, what="model file (v9)")
    with pytest.raises(ValidationError, match="refusing to load"):
        check_sha256(data, expected)


def test_untrusted_types_are_listed_and_refused() -> None:
    data = sio.dumps(Pipeline([("run", FunctionTransformer(func=os.system))]))
    with pytest.raises(ValidationError, match="outside TRUSTED_TYPES") as err:
        load_verified(data, sha256_hex(data))
    assert f"untrusted type {os.system.__module__}.system" in err.value.problems


def test_corrupted_bytes_with_a_matching_hash_are_refused() -> None:
    data = b"PK\x03\x04 truncated"
    with pytest.raises(ValidationError, match="corrupted or not a skops file"):
        load_verified(data, sha256_hex(data))
