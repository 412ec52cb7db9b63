"""Shared by every check: names, `Finding`, loading rendered objects, walking pod specs."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from retrain.errors import ValidationError

#: Kubernetes minor versions every built-in object must validate against.
KUBERNETES_VERSIONS: tuple[str, ...] = ("1.29", "1.30", "1.31", "1.32")

#: The ConfigMap (generated, so its name gets a hash suffix), its keys and where pods mount it.
CONFIG_MAP = "retrain-config"
CONFIG_KEY = "config.yaml"
PIPELINE_KEY = "pipeline.yaml"
CONFIG_MOUNT = "/etc/retrain"

#: The service account whose token the deploy step uses (deploy.mode: kubernetes).
DEPLOYER_SERVICE_ACCOUNT = "retrain-deployer"

#: The service account pipeline runs use (also in pipelines/retrain_pipeline.py).
PIPELINE_SERVICE_ACCOUNT = "retrain-pipeline"

_SELDON = ("machinelearning.seldon.io/v1", "SeldonDeployment")


@dataclass(frozen=True)
class Finding:
    """One problem: the rule that found it, the object, and what is wrong."""

    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.where}: {self.message}"


# --- loading ----------------------------------------------------------------------------------


def render(target: Path, kubectl: str = "kubectl") -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize <target>`` renders.

    Raises:
        ValidationError: kubectl is missing or kustomize refuses the directory.
    """
    exe = shutil.which(kubectl)
    if exe is None:
        raise ValidationError(
            f"{kubectl!r} not found: install kubectl (its built-in kustomize renders the overlays)"
        )
    proc = subprocess.run(
        [exe, "kustomize", str(target)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise ValidationError(f"kubectl kustomize {target} failed", [proc.stderr.strip()])
    return load_documents(proc.stdout, str(target))


def load_documents(text: str, source: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of `text`; each must be a mapping."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        raise ValidationError(f"{source} is not valid YAML: {err}") from None
    bad = [i for i, d in enumerate(docs) if not isinstance(d, dict)]
    if bad:
        raise ValidationError(f"{source}: documents {bad} are not mappings")
    return docs


def _where(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    name = meta.get("name", "?")
    return f"{obj.get('kind', '?')} {ns}/{name}" if ns else f"{obj.get('kind', '?')} {name}"


# --- pod specs --------------------------------------------------------------------------------


def pod_specs(obj: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(path, pod spec)`` for every pod template an object carries."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return [("spec", spec)]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return [("spec.template.spec", (spec.get("template") or {}).get("spec") or {})]
    if kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        return [
            ("spec.jobTemplate.spec.template.spec", (job.get("template") or {}).get("spec") or {})
        ]
    if (obj.get("apiVersion"), kind) == _SELDON:
        return [
            (f"spec.predictors[{i}].componentSpecs[{j}].spec", cs.get("spec") or {})
            for i, p in enumerate(spec.get("predictors") or [])
            for j, cs in enumerate(p.get("componentSpecs") or [])
        ]
    return []


def _containers(pod: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in ("initContainers", "containers"):
        for c in pod.get(field) or []:
            yield f"{field}[{c.get('name', '?')}]", c


def _effective(container: Mapping[str, Any], pod: Mapping[str, Any], key: str) -> Any:
    """A security field as it applies to the container: its own value, else the pod's."""
    own = (container.get("securityContext") or {}).get(key)
    return own if own is not None else (pod.get("securityContext") or {}).get(key)


def _rules_of(obj: Mapping[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    if obj.get("kind") not in ("Role", "ClusterRole"):
        return []
    return list(enumerate(obj.get("rules") or []))


def kustomizations(root: Path) -> list[Path]:
    """The base and every overlay under a manifests directory."""
    overlays = sorted(p.parent for p in (root / "overlays").glob("*/kustomization.yaml"))
    return [root / "base", *overlays]
