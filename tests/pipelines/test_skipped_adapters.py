"""Every step adapter handles a skipped outcome (an empty window: no new data).

A skipped step writes none of its own outputs and its details lack what a real run's have
(train's model version, evaluate's metrics): the adapters must not read them, evaluate must
say not blessed (deploy does not run), and every output artifact gets a file KFP can upload.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from required import require
from retrain.config import Config, load_config

require("kfp", "the adapters declare KFP artifact types (extra 'kfp')")

from retrain_components import launcher  # noqa: E402
from retrain_components._call import StepCall  # noqa: E402
from retrain_components._interface import INTERFACES  # noqa: E402

RUN = "empty"


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    require("river", "the demo data generator uses river (extra 'demo')")
    from retrain.data.demo import generate_loans

    return load_config(
        generate_loans(tmp_path / "data", windows=2, rows_per_window=200, drift_window=1, seed=1)
    )


def test_the_adapters_after_an_empty_window_skip_and_write_every_output(
    cfg: Config, tmp_path: Path
) -> None:
    values = {"config_yaml": cfg.to_yaml(), "window_id": "9", "run_id": RUN, "as_of": ""}
    out = tmp_path / "kfp"
    paths: dict[str, str] = {}  # an input artifact is the path an earlier step wrote
    results = {}
    for step in ("ingest", "label", "train", "evaluate"):
        interface = INTERFACES[step]
        mine = {name: str(out / step / name) for name in interface.output_artifacts()}
        call = StepCall(
            {k: values[k] for k in interface.parameters},
            {**{name: paths[name] for name in interface.inputs}, **mine},
        )
        results[step] = launcher.run_step(step, call)
        paths.update(mine)
        for name, path in mine.items():
            assert Path(path).exists(), (step, name)  # KFP uploads every output artifact
        assert "no new data" in Path(mine["html"]).read_text(encoding="utf-8"), step

    for step in ("label", "train", "evaluate"):
        assert results[step].details["skipped"] is True, step
    assert "model" not in results["train"].metadata  # no model, so no version to tag
    assert json.loads(Path(paths["model"]).read_text())["skipped"] is True
    assert results["evaluate"].values == {"blessed": False}
