"""The `deploy:` config section: backend, mode and where the deployment lives."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from retrain.settings._base import K8S_NAME, Section

__all__ = ["DeployConfig", "check_remote", "redact_remote"]

_BRANCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
#: Schemes whose user name is only a login, never a secret (``ssh://git@host/repo``).
_SSH_SCHEMES = ("ssh", "git+ssh", "ssh+git")
#: A URL's user info: ``scheme://<user info>@host``.
_USER_INFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*)://([^/@\s]+)@")


def check_remote(remote: str | None) -> str | None:
    """`remote`, unless it carries user info a token could hide in (ValueError).

    ``https://<token>@host/repo`` carries the token in the user name, which git then echoes in
    its errors; so no user info at all in an http(s) (or any non-SSH) URL. An SSH login
    (``ssh://git@host/repo``, scp-style ``git@host:repo``) is allowed, a password is not.
    """
    if remote is None or "://" not in remote:
        return remote
    parts = urlsplit(remote)
    ssh = parts.scheme.lower() in _SSH_SCHEMES
    if parts.password is not None or (parts.username is not None and not ssh):
        raise ValueError(
            f"gitops_remote {redact_remote(remote)!r} must not carry user info (a user name, "
            "password or token); mount the git Secret and set deploy.gitops_credentials to "
            "its directory"
        )
    return remote


def redact_remote(text: str) -> str:
    """`text` (a remote, or a message quoting one) with the user info of its URLs hidden.

    An SSH login is kept (it is no secret); anything else before ``@`` becomes ``***``.
    """

    def hide(match: re.Match[str]) -> str:
        scheme, info = match.group(1), match.group(2)
        if scheme.lower() in _SSH_SCHEMES and ":" not in info:
            return match.group(0)
        return f"{scheme}://***@"

    return _USER_INFO.sub(hide, text)


class DeployConfig(Section):
    backend: Literal["seldon", "kserve"] = "seldon"
    mode: Literal["gitops", "kubernetes"] = "gitops"
    deployment_name: str
    namespace: str = "models"
    gitops_repo: str | None = Field(
        default=None,
        description="Local git repository for GitOps mode; with gitops_remote, the scratch "
        "checkout (default: a directory under the system's temporary directory).",
    )
    gitops_remote: str | None = Field(
        default=None,
        description="GitOps mode: the repository Argo CD / Flux sync (URL, scp-style address "
        "or path of a bare repository). Each deploy fetches it, commits and pushes.",
    )
    gitops_branch: str = Field(default="main", description="GitOps mode: the branch to push.")
    gitops_credentials: str | None = Field(
        default=None,
        description="GitOps mode: directory of the mounted git Secret: 'ssh-privatekey' and "
        "'known_hosts' (SSH), or 'token' and optionally 'username' (HTTPS).",
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

    @field_validator("gitops_remote")
    @classmethod
    def _no_secret_in_remote(cls, v: str | None) -> str | None:
        return check_remote(v)

    @field_validator("gitops_branch")
    @classmethod
    def _branch(cls, v: str) -> str:
        if not _BRANCH.match(v) or ".." in v or v.endswith((".lock", "/")):
            raise ValueError(f"gitops_branch {v!r} is not a plain git branch name")
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
