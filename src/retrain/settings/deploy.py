"""The `deploy:` config section: backend, mode and where the deployment lives."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from retrain.settings._base import K8S_NAME, Section

__all__ = ["DeployConfig"]


class DeployConfig(Section):
    backend: Literal["seldon", "kserve"] = "seldon"
    mode: Literal["gitops", "kubernetes"] = "gitops"
    deployment_name: str
    namespace: str = "models"
    gitops_repo: str | None = Field(
        default=None, description="Local git repository for GitOps mode."
    )
    gitops_path: str = "deployments"
    canary_traffic: int = Field(default=10, ge=1, le=50)
    kubeconfig: str | None = Field(
        default=None,
        description="kubernetes mode: kubeconfig file (default: in-cluster, else ~/.kube/config)",
    )
    kube_context: str | None = Field(default=None, description="kubernetes mode: context name")
    image: str = "ghcr.io/retrain-project/retrain-serving:0.2.0"

    @field_validator("deployment_name", "namespace")
    @classmethod
    def _dns_label(cls, v: str) -> str:
        if not K8S_NAME.match(v):
            raise ValueError(
                f"'{v}' is not a valid Kubernetes name (lowercase letters, digits, '-')"
            )
        return v

    @field_validator("gitops_path")
    @classmethod
    def _inside_repo(cls, v: str) -> str:
        # Rendered files are written below gitops_repo/gitops_path: never outside the repo.
        parts = v.replace("\\", "/").split("/")
        if not v.strip() or v.startswith(("/", "~")) or ":" in v or ".." in parts:
            raise ValueError(
                f"'{v}' must be a relative path inside gitops_repo (no '..', no absolute path)"
            )
        return v

    @field_validator("image")
    @classmethod
    def _pinned(cls, v: str) -> str:
        tail = v.rsplit("/", 1)[-1]
        if "@sha256:" not in v and (":" not in tail or tail.endswith(":latest")):
            raise ValueError(f"image '{v}' must carry a pinned tag or digest (not ':latest')")
        return v
