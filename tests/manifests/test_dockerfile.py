"""The components image builds the package with the pins the tests run with.

Reads components/Dockerfile, constraints.txt and build-constraints.txt: the image installs
``.[kfp]`` under ``-c constraints.txt``, and every distribution that install pulls in is pinned
there at the version this test environment has, on the Python the image uses (and
constraints.txt pins exactly what ``.[kfp,demo,dev]`` installs). The isolated builds (the
package's own, and sdists') get their setuptools from build-constraints.txt, through a pinned
pip that knows ``--build-constraint``. The image is also checked to be multi-stage, non-root,
pinned and free of build tools at run time. (Building it needs a container engine, which this
check does not.)
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from required import require, unavailable

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "components" / "Dockerfile"
CONSTRAINTS = ROOT / "constraints.txt"
BUILD_CONSTRAINTS = ROOT / "build-constraints.txt"
#: The extras the image installs (``.[kfp]``).
EXTRAS = ("kfp",)
#: The extras constraints.txt is resolved for (`make constraints`, `make venv`).
ALL_EXTRAS = ("kfp", "demo", "dev")
#: The first pip with ``--build-constraint`` (``-c`` does not reach isolated builds).
PIP_WITH_BUILD_CONSTRAINTS = Version("25.3")
#: Packages that compile code; none may be installed in the runtime stage.
BUILD_TOOLS = ("gcc", "g++", "make", "build-essential", "python3-dev", "libc6-dev", "cmake")


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current = f"{current} {line}" if current else line
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


@pytest.fixture(scope="module")
def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of instructions starting with its FROM."""
    instructions = _instructions(DOCKERFILE.read_text())
    out: list[list[tuple[str, str]]] = []
    for ins in instructions:
        if ins[0] == "FROM":
            out.append([ins])
        elif out:
            out[-1].append(ins)
    return out


@pytest.fixture(scope="module")
def base_image() -> str:
    args = dict(
        ins[1].split("=", 1)
        for ins in _instructions(DOCKERFILE.read_text())
        if ins[0] == "ARG" and "=" in ins[1]
    )
    return args["PYTHON_IMAGE"]


def _pins(path: Path = CONSTRAINTS) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"{path.name}: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _pyproject() -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the dev extra installs tomli, tomllib's backport, on Python 3.10
        tomllib = require("tomli", "reading pyproject.toml on Python 3.10 (extra 'dev')")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _project_requirements(extras: tuple[str, ...]) -> list[Requirement]:
    """The project's requirements with `extras`, from pyproject.toml (what the image builds
    from; an installed copy's metadata can be older)."""
    project = _pyproject()["project"]
    specs = list(project["dependencies"])
    for extra in extras:
        specs.extend(project["optional-dependencies"][extra])
    return [Requirement(s) for s in specs]


def _closure(extras: tuple[str, ...]) -> dict[str, str]:
    """Every distribution `pip install .[extras]` installs: name -> installed version."""
    seen: dict[str, str] = {}
    todo = [
        (r.name, frozenset(r.extras))
        for r in _project_requirements(extras)
        if r.marker is None or r.marker.evaluate()  # e.g. tomli only before Python 3.11
    ]
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, wanted = todo.pop()
        key = (canonicalize_name(name), wanted)
        if key in done:
            continue
        done.add(key)
        dist = metadata.distribution(name)
        seen[canonicalize_name(name)] = dist.version
        for spec in dist.requires or []:
            req = Requirement(spec)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((req.name, frozenset(req.extras)))
    return seen


def test_it_is_multi_stage_and_the_runtime_copies_only_the_built_venv(
    stages: list[list[tuple[str, str]]],
) -> None:
    assert len(stages) >= 2
    final = stages[-1]
    copies = [args for ins, args in final if ins == "COPY"]
    assert copies, "the runtime stage must copy the built environment"
    assert all(args.startswith("--from=") for args in copies), copies


def test_the_package_is_installed_with_the_test_constraints(
    stages: list[list[tuple[str, str]]],
) -> None:
    copied = [a for stage in stages[:-1] for ins, a in stage if ins == "COPY"]
    assert any("constraints.txt" in a.split() for a in copied), "copy constraints.txt to build"
    installs = [
        a for stage in stages[:-1] for ins, a in stage if ins == "RUN" and "pip install" in a
    ]
    assert len(installs) == 1
    assert re.search(r"-c constraints\.txt", installs[0])
    assert re.search(r"""["']?\.\[kfp\]["']?""", installs[0]), "installs .[kfp]"


def test_the_runtime_stage_runs_as_a_numeric_non_root_user(
    stages: list[list[tuple[str, str]]],
) -> None:
    users = [args for ins, args in stages[-1] if ins == "USER"]
    assert users, "no USER in the runtime stage: the image would run as root"
    uid, _, gid = users[-1].partition(":")
    # Numeric, so Kubernetes can verify runAsNonRoot without resolving a name.
    assert uid.isdigit() and int(uid) > 0
    assert not gid or (gid.isdigit() and int(gid) > 0)


def test_no_build_tools_remain_at_run_time(stages: list[list[tuple[str, str]]]) -> None:
    runs = " ".join(args for ins, args in stages[-1] if ins == "RUN")
    for tool in BUILD_TOOLS:
        assert not re.search(rf"install\b[^&]*\b{re.escape(tool)}\b", runs), tool
    assert "pip uninstall" in runs, "pip itself is removed from the runtime"


def test_the_base_image_is_pinned_python_of_the_test_environment(base_image: str) -> None:
    name, _, digest = base_image.partition("@")
    repo, _, tag = name.rpartition(":")
    assert repo == "python"
    assert tag and tag != "latest"
    # A full patch version (not a moving 3.11 tag), or a digest.
    assert digest.startswith("sha256:") or re.match(r"^\d+\.\d+\.\d+-slim", tag), tag
    # constraints.txt was resolved on this interpreter; the image must run the same minor.
    major_minor = ".".join(tag.split(".")[:2])
    assert major_minor == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_every_installed_distribution_is_pinned_at_the_tested_version() -> None:
    pins = _pins()
    closure = _closure(EXTRAS)
    assert "kfp" in closure and "numpy" in closure, "the closure walk found the extras"
    unpinned = sorted(set(closure) - set(pins))
    assert not unpinned, f"not pinned in constraints.txt, so the image could get any: {unpinned}"
    drift = {n: (pins[n], v) for n, v in closure.items() if pins[n] != v}
    assert not drift, f"constraints.txt pins differ from what the tests run with: {drift}"


def test_constraints_pin_nothing_that_the_extras_do_not_install() -> None:
    try:
        closure = _closure(ALL_EXTRAS)
    except metadata.PackageNotFoundError as err:
        unavailable(f"this environment lacks part of .[{','.join(ALL_EXTRAS)}]: {err}")
    stale = sorted(set(_pins()) - set(closure))
    assert not stale, f"constraints.txt pins what nothing installs (run make constraints): {stale}"
    unpinned = sorted(set(closure) - set(_pins()))
    assert not unpinned, f"installed but not pinned (run make constraints): {unpinned}"


def test_isolated_builds_get_pinned_build_tools(stages: list[list[tuple[str, str]]]) -> None:
    copied = [a for stage in stages[:-1] for ins, a in stage if ins == "COPY"]
    assert any("build-constraints.txt" in a.split() for a in copied), "copy build-constraints.txt"
    install = next(
        a for stage in stages[:-1] for ins, a in stage if ins == "RUN" and "pip install" in a
    )
    # pip itself first, from build-constraints.txt: the venv's bundled pip may be too old.
    upgrade = re.search(r"pip install -c build-constraints\.txt pip\b", install)
    package = re.search(r"pip install [^&]*--build-constraint build-constraints\.txt", install)
    assert upgrade, "install the pinned pip before the package"
    assert package, "the package install must pass --build-constraint build-constraints.txt"
    assert upgrade.start() < package.start()

    pins = _pins(BUILD_CONSTRAINTS)
    assert Version(pins["pip"]) >= PIP_WITH_BUILD_CONSTRAINTS, pins["pip"]
    build_system = [Requirement(r) for r in _pyproject()["build-system"]["requires"]]
    for req in build_system:
        name = canonicalize_name(req.name)
        assert name in pins, f"build-constraints.txt does not pin {req.name}"
        assert req.specifier.contains(pins[name], prereleases=True), (req, pins[name])
    # Only build tools: pip and the build backends (setuptools also builds pyproject-less sdists).
    expected = {"pip", "setuptools"} | {canonicalize_name(r.name) for r in build_system}
    assert set(pins) == expected, sorted(set(pins) ^ expected)


def test_dockerignore_keeps_the_context_to_sources() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "tests", "manifests"} <= ignored
    needed_files = ("constraints.txt", "build-constraints.txt", "pyproject.toml")
    for needed in ("src", "components", "pipelines", *needed_files):
        assert needed not in ignored
