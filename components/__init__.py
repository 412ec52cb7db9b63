"""KFP v2 components: thin adapters over `retrain.steps`, one file per step.

Each file holds a plain function whose body imports the library and calls one step. The
functions become components in `make_component` with the project image as `base_image` and
`install_kfp_package=False`: the image already has kfp and the package installed, so nothing
is pip-installed at run time, on a cluster or locally (where the active virtualenv plays the
image's part under `kfp.local.SubprocessRunner(use_venv=False)`).

These files must not use `from __future__ import annotations`: KFP reads the parameter
annotations (`Output[Dataset]`, …) as real types.
"""

from collections.abc import Callable
from typing import Any

from kfp import dsl
from retrain_components.deploy import deploy
from retrain_components.evaluate import evaluate
from retrain_components.ingest import ingest
from retrain_components.label import label
from retrain_components.release import release
from retrain_components.resolve import resolve
from retrain_components.rollout import rollout
from retrain_components.train import train

from retrain import __version__

__all__ = ["DEFAULT_IMAGE", "STEPS", "make_component"]

#: The components image built from components/Dockerfile (see `make images`).
DEFAULT_IMAGE = f"ghcr.io/retrain-project/retrain:{__version__}"

STEPS: dict[str, Callable[..., Any]] = {
    "resolve": resolve,
    "ingest": ingest,
    "label": label,
    "train": train,
    "evaluate": evaluate,
    "deploy": deploy,
    "rollout": rollout,
    # The exit task: runs after all the others, whatever happened to them.
    "release": release,
}


def make_component(func: Callable[..., Any], image: str = DEFAULT_IMAGE) -> Any:
    """A KFP component of `func` running in `image`, with no run-time pip install."""
    return dsl.component(func=func, base_image=image, install_kfp_package=False)
