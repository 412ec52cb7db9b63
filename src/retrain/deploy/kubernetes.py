"""Kubernetes API applier: server-side apply of the rendered object.

The rendered object (a SeldonDeployment today) is sent whole as a server-side apply patch::

    GET   /apis/<group>/<version>/namespaces/<ns>/<plural>/<name>          resourceVersion before
    PATCH /apis/<group>/<version>/namespaces/<ns>/<plural>/<name>?fieldManager=retrain&force=true
          Content-Type: application/apply-patch+yaml                     body: the object

The API server merges it as field manager ``retrain``: fields we stop sending (a removed canary
predictor) are removed, fields other managers own (the Seldon operator's status, a label an
admin added) are left alone. `changed` compares the resourceVersion before and after: an
identical apply is a no-op on the server and keeps it. The kubernetes client 30.1's
``patch_namespaced_custom_object`` always sends a merge patch, so the PATCH is sent through
``ApiClient.call_api`` with the apply content type (JSON is valid YAML, so the body is JSON).

Conflicts: with ``force=True`` (the default) fields another manager last set, e.g. by
``kubectl edit`` of the traffic split, are taken over. The model registry's aliases are the
source of truth for what serves, and a hand edit must not block a rollback. With
``force=False`` such a conflict is refused (HTTP 409) and reported with the server's message.

RBAC: the identity that applies needs, in the deployment's namespace, one Role rule on the
named object only (`required_rbac` renders it)::

    - apiGroups: ["machinelearning.seldon.io"]
      resources: ["seldondeployments"]
      resourceNames: ["<deploy.deployment_name>"]
      verbs: ["get", "patch", "create"]

``get`` reads the resourceVersion, ``patch`` applies. ``create`` is needed only when the object
does not exist yet: a server-side apply that creates an object is also authorised as ``create``
on that name (k8s.io/apiserver endpoints/handlers/patch.go), so ``resourceNames`` restricts
it too. Drop ``create`` if an administrator creates the object once; the applier then never
needs it. No list, watch, delete or wildcard.
With the KServe backend the rule names ``serving.kserve.io`` / ``inferenceservices`` instead.

Errors: 401/403 and other 4xx (409 conflict, 422 invalid, 404 missing namespace or CRD) are
`ValidationError` (exit 2, no retry) carrying the server's message; 5xx, 429 and connection
failures are `TransientError` (exit 75, retried by the pipeline).

The kubernetes package is imported only when a client is built, so ``retrain.deploy`` imports
without it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retrain.deploy._base import ApplyResult
from retrain.errors import RetrainError, TransientError, ValidationError

if TYPE_CHECKING:
    from retrain.config import Config

__all__ = [
    "APPLY_CONTENT_TYPE",
    "FIELD_MANAGER",
    "RESOURCES",
    "KubernetesApplier",
    "ResourceType",
    "api_error",
    "load_api_client",
    "required_rbac",
]

FIELD_MANAGER = "retrain"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
_IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Authorizer denials read: ... cannot patch resource "seldondeployments" in API group ...
_DENIED_VERB = re.compile(r"cannot (\w+) resource")


@dataclass(frozen=True)
class ResourceType:
    """Where a kind lives in the API: ``/apis/<group>/<version>/namespaces/<ns>/<plural>``."""

    group: str
    version: str
    plural: str

    @property
    def resource(self) -> str:
        """``plural.group``, as RBAC errors and ``kubectl auth can-i`` spell it."""
        return f"{self.plural}.{self.group}"

    def path(self, namespace: str, name: str) -> str:
        return f"/apis/{self.group}/{self.version}/namespaces/{namespace}/{self.plural}/{name}"


#: Kinds this applier knows, by (apiVersion, kind).
RESOURCES: dict[tuple[str, str], ResourceType] = {
    ("machinelearning.seldon.io/v1", "SeldonDeployment"): ResourceType(
        "machinelearning.seldon.io", "v1", "seldondeployments"
    ),
    ("serving.kserve.io/v1beta1", "InferenceService"): ResourceType(
        "serving.kserve.io", "v1beta1", "inferenceservices"
    ),
}


class KubernetesApplier:
    """Server-side applies rendered objects through the Kubernetes API.

    Args:
        api_client: a ``kubernetes.client.ApiClient`` (see `load_api_client`); tests point one
            at a local server with ``Configuration(host=...)``.
        field_manager: the server-side apply manager name recorded in ``managedFields``.
        force: take over fields last set by another manager (see the module docstring).
        timeout: seconds for connect and read, per request.
    """

    def __init__(
        self,
        api_client: Any,
        *,
        field_manager: str = FIELD_MANAGER,
        force: bool = True,
        timeout: tuple[float, float] = (5.0, 30.0),
    ) -> None:
        self.api_client = api_client
        self.field_manager = field_manager
        self.force = force
        self.timeout = timeout

    @classmethod
    def from_config(cls, cfg: Config) -> KubernetesApplier:
        """In-cluster credentials inside a pod, else `deploy.kubeconfig` / `deploy.kube_context`."""
        return cls(
            load_api_client(kubeconfig=cfg.deploy.kubeconfig, context=cfg.deploy.kube_context)
        )

    @classmethod
    def connect(
        cls,
        *,
        in_cluster: bool | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
        force: bool = True,
    ) -> KubernetesApplier:
        """An applier with credentials loaded as `load_api_client` does."""
        client = load_api_client(in_cluster=in_cluster, kubeconfig=kubeconfig, context=context)
        return cls(client, force=force)

    def apply(self, obj: dict[str, Any], cfg: Config, message: str | None = None) -> ApplyResult:
        """Server-side apply `obj` in ``cfg.deploy.namespace``; `ref` is its resourceVersion.

        `message` is not sent: an API object has no commit message, and its annotations already
        record each role's version and traffic. A concurrent writer (the operator updating the
        status) between our GET and PATCH can make `changed` true for an unchanged spec; it is
        never false for a real change.
        """
        rtype, namespace, name = _target(obj, cfg)
        path = rtype.path(namespace, name)
        label = f"{obj['kind']} {namespace}/{name}"

        before = self._request("GET", path, rtype, name, verbs=("get",))
        if before is not None and _meta(before).get("deletionTimestamp"):
            raise TransientError(f"{label} is being deleted; apply again once it is gone")
        rv_before = _meta(before).get("resourceVersion") if before is not None else None

        # Creating through apply is also authorised as "create" (see the module docstring).
        verbs = ("patch",) if before is not None else ("patch", "create")
        query = [("fieldManager", self.field_manager), ("force", "true" if self.force else "false")]
        after = self._request("PATCH", path, rtype, name, verbs=verbs, query=query, body=obj)
        rv_after = _meta(after).get("resourceVersion") if after is not None else None
        if not rv_after:
            raise RetrainError(
                f"the API server answered the apply of {label} without a metadata.resourceVersion"
            )
        rv = str(rv_after)
        if rv_before is None:
            detail = f"created {label} at resourceVersion {rv}"
        elif str(rv_before) != rv:
            detail = f"updated {label}: resourceVersion {rv_before} -> {rv}"
        else:
            detail = f"{label} unchanged at resourceVersion {rv}"
        return ApplyResult(changed=str(rv_before) != rv, ref=rv, detail=detail)

    def close(self) -> None:
        """Release the client's connection pool."""
        self.api_client.close()

    def _request(
        self,
        method: str,
        path: str,
        rtype: ResourceType,
        name: str,
        *,
        verbs: tuple[str, ...],
        query: list[tuple[str, str]] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """The response object; None for a GET of an absent object. Errors are mapped."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = APPLY_CONTENT_TYPE
        try:
            data, _, _ = self.api_client.call_api(
                path,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
                response_type="object",
                auth_settings=["BearerToken"],
                _return_http_data_only=False,
                _preload_content=True,
                _request_timeout=self.timeout,
            )
        except ApiException as err:
            if method == "GET" and err.status == 404 and _is_absent(err.body, name):
                return None
            raise api_error(method, path, rtype, name, err.status, err.body, verbs) from None
        except urllib3.exceptions.HTTPError as err:
            host = getattr(self.api_client.configuration, "host", "?")
            raise TransientError(
                f"cannot reach the Kubernetes API at {host} ({method} {path}): {err}"
            ) from None
        if not isinstance(data, dict):
            raise RetrainError(f"the Kubernetes API answered {method} {path} with no JSON object")
        return data


def api_error(
    method: str,
    path: str,
    rtype: ResourceType,
    name: str,
    status: int,
    body: Any,
    verbs: tuple[str, ...],
) -> RetrainError:
    """The error for an HTTP failure, carrying the server's own message (a pure function).

    Args:
        status: the HTTP status (0 when the client failed before getting one).
        body: the response body, normally a ``Status`` object as JSON text.
        verbs: the RBAC verbs the request needs, the request's own verb first.
    """
    message, causes = _status_message(body)
    where = f"{rtype.resource} {name!r}"
    said = f": {message}" if message else ""
    if status == 401:
        return ValidationError(
            f"the Kubernetes API rejected our credentials (401) for {verbs[0]} on {where} "
            f"({method} {path}){said}; check the token or the kubeconfig context",
            causes,
        )
    if status == 403:
        # The server's message names the verb it checked; else it was the request's own.
        verb = _denied_verb(message) or verbs[0]
        rule = (
            f"the Role in the namespace needs verbs {_needed_verbs(verbs, verb)} on {where} "
            f"(apiGroups [{rtype.group!r}], resources [{rtype.plural!r}], "
            f"resourceNames [{name!r}])"
        )
        return ValidationError(
            f"forbidden: missing RBAC verb {verb!r} on {where} ({method} {path}){said}",
            [rule, *causes],
        )
    if status == 0 or status == 429 or status >= 500:
        return TransientError(f"Kubernetes API {method} {path} failed with HTTP {status}{said}")
    if status == 404:
        return ValidationError(
            f"Kubernetes API {method} {path}: not found{said}; check that the namespace exists "
            f"and that the {rtype.group}/{rtype.version} CRD ({rtype.plural}) is installed",
            causes,
        )
    if status == 409:
        return ValidationError(
            f"server-side apply of {where} conflicts with another field manager{said}",
            causes,
        )
    if 400 <= status < 500:
        return ValidationError(
            f"the Kubernetes API refused {method} {path} (HTTP {status}){said}", causes
        )
    return RetrainError(f"unexpected HTTP {status} from the Kubernetes API for {method} {path}")


def required_rbac(obj: Mapping[str, Any], *, create: bool = True) -> dict[str, Any]:
    """The Role rule the applier needs for `obj`: get and patch (and create) on its name only."""
    rtype = _resource_type(obj)
    name = (obj.get("metadata") or {}).get("name")
    verbs = ["get", "patch", "create"] if create else ["get", "patch"]
    return {
        "apiGroups": [rtype.group],
        "resources": [rtype.plural],
        "resourceNames": [name],
        "verbs": verbs,
    }


def load_api_client(
    *, in_cluster: bool | None = None, kubeconfig: str | None = None, context: str | None = None
) -> Any:
    """A ``kubernetes.client.ApiClient`` with credentials, without touching global config.

    Args:
        in_cluster: use the pod's service account. None chooses it when running in a pod
            (``KUBERNETES_SERVICE_HOST`` is set) and no kubeconfig or context was given.
        kubeconfig: kubeconfig file (default: ``$KUBECONFIG`` or ``~/.kube/config``).
        context: kubeconfig context (default: its current context).
    """
    try:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException
    except ImportError:
        raise RetrainError(
            "deploy.mode 'kubernetes' needs the kubernetes package: pip install 'retrain[kfp]'"
        ) from None
    if in_cluster is None:
        in_cluster = _IN_CLUSTER_ENV in os.environ and kubeconfig is None and context is None
    # The client reads $KUBECONFIG once, when it is imported; read it now instead.
    config_file = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    configuration = client.Configuration()
    try:
        if in_cluster:
            config.load_incluster_config(client_configuration=configuration)
        else:
            # persist_config=False: never rewrite the user's kubeconfig file.
            config.load_kube_config(
                config_file=config_file,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (ConfigException, OSError) as err:
        if in_cluster:
            source = "in-cluster service account"
        else:
            source = f"kubeconfig {config_file}" + (f" (context {context!r})" if context else "")
        raise ValidationError(
            f"cannot load Kubernetes credentials from the {source}: {err}"
        ) from None
    return client.ApiClient(configuration)


def _target(obj: Mapping[str, Any], cfg: Config) -> tuple[ResourceType, str, str]:
    rtype = _resource_type(obj)
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        raise ValidationError("object to apply has no metadata mapping")
    name, namespace = meta.get("name"), meta.get("namespace")
    problems = [
        f"{key} {value!r}: must be a Kubernetes name"
        for key, value in (("metadata.name", name), ("metadata.namespace", namespace))
        if not isinstance(value, str) or not _DNS_LABEL.match(value)
    ]
    if problems:
        raise ValidationError("object to apply is invalid", problems)
    expected = (cfg.deploy.namespace, cfg.deploy.deployment_name)
    if (namespace, name) != expected:
        raise ValidationError(
            f"object {namespace}/{name} is not this config's deployment "
            f"{expected[0]}/{expected[1]} (deploy.namespace/deploy.deployment_name)"
        )
    return rtype, str(namespace), str(name)


def _resource_type(obj: Mapping[str, Any]) -> ResourceType:
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    rtype = RESOURCES.get((str(api_version), str(kind)))
    if rtype is None:
        known = ", ".join(f"{k} ({v})" for v, k in RESOURCES)
        raise ValidationError(
            f"cannot apply apiVersion {api_version!r} kind {kind!r}: the Kubernetes applier "
            f"knows {known}"
        )
    return rtype


def _meta(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    meta = (obj or {}).get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _parse_status(body: Any) -> dict[str, Any] | None:
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if not isinstance(body, str):
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) and parsed.get("kind") == "Status" else None


def _is_absent(body: Any, name: str) -> bool:
    """A 404 about our object, as opposed to one about the route (CRD not installed).

    The API server answers a missing object with a Status naming it in ``details.name``; a
    resource type it does not serve gets a 404 without those details.
    """
    status = _parse_status(body)
    details = (status or {}).get("details")
    return (
        status is not None
        and status.get("reason") == "NotFound"
        and isinstance(details, dict)
        and details.get("name") == name
    )


def _status_message(body: Any) -> tuple[str, list[str]]:
    """The server's message and its causes (field: message), or the raw body's first line."""
    status = _parse_status(body)
    if status is None:
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
        return text.strip().splitlines()[0][:500] if text.strip() else "", []
    causes = []
    details = status.get("details")
    raw_causes = details.get("causes") if isinstance(details, dict) else None
    for cause in raw_causes if isinstance(raw_causes, list) else []:
        if isinstance(cause, dict):
            field = cause.get("field")
            text = str(cause.get("message", "")).strip()
            causes.append(f"{field}: {text}" if field else text)
    return str(status.get("message") or status.get("reason") or "").strip(), causes


def _denied_verb(message: str) -> str | None:
    m = _DENIED_VERB.search(message)
    return m.group(1) if m else None


def _needed_verbs(verbs: tuple[str, ...], denied: str) -> list[str]:
    # The full rule, so the fix is one copy-paste: get and patch always, create to create.
    creating = "create" in verbs or denied == "create"
    return ["get", "patch", "create"] if creating else ["get", "patch"]
