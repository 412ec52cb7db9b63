"""Every compiled executor, run as the image runs it: the package installed non-editable.

The closest thing to running the components image this machine allows: the build context of
components/Dockerfile (its COPY lines) is assembled in a temporary directory and installed as
the Dockerfile installs it (same constraints, non-editable, a clean virtualenv; pip's cache is
reused, PyPI is the only network). Then each executor of the compiled cluster pipeline runs
with its own command and arguments, ``{{$}}`` replaced by a synthetic executor input in KFP's
format, from resolve to release on generated data, and its outputs are checked: the executor
output file, the output parameter files and the artifacts KFP would upload.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from required import require
from retrain.config import load_config
from retrain.data.demo import generate_loans
from retrain.registry import Registry
from retrain.storage import open_storage

require("kfp", "the pipeline is compiled with the KFP SDK (extra 'kfp')")
require("kfp.kubernetes", "the cluster pipeline is compiled with kfp-kubernetes (extra 'kfp')")

from retrain_pipelines.retrain_pipeline import ClusterOptions, compile_pipeline  # noqa: E402

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
IMAGE = "registry.example.com/retrain/retrain:9.9.9"
#: consumer step -> its input artifact -> (producer step, output artifact): the pipeline's
#: wiring (tests/pipelines/test_compile.py checks the compiled DAG).
WIRING = {
    "label": {"dataset": ("ingest", "dataset")},
    "train": {"labelled": ("label", "labelled")},
    "evaluate": {"model": ("train", "model"), "holdout": ("train", "holdout")},
    "deploy": {"model": ("train", "model")},
}
ORDER = ("resolve", "ingest", "label", "train", "evaluate", "deploy", "rollout", "release")


def _build_context(dest: Path) -> Path:
    """What the Dockerfile's build stage copies, copied the same way (.dockerignore'd)."""
    dockerfile = (REPO / "components" / "Dockerfile").read_text()
    build_stage = dockerfile.split("# --- runtime")[0]
    ignore = shutil.ignore_patterns("__pycache__", "*.py[cod]", "*.egg-info")
    dest.mkdir(parents=True)
    for line in re.findall(r"^COPY (?!--from)(.+)$", build_stage, flags=re.M):
        *sources, target = line.split()
        for source in sources:
            src = REPO / source
            if src.is_dir():
                shutil.copytree(src, dest / target.rstrip("/").lstrip("./"), ignore=ignore)
            else:
                shutil.copy2(src, dest / src.name)
    return dest


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean virtualenv with the package installed from the build context, non-editable."""
    tmp = tmp_path_factory.mktemp("image")
    context = _build_context(tmp / "context")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")

    def pip(*args: str) -> None:
        done = subprocess.run(
            [py, "-m", "pip", "--disable-pip-version-check", "-q", *args],
            cwd=context,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-3000:]

    pip("install", "-c", "build-constraints.txt", "pip")
    pip(
        "install", "--prefer-binary", "-c", "constraints.txt",
        "--build-constraint", "build-constraints.txt", ".[kfp]",
    )  # fmt: skip
    where = subprocess.run(
        [py, "-c", "import retrain_components.launcher as m; print(m.__file__)"],
        cwd=tmp,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(venv)), f"not the installed copy: {where}"
    return venv


def _executor_input(
    step: str, component: dict[str, Any], values: dict[str, Any], inputs: dict[str, Any],
    root: Path,
) -> dict[str, Any]:  # fmt: skip
    """A KFP executor input for `step`: outputs under root/<step>/ as the launcher stages them."""
    outputs = component.get("outputDefinitions", {})
    out_dir = root / step
    return {
        "inputs": {
            "parameterValues": values,
            "artifacts": {name: {"artifacts": [art]} for name, art in inputs.items()},
        },
        "outputs": {
            "parameters": {
                name: {"outputFile": str(out_dir / "params" / name)}
                for name in outputs.get("parameters", {})
            },
            "artifacts": {
                name: {
                    "artifacts": [
                        {
                            "name": name,
                            "uri": str(out_dir / name),
                            "type": {"schemaTitle": spec["artifactType"]["schemaTitle"]},
                            "metadata": {},
                        }
                    ]
                }
                for name, spec in outputs.get("artifacts", {}).items()
            },
            "outputFile": str(out_dir / "executor_output.json"),
        },
    }


def test_every_compiled_executor_runs_from_the_installed_package(
    image_venv: Path, tmp_path: Path
) -> None:
    path = compile_pipeline(tmp_path / "p.yaml", IMAGE, cluster=ClusterOptions())
    spec = next(yaml.safe_load_all(path.read_text()))
    assert "def " not in path.read_text(), "function source compiled into the pipeline"
    executors = spec["deploymentSpec"]["executors"]
    cfg = load_config(
        generate_loans(tmp_path / "data", windows=3, rows_per_window=600, drift_window=2, seed=5)
    )
    config_yaml = cfg.to_yaml()
    run_id = "image-run"
    params: dict[str, dict[str, Any]] = {
        "resolve": {"window_id": "0", "run_id": run_id, "job_id": "job-1"},
        "ingest": {"window_id": "0", "run_id": run_id},
        "label": {"window_id": "0", "run_id": run_id, "as_of": ""},
        "train": {"window_id": "0", "run_id": run_id},
        "evaluate": {"run_id": run_id},
        "deploy": {"run_id": run_id},
        "rollout": {"run_id": run_id, "max_seconds": 0.0},
        "release": {
            "job_id": "job-1",
            "status": {"state": "SUCCEEDED", "error": {}, "pipelineTaskName": "run"},
        },
    }
    env = {**os.environ, "PATH": f"{image_venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    produced: dict[str, dict[str, Any]] = {}
    root = tmp_path / "pipeline-root"
    for step in ORDER:
        component = spec["components"][f"comp-{step}"]
        inputs = {
            name: produced[producer][output]
            for name, (producer, output) in WIRING.get(step, {}).items()
        }
        executor_input = _executor_input(
            step, component, {"config_yaml": config_yaml, **params[step]}, inputs, root
        )
        container = executors[f"exec-{step}"]["container"]
        argv = [
            json.dumps(executor_input) if a == "{{$}}" else a
            for a in [*container["command"], *container["args"]]
        ]
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, (step, done.stderr[-3000:])

        output = json.loads((root / step / "executor_output.json").read_text())
        declared = component["outputDefinitions"]
        assert set(output["parameterValues"]) == set(declared["parameters"]), step
        for name, value in output["parameterValues"].items():
            kind = declared["parameters"][name]["parameterType"]
            assert isinstance(value, {"STRING": str, "BOOLEAN": bool}[kind]), (step, name)
            file_text = (root / step / "params" / name).read_text()
            assert file_text == (value if isinstance(value, str) else json.dumps(value))
        assert set(output["artifacts"]) == set(declared["artifacts"]), step
        produced[step] = {n: a["artifacts"][0] for n, a in output["artifacts"].items()}
        for name, art in produced[step].items():
            assert Path(art["uri"]).exists(), (step, name, "nothing for KFP to upload")
        assert (root / step / "report").read_text().startswith("#"), step
        details = json.loads((root / step / "details").read_text())
        assert details, step
        record = open_storage(cfg.storage_root).list(f"runs/{run_id}")
        if f"runs/{run_id}/{step}.json" in record:  # resolve/release of explicit ids: none
            stored = json.loads(
                open_storage(cfg.storage_root).read_text(f"runs/{run_id}/{step}.json")
            )
            assert json.loads(json.dumps(stored["report"], default=str, sort_keys=True)) == details

    assert produced["resolve"]  # explicit ids pass through
    resolved = json.loads((root / "resolve" / "executor_output.json").read_text())
    assert resolved["parameterValues"] == {
        "resolved_window_id": "0",
        "resolved_run_id": run_id,
        "resolved_as_of": "",  # no as_of given: none resolved
    }
    card = json.loads((Path(produced["train"]["model"]["uri"]) / "model.json").read_text())
    assert produced["train"]["model"]["metadata"]["version"] == card["version"]
    evaluated = json.loads((root / "evaluate" / "executor_output.json").read_text())
    assert evaluated["parameterValues"]["blessed"] is True  # the first model: no champion
    metrics = produced["evaluate"]["metrics"]["metadata"]
    assert metrics and all(isinstance(v, float) for v in metrics.values())
    matrix = produced["evaluate"]["classification"]["metadata"]["confusionMatrix"]
    assert len(matrix["rows"]) == len(matrix["annotationSpecs"]) >= 2
    registry = Registry(open_storage(cfg.storage_root), cfg.name)
    assert registry.get_alias("champion").version == card["version"]
