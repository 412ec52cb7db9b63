"""The serving image's sources, read without building or running them.

The server itself is exercised for real in tests/integration/test_serving.py; these checks keep
its environment apart from kfp and in step with the training environment.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVING = REPO / "serving"


def imported_modules(source: str, filename: str = "<source>") -> set[str]:
    """Every module a Python source imports: statements, and import_module/__import__ calls."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if name in ("import_module", "__import__") and isinstance(first, ast.Constant):
                modules.add(str(first.value))
    return modules


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def test_the_scanner_sees_every_way_of_importing() -> None:
    source = (
        "import kfp\nfrom kfp import dsl\nimport importlib\n"
        "importlib.import_module('kfp.local')\n__import__('kfp.compiler')\n"
    )
    assert {"kfp", "kfp.local", "kfp.compiler"} <= imported_modules(source)


def test_serving_never_imports_kfp_and_only_the_safe_part_of_retrain() -> None:
    files = sorted(SERVING.glob("**/*.py"))
    assert files, "serving/ has no Python files"
    for path in files:
        modules = imported_modules(path.read_text(), str(path))
        assert not [m for m in modules if m.split(".")[0] == "kfp"], path
        retrain = {m for m in modules if m.split(".")[0] == "retrain"}
        assert retrain <= {"retrain._card", "retrain._safety", "retrain.errors"}, path


def test_serving_pins_scikit_learn_and_skops_as_training_does() -> None:
    # A skops file is rebuilt by the scikit-learn classes of the loading environment.
    serving, training = _pins(SERVING / "requirements.txt"), _pins(REPO / "constraints.txt")
    for name in ("scikit-learn", "skops"):
        assert serving[name] == training[name], name


def test_seldon_core_gets_the_versions_it_accepts() -> None:
    pins = _pins(SERVING / "requirements.txt")
    assert pins["seldon-core"] == "1.19.0"
    assert pins["protobuf"] == "5.29.5"
    assert int(pins["numpy"].split(".")[0]) < 2


def test_the_lock_agrees_with_every_pinned_requirement() -> None:
    lock = _pins(SERVING / "constraints.txt")
    for name in ("requirements.txt", "requirements-gcs.txt"):
        for package, version in _pins(SERVING / name).items():
            assert lock.get(package) == version, f"{name}: {package}=={version}"
    assert "kfp" not in lock


def _dockerfile() -> str:
    # Join continuation lines, drop comments.
    text = (SERVING / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    return re.sub(r"\\\n\s*", " ", "\n".join(lines))


def test_dockerfile_pins_its_base_and_runs_the_model_as_a_non_root_user() -> None:
    text = _dockerfile()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base is not None
    assert re.fullmatch(r"python:3\.12\.\d+-slim(-\w+)?", base.group(1)), base.group(1)
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert len(users) == 1 and re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[0]), users
    assert "latest" not in text


def test_dockerfile_installs_the_package_without_dependencies_and_starts_our_class() -> None:
    text = _dockerfile()
    assert re.search(r"pip install --no-deps /build/retrain", text)
    assert "-c /build/serving/constraints.txt" in text
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert cmd is not None
    args = ast.literal_eval(cmd.group(1))
    assert args[:4] == [
        "seldon-core-microservice",
        "retrain_model.RetrainModel",
        "--service-type",
        "MODEL",
    ]
    assert args[args.index("--threads") + 1] == "1"


def test_isolated_builds_get_the_pinned_setuptools() -> None:
    # The sdists among the requirements and the package itself are built in isolated
    # environments: PIP_BUILD_CONSTRAINT pins their setuptools, once pip is new enough to read
    # it (the venv's bundled pip may not be), so the pinned pip is installed first.
    text = _dockerfile()
    assert re.search(r"^ENV .*\bPIP_BUILD_CONSTRAINT=/build/build-constraints\.txt\b", text, re.M)
    assert re.search(r"^COPY build-constraints\.txt /build/$", text, re.M)
    upgrade = text.index("pip install -c /build/build-constraints.txt pip")
    assert upgrade < text.index("-c /build/serving/constraints.txt")
    assert upgrade < text.index("pip install --no-deps /build/retrain")
    assert {"pip", "setuptools"} <= set(_pins(REPO / "build-constraints.txt"))


def test_the_build_context_keeps_everything_the_dockerfile_copies() -> None:
    sources = [
        src
        for line in re.findall(r"^COPY (?!--from)(.+) \S+$", _dockerfile(), re.M)
        for src in line.split()
    ]
    assert {"src", "serving/retrain_model.py", "pyproject.toml"} <= set(sources)
    kept = {
        ln[1:].rstrip("/")
        for ln in (SERVING / "Dockerfile.dockerignore").read_text().splitlines()
        if ln.startswith("!")
    }
    assert [s for s in sources if s not in kept] == []


def test_the_image_answers_a_request_on_one_native_thread_by_default() -> None:
    # BLAS and OpenMP would otherwise start a thread per core of the node for every request.
    text = _dockerfile()
    env = re.search(r"^ENV (.*)$", text.split("FROM ${PYTHON_IMAGE}")[-1], re.M)
    assert env is not None and "RETRAIN_SERVING_THREADS=1" in env.group(1).split()
    source = (SERVING / "retrain_model.py").read_text()
    assert "threadpoolctl" in imported_modules(source)
    assert _pins(SERVING / "requirements.txt")["threadpoolctl"]


def _serving_functions(*names: str) -> dict[str, Any]:
    """The named functions of the model server, compiled from its source with what they use
    (the module itself needs seldon-core, which runs under the serving image's Python)."""
    from collections.abc import Mapping

    from retrain.errors import ValidationError

    source = (SERVING / "retrain_model.py").read_text()
    tree = ast.parse(source)
    wanted = {"_DEFAULT_LIMITS", "THREADS_ENV", "MAX_REQUEST_BYTES_ENV", "MAX_REQUEST_ROWS_ENV"}
    kept: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in names:
            kept.append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id in wanted for t in targets):
                kept.append(node)
    space: dict[str, Any] = {"re": re, "Mapping": Mapping, "ValidationError": ValidationError}
    exec(compile(ast.Module(body=kept, type_ignores=[]), "retrain_model.py", "exec"), space)
    return space


@pytest.mark.parametrize("text", ["²", "٣", "1.5", "-2", "0", "two"])
def test_thread_and_request_limits_refuse_what_is_not_a_positive_whole_number(text: str) -> None:
    # "²" and "٣" are digits to str.isdigit() but not to int(): a ValueError at start-up.
    from retrain.errors import ValidationError

    space = _serving_functions("serving_threads", "request_limits")
    with pytest.raises(ValidationError, match="expected a positive whole number"):
        space["serving_threads"]({space["THREADS_ENV"]: text})
    with pytest.raises(ValidationError, match="expected a positive whole number"):
        space["request_limits"]({space["MAX_REQUEST_ROWS_ENV"]: text})
    assert space["serving_threads"]({space["THREADS_ENV"]: " 4 "}) == 4
