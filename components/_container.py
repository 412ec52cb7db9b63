"""The cluster packaging: one container component per step, built from `INTERFACES`.

The component's command runs the step launcher of the installed package; no function source
is compiled into the pipeline. Output parameters are declared as `OutputPath`s (what a
container component can output); the launcher writes them into the executor output.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from kfp import dsl
from kfp.dsl import Input, Output, OutputPath
from retrain_components._interface import INTERFACES

__all__ = ["LAUNCHER_MODULE", "container_component"]

LAUNCHER_MODULE = "retrain_components.launcher"

# The executor input placeholder: KFP replaces it with the task's executor input (JSON).
_EXECUTOR_INPUT = "{{$}}"


def container_component(step: str, image: str, launcher_args: Sequence[str] = ()) -> Any:
    """The container component of `step`: ``python -m retrain_components.launcher ...``."""
    interface = INTERFACES[step]
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    required = [
        inspect.Parameter(name, kind, annotation=annotation)
        for name, annotation in interface.parameters.items()
        if name not in interface.defaults
    ]
    required += [
        inspect.Parameter(name, kind, annotation=Input[artifact])
        for name, artifact in interface.inputs.items()
    ]
    outputs = [
        inspect.Parameter(name, kind, annotation=Output[artifact])
        for name, artifact in interface.output_artifacts().items()
    ]
    outputs += [
        inspect.Parameter(name, kind, annotation=OutputPath(value))
        for name, value in interface.values.items()
    ]
    optional = [
        inspect.Parameter(name, kind, annotation=interface.parameters[name], default=default)
        for name, default in interface.defaults.items()
    ]
    args = ["--step", step, "--executor-input", _EXECUTOR_INPUT, *launcher_args]

    def spec(*_: Any) -> dsl.ContainerSpec:
        return dsl.ContainerSpec(image=image, command=["python", "-m", LAUNCHER_MODULE], args=args)

    spec.__name__ = spec.__qualname__ = step
    spec.__doc__ = f"The {step} step: `retrain_components.{step}`, run by the step launcher."
    spec.__signature__ = inspect.Signature([*required, *outputs, *optional])  # type: ignore[attr-defined]
    return dsl.container_component(spec)
