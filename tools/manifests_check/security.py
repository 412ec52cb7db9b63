"""The security rules (`SECURITY_RULES`): each a pure function of the rendered objects."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from .objects import (
    _SELDON,
    PIPELINE_SERVICE_ACCOUNT,
    Finding,
    _containers,
    _effective,
    _rules_of,
    _where,
    pod_specs,
)

#: Service accounts whose token may be mounted automatically, and why. Everything else must
#: set ``automountServiceAccountToken: false``.
TOKEN_NEEDED: Mapping[str, str] = {
    PIPELINE_SERVICE_ACCOUNT: (
        "the pods KFP creates (Argo executor, KFP launcher) call the Kubernetes API"
    ),
}

#: Verbs the deployer may have on the SeldonDeployment it patches.
DEPLOYER_VERBS = frozenset({"get", "patch"})

_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}
_RESTRICTED = "restricted"
_PSS_MODES = ("enforce", "audit", "warn")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def _rule_pod_security(objs: Sequence[Mapping[str, Any]]) -> Iterator[Finding]:
    """The restricted Pod Security Standard, plus a read-only root with /tmp on an emptyDir."""
    for obj in objs:
        for path, pod in pod_specs(obj):
            where = f"{_where(obj)} {path}"
            for flag in ("hostNetwork", "hostPID", "hostIPC"):
                if pod.get(flag):
                    yield Finding("pod-security", where, f"{flag} must not be true")
            volumes = {v.get("name"): v for v in pod.get("volumes") or []}
            for name, vol in volumes.items():
                if "hostPath" in vol:
                    yield Finding("pod-security", where, f"volume {name!r} is a hostPath")
            for cpath, c in _containers(pod):
                cw = f"{where}.{cpath}"
                sc = c.get("securityContext") or {}
                if _effective(c, pod, "runAsNonRoot") is not True:
                    yield Finding("pod-security", cw, "runAsNonRoot must be true")
                if _effective(c, pod, "runAsUser") == 0:
                    yield Finding("pod-security", cw, "runAsUser must not be 0 (root)")
                if sc.get("allowPrivilegeEscalation") is not False:
                    yield Finding("pod-security", cw, "allowPrivilegeEscalation must be false")
                if sc.get("privileged"):
                    yield Finding("pod-security", cw, "privileged must not be true")
                caps = sc.get("capabilities") or {}
                if "ALL" not in (caps.get("drop") or []):
                    yield Finding("pod-security", cw, "capabilities.drop must include ALL")
                if caps.get("add"):
                    yield Finding("pod-security", cw, f"capabilities.add {caps['add']} not allowed")
                seccomp = _effective(c, pod, "seccompProfile") or {}
                if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
                    yield Finding("pod-security", cw, "seccompProfile.type must be RuntimeDefault")
                if sc.get("readOnlyRootFilesystem") is not True:
                    yield Finding("pod-security", cw, "readOnlyRootFilesystem must be true")
                tmp = [m for m in c.get("volumeMounts") or [] if m.get("mountPath") == "/tmp"]
                if not tmp or "emptyDir" not in volumes.get(tmp[0].get("name"), {}):
                    yield Finding("pod-security", cw, "needs an emptyDir mounted at /tmp")


def _rule_resources(objs: Sequence[Mapping[str, Any]]) -> Iterator[Finding]:
    """Every container requests and limits CPU and memory."""
    for obj in objs:
        for path, pod in pod_specs(obj):
            for cpath, c in _containers(pod):
                res = c.get("resources") or {}
                missing = [
                    f"{kind}.{r}"
                    for kind in ("requests", "limits")
                    for r in ("cpu", "memory")
                    if not (res.get(kind) or {}).get(r)
                ]
                if missing:
                    yield Finding(
                        "resources", f"{_where(obj)} {path}.{cpath}", f"missing {missing}"
                    )


def image_problem(image: Any) -> str | None:
    """Why an image reference is not pinned (None if it is): a tag other than latest, or a
    ``sha256`` digest."""
    if not isinstance(image, str) or not image or image != image.strip():
        return f"image {image!r} is not a reference"
    name, _, digest = image.partition("@")
    if digest:
        return None if _DIGEST.match(digest) else f"image {image!r}: malformed digest"
    tail = name.rsplit("/", 1)[-1]
    if ":" not in tail:
        return f"image {image!r} has no tag (means :latest); pin a version or a digest"
    tag = tail.rsplit(":", 1)[1]
    if tag == "latest" or not _TAG.match(tag):
        return f"image {image!r}: tag {tag!r} is not a pinned version"
    return None


def _rule_image_pinned(objs: Sequence[Mapping[str, Any]]) -> Iterator[Finding]:
    """No image without a pinned tag or digest; never ``:latest``."""
    for obj in objs:
        for path, pod in pod_specs(obj):
            for cpath, c in _containers(pod):
                problem = image_problem(c.get("image"))
                if problem:
                    yield Finding("image-pinned", f"{_where(obj)} {path}.{cpath}", problem)


def _rule_token_automount(objs: Sequence[Mapping[str, Any]]) -> Iterator[Finding]:
    """Service-account tokens only where needed (`TOKEN_NEEDED`), switched off explicitly."""
    for obj in objs:
        name = (obj.get("metadata") or {}).get("name")
        if (
            obj.get("kind") == "ServiceAccount"
            and name not in TOKEN_NEEDED
            and obj.get("automountServiceAccountToken") is not False
        ):
            yield Finding(
                "token-automount", _where(obj), "automountServiceAccountToken must be false"
            )
        for path, pod in pod_specs(obj):
            if pod.get("serviceAccountName") in TOKEN_NEEDED:
                continue
            if pod.get("automountServiceAccountToken") is not False:
                yield Finding(
                    "token-automount",
                    f"{_where(obj)} {path}",
                    "automountServiceAccountToken must be false (the pod does not call the "
                    "Kubernetes API)",
                )


def _rule_rbac_wildcard(objs: Sequence[Mapping[str, Any]]) -> Iterator[Finding]:
    """No ``*`` anywhere in a rule."""
    for obj in objs:
        for i, rule in _rules_of(obj):
            for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                if any("*" in str(v) for v in rule.get(key) or []):
                    yield Finding(
                        "rbac-wildcard", f"{_where(obj)} rules[{i}]", f"wildcard in {key}"
                    )


def _rule_rbac_secrets(objs: Sequence[Mapping[str, Any]]) -> Iterator[Finding]:
    """Secrets: never list or watch (they reveal every Secret), `get` only by name, no writes."""
    for obj in objs:
        for i, rule in _rules_of(obj):
            groups = rule.get("apiGroups") or []
            resources = rule.get("resources") or []
            if not ("" in groups or "*" in groups) or not (
                "secrets" in resources or "*" in resources
            ):
                continue
            where = f"{_where(obj)} rules[{i}]"
            verbs = set(rule.get("verbs") or [])
            if verbs & {"list", "watch", "*"}:
                yield Finding("rbac-secrets", where, "list/watch on secrets is not allowed")
            if verbs & {"create", "update", "patch", "delete", "deletecollection"}:
                yield Finding("rbac-secrets", where, "writing secrets is not allowed")
            if "get" in verbs and not rule.get("resourceNames"):
                yield Finding("rbac-secrets", where, "get on secrets needs resourceNames")


def _rule_rbac_least_privilege(objs: Sequence[Mapping[str, Any]]) -> Iterator[Finding]:
    """Namespaced Roles only; no privilege-granting verbs; the deployer touches one object."""
    for obj in objs:
        if obj.get("kind") in ("ClusterRole", "ClusterRoleBinding"):
            yield Finding("rbac-least-privilege", _where(obj), "cluster-wide RBAC is not allowed")
        for i, rule in _rules_of(obj):
            where = f"{_where(obj)} rules[{i}]"
            verbs = set(rule.get("verbs") or [])
            if verbs & {"escalate", "bind", "impersonate"}:
                yield Finding(
                    "rbac-least-privilege", where, f"verbs {sorted(verbs)} grant privileges"
                )
            if "seldondeployments" in (rule.get("resources") or []):
                if not rule.get("resourceNames"):
                    yield Finding(
                        "rbac-least-privilege",
                        where,
                        "seldondeployments rules must name the deployment (resourceNames)",
                    )
                extra = sorted(verbs - DEPLOYER_VERBS)
                if extra:
                    yield Finding(
                        "rbac-least-privilege",
                        where,
                        f"seldondeployments: only {sorted(DEPLOYER_VERBS)} allowed, not {extra}",
                    )


def _rule_namespaces(objs: Sequence[Mapping[str, Any]]) -> Iterator[Finding]:
    """Every namespace is labelled restricted, and nothing lands outside those namespaces."""
    names = set()
    for obj in objs:
        if obj.get("kind") != "Namespace":
            continue
        meta = obj.get("metadata") or {}
        names.add(meta.get("name"))
        labels = meta.get("labels") or {}
        for mode in _PSS_MODES:
            key = f"pod-security.kubernetes.io/{mode}"
            if labels.get(key) != _RESTRICTED:
                yield Finding("namespace-pss", _where(obj), f"label {key} must be 'restricted'")
    for obj in objs:
        if obj.get("kind") in _CLUSTER_SCOPED:
            continue
        ns = (obj.get("metadata") or {}).get("namespace")
        if ns not in names:
            yield Finding(
                "namespace-pss",
                _where(obj),
                f"namespace {ns!r} is not one of the rendered, restricted namespaces "
                f"{sorted(n for n in names if n)}",
            )


def _rule_default_deny(objs: Sequence[Mapping[str, Any]]) -> Iterator[Finding]:
    """Each namespace has a NetworkPolicy denying all ingress and egress by default."""
    denied = set()
    for obj in objs:
        spec = obj.get("spec") or {}
        if (
            obj.get("kind") == "NetworkPolicy"
            and spec.get("podSelector") == {}
            and {"Ingress", "Egress"} <= set(spec.get("policyTypes") or [])
            and not spec.get("ingress")
            and not spec.get("egress")
        ):
            denied.add((obj.get("metadata") or {}).get("namespace"))
    for obj in objs:
        name = (obj.get("metadata") or {}).get("name")
        if obj.get("kind") == "Namespace" and name not in denied:
            yield Finding(
                "network-default-deny", _where(obj), "no default-deny NetworkPolicy (all pods)"
            )


def _rule_service_accounts(objs: Sequence[Mapping[str, Any]]) -> Iterator[Finding]:
    """Workloads run as a named service account of their own namespace, never `default`."""
    accounts = {
        ((o.get("metadata") or {}).get("namespace"), (o.get("metadata") or {}).get("name"))
        for o in objs
        if o.get("kind") == "ServiceAccount"
    }
    for obj in objs:
        if (obj.get("apiVersion"), obj.get("kind")) == _SELDON:
            continue  # Seldon's pods use the namespace default, with no token (checked above)
        ns = (obj.get("metadata") or {}).get("namespace")
        for path, pod in pod_specs(obj):
            sa = pod.get("serviceAccountName")
            if not sa or sa == "default" or (ns, sa) not in accounts:
                yield Finding(
                    "service-account",
                    f"{_where(obj)} {path}",
                    f"serviceAccountName {sa!r} is not a service account rendered in {ns!r}",
                )


def _rule_schedule_policy(objs: Sequence[Mapping[str, Any]]) -> Iterator[Finding]:
    """Recurring runs: one at a time, no catch-up burst, the pipeline runner's account."""
    for obj in objs:
        if obj.get("kind") != "ScheduledWorkflow":
            continue
        spec = obj.get("spec") or {}
        if spec.get("maxConcurrency") != 1:
            yield Finding(
                "schedule-policy", _where(obj), "maxConcurrency must be 1 (runs never overlap)"
            )
        if spec.get("noCatchup") is not True:
            yield Finding(
                "schedule-policy",
                _where(obj),
                "noCatchup must be true (no burst of runs after downtime)",
            )
        if spec.get("serviceAccount") != PIPELINE_SERVICE_ACCOUNT:
            yield Finding(
                "schedule-policy",
                _where(obj),
                f"serviceAccount must be {PIPELINE_SERVICE_ACCOUNT!r}",
            )


#: rule name -> check. Each is a pure function of the rendered objects.
SECURITY_RULES: Mapping[str, Callable[[Sequence[Mapping[str, Any]]], Iterator[Finding]]] = {
    "pod-security": _rule_pod_security,
    "resources": _rule_resources,
    "image-pinned": _rule_image_pinned,
    "token-automount": _rule_token_automount,
    "rbac-wildcard": _rule_rbac_wildcard,
    "rbac-secrets": _rule_rbac_secrets,
    "rbac-least-privilege": _rule_rbac_least_privilege,
    "namespace-pss": _rule_namespaces,
    "network-default-deny": _rule_default_deny,
    "service-account": _rule_service_accounts,
    "schedule-policy": _rule_schedule_policy,
}


def security_findings(objs: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """Every security rule over the rendered objects."""
    return [f for rule in SECURITY_RULES.values() for f in rule(objs)]
