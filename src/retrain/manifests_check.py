"""Validate the Kubernetes manifests without a cluster (`make manifests-check`).

    python -m retrain.manifests_check [--manifests manifests] [--kubectl kubectl]

Renders the kustomize base and every overlay with ``kubectl kustomize`` and checks each object:

1. **schemas**: built-in kinds strictly (unknown fields are errors) against the Kubernetes
   OpenAPI schemas of every supported version (pip ``kubernetes-validate``); SeldonDeployment
   with `retrain.deploy.seldon.validate_seldon`; KFP ScheduledWorkflow and Argo CD Application
   with the JSON Schemas in ``manifests/schemas/``, written from their API references for the
   fields we use. A kind with no schema is an error, not a pass.
2. **security rules** (`SECURITY_RULES`): restricted Pod Security fields on every container,
   requests and limits, pinned images, no service-account token where none is needed, no
   wildcard or Secret-listing RBAC, named-object-only deployer, default-deny NetworkPolicies,
   and the recurring-run policy (one run at a time, no catch-up, the runner's account).
3. **consistency**: the ConfigMap's config is a valid retrain config with absolute locations,
   and the SeldonDeployment and the deployer's Role name the deployment it configures.
4. **pipeline package**: the ConfigMap ships ``pipeline.yaml``, the pipeline compiled for this
   cluster (image, store volume, deployer token), which the drift monitor and the schedule
   reconciler submit; it must equal what the current code compiles (``--write-pipelines``).

The files under ``manifests/argocd/`` and ``manifests/examples/`` (applied separately, not by
kustomize) get the schema checks. Every check is a pure function of the rendered objects, so
a test can mutate one object and see the rule that catches it.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from retrain.config import Config, config_from_text
from retrain.errors import EXIT_OK, EXIT_VALIDATION, ValidationError

__all__ = [
    "BOOTSTRAP_MODEL_URI",
    "BOOTSTRAP_VERSION",
    "CONFIG_KEY",
    "CONFIG_MAP",
    "CONFIG_MOUNT",
    "DEPLOYER_SERVICE_ACCOUNT",
    "KUBERNETES_VERSIONS",
    "PIPELINE_KEY",
    "PIPELINE_SERVICE_ACCOUNT",
    "SECURITY_RULES",
    "TOKEN_NEEDED",
    "Finding",
    "check_files",
    "check_manifests",
    "check_objects",
    "cluster_pipeline",
    "compile_cluster_pipeline",
    "consistency_findings",
    "image_problem",
    "initial_seldon_deployment",
    "kustomizations",
    "load_documents",
    "main",
    "pipeline_findings",
    "pod_specs",
    "render",
    "schema_findings",
    "security_findings",
    "write_pipeline_packages",
]

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

#: Service accounts whose token may be mounted automatically, and why. Everything else must
#: set ``automountServiceAccountToken: false``.
TOKEN_NEEDED: Mapping[str, str] = {
    PIPELINE_SERVICE_ACCOUNT: (
        "the pods KFP creates (Argo executor, KFP launcher) call the Kubernetes API"
    ),
}

#: The placeholder predictor of the initial SeldonDeployment (zero replicas: nothing serves).
BOOTSTRAP_VERSION = "bootstrap"
BOOTSTRAP_MODEL_URI = "none://no-model-blessed-yet"

#: Verbs the deployer may have on the SeldonDeployment it patches.
DEPLOYER_VERBS = frozenset({"get", "patch"})

_CRD_SCHEMAS: Mapping[tuple[str, str], str] = {
    ("kubeflow.org/v1beta1", "ScheduledWorkflow"): "scheduledworkflow.schema.json",
    ("argoproj.io/v1alpha1", "Application"): "argocd-application.schema.json",
}
_SELDON = ("machinelearning.seldon.io/v1", "SeldonDeployment")
_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}
_RESTRICTED = "restricted"
_PSS_MODES = ("enforce", "audit", "warn")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


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


# --- schemas ----------------------------------------------------------------------------------


def schema_findings(
    objs: Sequence[Mapping[str, Any]],
    *,
    schema_dir: Path,
    versions: Sequence[str] = KUBERNETES_VERSIONS,
) -> list[Finding]:
    """Every object against its schema: built-in kinds for each of `versions`, strictly."""
    from retrain.deploy.seldon import validate_seldon

    out: list[Finding] = []
    for obj in objs:
        key = (str(obj.get("apiVersion")), str(obj.get("kind")))
        where = _where(obj)
        if key == _SELDON:
            try:
                validate_seldon(obj)
            except ValidationError as err:
                out.extend(Finding("schema", where, p) for p in (err.problems or [str(err)]))
        elif key in _CRD_SCHEMAS:
            validator = _crd_validator(str(schema_dir / _CRD_SCHEMAS[key]))
            out.extend(Finding("schema", where, msg) for msg in _errors(validator, obj))
        else:
            for version in versions:
                validator = _builtin_validator(version, *key)
                if validator is None:
                    out.append(
                        Finding(
                            "schema",
                            where,
                            f"no schema for apiVersion {key[0]!r} kind {key[1]!r} in Kubernetes "
                            f"{version} (a custom resource needs a schema in manifests/schemas/)",
                        )
                    )
                    break
                out.extend(
                    Finding("schema", where, f"Kubernetes {version}: {msg}")
                    for msg in _errors(validator, obj)
                )
    return out


def _errors(validator: Any, obj: Mapping[str, Any]) -> list[str]:
    errors = sorted(validator.iter_errors(obj), key=lambda e: (e.json_path, e.message))
    return [f"{e.json_path}: {e.message}" for e in errors]


@functools.lru_cache(maxsize=8)
def _crd_validator(path: str) -> Any:
    import jsonschema

    try:
        schema = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValidationError(f"schema file not found: {path}") from None
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@functools.lru_cache(maxsize=256)
def _builtin_validator(version: str, api_version: str, kind: str) -> Any:
    """A strict validator from kubernetes-validate's schemas, or None if the kind is unknown.

    kubernetes-validate's own `validate` re-reads its 1.2 MB definitions file on every call
    and stops at the first error; this caches per (version, kind) and reports every error.
    """
    import jsonschema
    from kubernetes_validate import utils
    from packaging.version import Version
    from referencing import Registry, Resource

    known = [v for v in utils.all_versions() if Version(v) <= Version(version + ".999")]
    if not known or utils.major_minor(known[-1]) != version:
        raise ValidationError(
            f"kubernetes-validate has no schemas for Kubernetes {version}; "
            f"it has {sorted({utils.major_minor(v) for v in utils.all_versions()})}"
        )
    schema_dir = f"kubernetes-json-schema/v{known[-1]}-local-strict"
    # rbac.authorization.k8s.io/v1 -> rbac-v1; v1 -> v1 (as kubernetes-validate names files)
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(f"{schema_dir}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        return None
    definitions = utils.schema_contents(f"{schema_dir}/_definitions.json", version)
    registry: Registry = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


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


# --- security rules ---------------------------------------------------------------------------


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


def _rules_of(obj: Mapping[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    if obj.get("kind") not in ("Role", "ClusterRole"):
        return []
    return list(enumerate(obj.get("rules") or []))


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


# --- consistency ------------------------------------------------------------------------------


def _is_uri_or_absolute(value: str) -> bool:
    return "://" in value or value.startswith("/")


def consistency_findings(objs: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """The config in the ConfigMap is valid and the serving objects agree with it."""
    maps = [
        o
        for o in objs
        if o.get("kind") == "ConfigMap"
        and str((o.get("metadata") or {}).get("name", "")).startswith(CONFIG_MAP)
    ]
    if len(maps) != 1:
        return [Finding("consistency", "ConfigMap", f"expected one {CONFIG_MAP} ConfigMap")]
    where = _where(maps[0])
    text = (maps[0].get("data") or {}).get(CONFIG_KEY)
    if not isinstance(text, str):
        return [Finding("consistency", where, f"has no data key {CONFIG_KEY!r}")]
    try:
        cfg = config_from_text(text, source=f"{where} {CONFIG_KEY}")
    except ValidationError as err:
        return [Finding("consistency", where, p) for p in (err.problems or [str(err)])]
    out = []
    for key, value in (
        ("storage_root", cfg.storage_root),
        ("data.uri", cfg.data.uri),
        ("labels.uri", cfg.labels.uri),
        ("deploy.gitops_repo", cfg.deploy.gitops_repo),
    ):
        if value is not None and not _is_uri_or_absolute(value):
            out.append(
                Finding(
                    "consistency",
                    where,
                    f"{key} {value!r} must be a URI or an absolute path inside the pods",
                )
            )
    out.extend(_serving_agrees(objs, cfg))
    return out


def _serving_agrees(objs: Sequence[Mapping[str, Any]], cfg: Config) -> Iterator[Finding]:
    d = cfg.deploy
    sdeps = [o for o in objs if (o.get("apiVersion"), o.get("kind")) == _SELDON]
    match = [
        o
        for o in sdeps
        if (o.get("metadata") or {}).get("name") == d.deployment_name
        and (o.get("metadata") or {}).get("namespace") == d.namespace
    ]
    if not match:
        yield Finding(
            "consistency",
            "SeldonDeployment",
            f"none named {d.namespace}/{d.deployment_name} (config deploy.namespace/"
            f"deploy.deployment_name)",
        )
    for obj in match:
        for path, pod in pod_specs(obj):
            for cpath, c in _containers(pod):
                if c.get("image") != d.image:
                    yield Finding(
                        "consistency",
                        f"{_where(obj)} {path}.{cpath}",
                        f"image {c.get('image')!r} is not the config's deploy.image {d.image!r}",
                    )
    for obj in objs:
        for i, rule in _rules_of(obj):
            if "seldondeployments" not in (rule.get("resources") or []):
                continue
            where = f"{_where(obj)} rules[{i}]"
            if (obj.get("metadata") or {}).get("namespace") != d.namespace:
                yield Finding(
                    "consistency", where, f"must be in the serving namespace {d.namespace!r}"
                )
            if rule.get("resourceNames") != [d.deployment_name]:
                yield Finding(
                    "consistency",
                    where,
                    f"resourceNames must be [{d.deployment_name!r}] (deploy.deployment_name)",
                )


# --- the pipeline package ---------------------------------------------------------------------


def _config_of(objs: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], Config] | None:
    """The retrain ConfigMap and its parsed config, or None if either is missing or invalid."""
    for obj in objs:
        name = str((obj.get("metadata") or {}).get("name", ""))
        if obj.get("kind") == "ConfigMap" and name.startswith(CONFIG_MAP):
            text = (obj.get("data") or {}).get(CONFIG_KEY)
            if isinstance(text, str):
                try:
                    return obj, config_from_text(text)
                except ValidationError:
                    return None
    return None


def _monitor_pod(objs: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    for obj in objs:
        for _, pod in pod_specs(obj):
            for _, c in _containers(pod):
                if list(c.get("command") or [])[:2] == ["retrain", "monitor"]:
                    return pod
    return None


def cluster_pipeline(objs: Sequence[Mapping[str, Any]], cfg: Config) -> tuple[str, Any]:
    """The components image and `ClusterOptions` the rendered manifests call for.

    Read from the objects, so an overlay's choices carry over to the pipeline it ships: the
    image and the store volume of the drift monitor, and (``deploy.mode: kubernetes``) the
    deployer's token Secret.
    """
    from retrain_pipelines.retrain_pipeline import ClusterOptions

    pod = _monitor_pod(objs)
    if pod is None:
        raise ValidationError("no `retrain monitor` CronJob: cannot tell the pipeline's image")
    container = next(
        c for _, c in _containers(pod) if c.get("command", [])[:2] == ["retrain", "monitor"]
    )
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod.get("volumes") or []
        if "persistentVolumeClaim" in v
    }
    mounts = [
        (claims[m["name"]], m["mountPath"])
        for m in container.get("volumeMounts") or []
        if m.get("name") in claims
    ]
    token = None
    if cfg.deploy.mode == "kubernetes":
        token = next(
            (
                (o.get("metadata") or {}).get("name")
                for o in objs
                if o.get("kind") == "Secret"
                and o.get("type") == "kubernetes.io/service-account-token"
                and ((o.get("metadata") or {}).get("annotations") or {}).get(
                    "kubernetes.io/service-account.name"
                )
                == DEPLOYER_SERVICE_ACCOUNT
            ),
            None,
        )
    options = ClusterOptions(pvc=mounts[0] if mounts else None, deployer_token_secret=token)
    return str(container.get("image")), options


def compile_cluster_pipeline(objs: Sequence[Mapping[str, Any]], cfg: Config) -> str:
    """The pipeline YAML the manifests ship (`PIPELINE_KEY` in the ConfigMap)."""
    import tempfile

    from retrain_pipelines.retrain_pipeline import compile_pipeline

    image, options = cluster_pipeline(objs, cfg)
    with tempfile.TemporaryDirectory(prefix="retrain-manifests-") as tmp:
        out = compile_pipeline(Path(tmp) / PIPELINE_KEY, image, cluster=options)
        return out.read_text()


def pipeline_findings(objs: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """The shipped pipeline is the one the current code compiles for these manifests."""
    found = _config_of(objs)
    if found is None:
        return []  # consistency_findings reports the missing or invalid config
    cmap, cfg = found
    where = _where(cmap)
    out = []
    kfp = getattr(getattr(cfg, "triggers", None), "kfp", None)
    wanted = f"{CONFIG_MOUNT}/{PIPELINE_KEY}"
    if getattr(kfp, "pipeline_package", None) != wanted:
        out.append(
            Finding(
                "pipeline-package",
                where,
                f"triggers.kfp.pipeline_package must be {wanted!r}: runs launched in the "
                "cluster must use the pipeline compiled with its settings",
            )
        )
    if getattr(kfp, "service_account", None) != PIPELINE_SERVICE_ACCOUNT:
        out.append(
            Finding(
                "pipeline-package",
                where,
                f"triggers.kfp.service_account must be {PIPELINE_SERVICE_ACCOUNT!r}",
            )
        )
    shipped = (cmap.get("data") or {}).get(PIPELINE_KEY)
    try:
        fresh = compile_cluster_pipeline(objs, cfg)
    except ValidationError as err:
        return [*out, Finding("pipeline-package", where, str(err))]
    if shipped != fresh:
        out.append(
            Finding(
                "pipeline-package",
                where,
                f"{PIPELINE_KEY} is not what the code compiles for these manifests: "
                "run `make manifests-pipelines`",
            )
        )
    return out


def write_pipeline_packages(root: Path, kubectl: str = "kubectl") -> list[Path]:
    """(Re)write ``pipeline.yaml`` next to every kustomization's config."""
    written = []
    for target in kustomizations(root):
        path = target / PIPELINE_KEY
        if not path.exists():
            path.write_text("")  # the ConfigMap generator needs the file to render
        objs = render(target, kubectl)
        found = _config_of(objs)
        if found is None:
            raise ValidationError(f"{target}: no valid {CONFIG_MAP} config to compile for")
        text = compile_cluster_pipeline(objs, found[1])
        if path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written


# --- the initial SeldonDeployment -------------------------------------------------------------


def initial_seldon_deployment(cfg: Config) -> dict[str, Any]:
    """The SeldonDeployment the manifests create before any model is blessed.

    Rendered by the same backend as every later deploy, with zero replicas: no pod runs until
    the first blessed model is applied (which sets the replicas and the model URI), so the
    serving pods never start against a model that does not exist.
    """
    from retrain.deploy import DeploymentState, ModelRef, SeldonBackend

    state = DeploymentState.single(
        cfg.deploy.deployment_name,
        cfg.deploy.namespace,
        ModelRef(BOOTSTRAP_VERSION, BOOTSTRAP_MODEL_URI),
    )
    return SeldonBackend(replicas=0).render(state, cfg)


# --- putting it together ----------------------------------------------------------------------


def check_objects(
    objs: Sequence[Mapping[str, Any]],
    *,
    schema_dir: Path,
    versions: Sequence[str] = KUBERNETES_VERSIONS,
) -> list[Finding]:
    """Schemas, security rules and consistency for one rendered kustomization."""
    return [
        *schema_findings(objs, schema_dir=schema_dir, versions=versions),
        *security_findings(objs),
        *consistency_findings(objs),
        *pipeline_findings(objs),
    ]


def check_files(
    paths: Sequence[Path],
    *,
    schema_dir: Path,
    versions: Sequence[str] = KUBERNETES_VERSIONS,
) -> list[Finding]:
    """Schema checks for manifests applied on their own (the Argo CD Application, examples)."""
    out: list[Finding] = []
    for path in paths:
        docs = load_documents(path.read_text(), str(path))
        out.extend(schema_findings(docs, schema_dir=schema_dir, versions=versions))
        out.extend(_rule_image_pinned(docs))
        out.extend(_rule_schedule_policy(docs))
    return out


def kustomizations(root: Path) -> list[Path]:
    """The base and every overlay under a manifests directory."""
    overlays = sorted(p.parent for p in (root / "overlays").glob("*/kustomization.yaml"))
    return [root / "base", *overlays]


def check_manifests(
    root: Path,
    *,
    kubectl: str = "kubectl",
    versions: Sequence[str] = KUBERNETES_VERSIONS,
) -> dict[str, list[Finding]]:
    """Findings per checked target (each kustomization, each standalone file)."""
    schema_dir = root / "schemas"
    results: dict[str, list[Finding]] = {}
    for target in kustomizations(root):
        objs = render(target, kubectl)
        results[str(target)] = check_objects(objs, schema_dir=schema_dir, versions=versions)
    for sub in ("argocd", "examples"):
        for path in sorted((root / sub).glob("*.yaml")):
            results[str(path)] = check_files([path], schema_dir=schema_dir, versions=versions)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """`make manifests-check`: exit 0 when every target is clean, 2 otherwise."""
    p = argparse.ArgumentParser(prog="python -m retrain.manifests_check", description=__doc__)
    p.add_argument("--manifests", default="manifests", help="the manifests directory")
    p.add_argument("--kubectl", default="kubectl", help="kubectl executable")
    p.add_argument(
        "--kubernetes-version",
        action="append",
        dest="versions",
        help="validate for this minor version (repeatable; default: "
        + ", ".join(KUBERNETES_VERSIONS)
        + ")",
    )
    p.add_argument(
        "--write-pipelines",
        action="store_true",
        help="regenerate each kustomization's pipeline.yaml, then check",
    )
    args = p.parse_args(argv)
    versions = tuple(args.versions or KUBERNETES_VERSIONS)
    try:
        if args.write_pipelines:
            for path in write_pipeline_packages(Path(args.manifests), args.kubectl):
                print(f"wrote {path}")
        results = check_manifests(Path(args.manifests), kubectl=args.kubectl, versions=versions)
    except ValidationError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_VALIDATION
    failed = 0
    for target, findings in results.items():
        if findings:
            failed += 1
            print(f"FAIL {target}: {len(findings)} problem(s)")
            for f in findings:
                print(f"  {f}")
        else:
            print(f"ok   {target}")
    print(
        f"{len(results) - failed} of {len(results)} targets clean "
        f"(Kubernetes {', '.join(versions)}, strict)"
    )
    return EXIT_VALIDATION if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
