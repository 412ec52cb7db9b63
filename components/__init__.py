"""KFP v2 components: thin adapters over `retrain.steps`, one file per step, packaged twice.

Each step file holds the step's adapter, ``run(StepCall) -> StepResult``: it turns artifact
paths and run parameters into one `retrain.steps` call and returns the output values. The
step's interface is declared once (`_interface.INTERFACES`) and packaged two ways:

- cluster (`container_components`): a container component per step whose command runs the
  step launcher of the installed package, ``python -m retrain_components.launcher``, which
  parses the executor input and writes the executor output itself (`launcher`). No function
  source is compiled into the pipeline, and the image's kfp version does not matter.
- local (`local_components`): kfp.local runs lightweight components only, so a one-line
  lightweight component per step (`_local`) hands its arguments to the same launcher, with
  `install_kfp_package=False` (the active virtualenv plays the image's part).

One code path per step either way: the launcher's `run_step` and the step's adapter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kfp import dsl
from retrain_components._container import LAUNCHER_MODULE, container_component
from retrain_components._interface import DETAILS_OUTPUT, INTERFACES, REPORT_OUTPUTS
from retrain_components._local import LOCAL_STEPS

from retrain import __version__

__all__ = [
    "DEFAULT_IMAGE",
    "DETAILS_OUTPUT",
    "INTERFACES",
    "LAUNCHER_MODULE",
    "REPORT_OUTPUTS",
    "STEPS",
    "Components",
    "container_components",
    "local_components",
]

#: The components image built from components/Dockerfile (see `make images`).
DEFAULT_IMAGE = f"ghcr.io/retrain-project/retrain:{__version__}"

#: The pipeline's steps, in the order they run (`release` is the exit task).
STEPS: tuple[str, ...] = tuple(INTERFACES)


@dataclass(frozen=True)
class Components:
    """One packaging of every step, and how to name a step's output values."""

    ops: Mapping[str, Any]
    local: bool

    def output(self, step: str, value: str) -> str:
        """The KFP output name of `value`: a lightweight step's single value is ``Output``."""
        if value not in INTERFACES[step].values:
            raise KeyError(f"step {step!r} has no output value {value!r}")
        return "Output" if self.local and len(INTERFACES[step].values) == 1 else value


def container_components(
    image: str = DEFAULT_IMAGE, launcher_args: Mapping[str, Sequence[str]] | None = None
) -> Components:
    """Every step as a container component running the launcher in `image`.

    `launcher_args` adds arguments per step (e.g. ``--retry-backoff``).
    """
    extra = launcher_args or {}
    ops = {step: container_component(step, image, extra.get(step, ())) for step in STEPS}
    return Components(ops, local=False)


def local_components(image: str = DEFAULT_IMAGE) -> Components:
    """Every step as a lightweight component for kfp.local (no run-time pip install)."""
    ops = {
        step: dsl.component(func=LOCAL_STEPS[step], base_image=image, install_kfp_package=False)
        for step in STEPS
    }
    return Components(ops, local=True)
