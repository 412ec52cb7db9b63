"""KubernetesApplier against a local HTTP server that stands in for the Kubernetes API.

The server below is NOT a real Kubernetes API server (none can be installed on this machine):
it is a small http.server on 127.0.0.1 that checks each request the official kubernetes client
sends and answers the way the API server documents (Status bodies, 201 on create, an unchanged
resourceVersion for a no-op apply, 409 on a field-manager conflict). What these tests prove is
the wire protocol of our applier: methods, paths, query, headers, body, credentials from a
kubeconfig, and how each answer maps to `changed`, `ref` and our exit codes.
"""

from __future__ import annotations

import copy
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from deploy_support import V1, V2, make_cfg
from required import require
from retrain.config import Config
from retrain.deploy import (
    APPLIERS,
    DeploymentState,
    KServeBackend,
    KubernetesApplier,
    SeldonBackend,
    applier_for,
)
from retrain.deploy.kubernetes import required_rbac
from retrain.errors import (
    EXIT_TRANSIENT,
    EXIT_VALIDATION,
    TransientError,
    ValidationError,
    exit_code_for,
)

pytestmark = pytest.mark.integration

kubernetes = require("kubernetes", "the kubernetes client (extra 'kfp')")

TOKEN = "test-token"
PATH = "/apis/machinelearning.seldon.io/v1/namespaces/models/seldondeployments/fraud-model"
APPLY_QUERY = {"fieldManager": ["retrain"], "force": ["true"]}
APPLY = "application/apply-patch+yaml"
#: Resource types the stand-in serves: (group, version) -> plural.
SERVED = {
    ("machinelearning.seldon.io", "v1"): "seldondeployments",
    ("serving.kserve.io", "v1beta1"): "inferenceservices",
}


# --- the stand-in server ------------------------------------------------------------------------


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class _Stored:
    obj: dict[str, Any]
    applied: dict[str, Any]  # what the owning manager last sent
    manager: str


@dataclass
class FakeKubeAPI:
    """NOT a real Kubernetes API server: a stand-in on 127.0.0.1 for protocol tests.

    It serves the resource types in `SERVED` and models only what the applier relies
    on: bearer-token authentication (401), GET of one object (404 Status naming it when
    absent), and server-side apply by PATCH with ``application/apply-patch+yaml`` and a
    required ``fieldManager``. An apply replaces the object's content with the body; the
    resourceVersion moves only when the content changes; a different manager changing content
    another manager applied gets 409 unless ``force=true``. `fail_next` injects an answer
    (403, 500, ...) for the next request of a method. Unknown routes, and every route when
    `crd_installed` is False, get the 404 of a server without the CRD: a Status that names no
    object, or plain text (`plain_404`).
    """

    url: str = ""
    tokens: set[str] = field(default_factory=lambda: {TOKEN})
    requests: list[Seen] = field(default_factory=list)
    objects: dict[str, _Stored] = field(default_factory=dict)
    failures: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    resource_version: int = 100
    crd_installed: bool = True
    plain_404: bool = False  # unserved routes: plain text (older servers) or a bare Status

    def fail_next(self, method: str, code: int, message: str, **extra: Any) -> None:
        reason = {403: "Forbidden", 409: "Conflict", 422: "Invalid", 500: "InternalError"}
        status = {"reason": reason.get(code, "Unknown"), **extra}
        self.failures.setdefault(method, []).append((code, _status(code, message, **status)))

    def seed(self, path: str, obj: dict[str, Any], manager: str) -> None:
        """An object created earlier by another field manager (e.g. kubectl)."""
        self._store(path, obj, manager)

    def handle(self, seen: Seen) -> tuple[int, dict[str, Any] | str]:
        self.requests.append(seen)
        auth = seen.headers.get("authorization", "")
        if auth.removeprefix("Bearer ") not in self.tokens:
            return 401, _status(401, "Unauthorized", reason="Unauthorized")
        if self.failures.get(seen.method):
            return self.failures[seen.method].pop(0)
        parts = seen.path.split("/")
        served = (
            len(parts) == 8
            and parts[1] == "apis"
            and parts[4] == "namespaces"
            and SERVED.get((parts[2], parts[3])) == parts[6]
        )
        if not (self.crd_installed and served):
            if self.plain_404:
                return 404, "404 page not found\n"
            return 404, _status(
                404,
                "the server could not find the requested resource",
                reason="NotFound",
                details={},
            )
        name = parts[7]
        if seen.method == "GET":
            stored = self.objects.get(seen.path)
            if stored is None:
                return 404, _not_found(name, parts[2], parts[6])
            return 200, copy.deepcopy(stored.obj)
        if seen.method == "PATCH":
            return self._apply(seen, name)
        return 405, _status(405, "method not allowed", reason="MethodNotAllowed")

    def _apply(self, seen: Seen, name: str) -> tuple[int, dict[str, Any] | str]:
        if seen.headers.get("content-type") != APPLY:
            return 415, _status(415, "unsupported patch type", reason="UnsupportedMediaType")
        manager = (seen.query.get("fieldManager") or [""])[0]
        if not manager:
            return 422, _status(
                422,
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                "is required for apply patch",
                reason="Invalid",
            )
        body = seen.body
        if not isinstance(body, dict) or body.get("metadata", {}).get("name") != name:
            return 400, _status(400, "the name of the object does not match the URL")
        force = (seen.query.get("force") or ["false"])[0] == "true"
        stored = self.objects.get(seen.path)
        if stored is None:
            return 201, self._store(seen.path, body, manager)
        if stored.manager != manager and stored.applied != body and not force:
            return 409, _status(
                409,
                f'Apply failed with 1 conflict: conflict with "{stored.manager}" using '
                "machinelearning.seldon.io/v1: .spec.predictors",
                reason="Conflict",
                details={"causes": [{"field": ".spec.predictors", "message": "conflict"}]},
            )
        if stored.applied == body:
            stored.manager = manager
            return 200, copy.deepcopy(stored.obj)
        return 200, self._store(seen.path, body, manager)

    def _store(self, path: str, body: dict[str, Any], manager: str) -> Any:
        self.resource_version += 1
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        old = self.objects.get(path)
        meta["resourceVersion"] = str(self.resource_version)
        meta["uid"] = old.obj["metadata"]["uid"] if old else f"uid-{self.resource_version}"
        meta["managedFields"] = [{"manager": manager, "operation": "Apply"}]
        self.objects[path] = _Stored(obj, copy.deepcopy(body), manager)
        return copy.deepcopy(obj)


def _status(code: int, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "code": code,
        **extra,
    }


def _not_found(name: str, group: str, plural: str) -> dict[str, Any]:
    return _status(
        404,
        f'{plural}.{group} "{name}" not found',
        reason="NotFound",
        details={"name": name, "group": group, "kind": plural},
    )


def _handler(api: FakeKubeAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            seen = Seen(
                method=self.command,
                path=url.path,
                query=parse_qs(url.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=yaml.safe_load(raw) if raw else None,  # apply bodies are YAML (or JSON)
            )
            code, answer = api.handle(seen)
            data = (answer if isinstance(answer, str) else json.dumps(answer)).encode()
            self.send_response(code)
            kind = "text/plain" if isinstance(answer, str) else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep pytest output clean; `api.requests` records everything

    return Handler


@pytest.fixture
def api() -> Iterator[FakeKubeAPI]:
    fake = FakeKubeAPI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll interval keeps shutdown (and so each test) fast.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def make_applier(url: str, token: str = TOKEN, **kwargs: Any) -> KubernetesApplier:
    configuration = kubernetes.client.Configuration(host=url)
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    # No client-side retries: each request the applier makes reaches the server once.
    configuration.retries = 0
    return KubernetesApplier(kubernetes.client.ApiClient(configuration), **kwargs)


@pytest.fixture
def applier(api: FakeKubeAPI) -> Iterator[KubernetesApplier]:
    a = make_applier(api.url)
    yield a
    a.close()


# --- config and objects ---------------------------------------------------------------------


@pytest.fixture
def cfg() -> Config:
    return make_cfg(mode="kubernetes")


def single(cfg: Config) -> dict[str, Any]:
    return SeldonBackend().render(DeploymentState.single("fraud-model", "models", V1), cfg)


def canary(cfg: Config) -> dict[str, Any]:
    state = DeploymentState.with_canary("fraud-model", "models", V1, V2, 10)
    return SeldonBackend().render(state, cfg)


def calls(api: FakeKubeAPI) -> list[tuple[str, str, dict[str, list[str]]]]:
    return [(r.method, r.path, r.query) for r in api.requests]


# --- the apply protocol ---------------------------------------------------------------------


def test_first_apply_gets_then_creates_by_server_side_apply(
    api: FakeKubeAPI, applier: KubernetesApplier, cfg: Config
) -> None:
    obj = single(cfg)
    result = applier.apply(obj, cfg, message="ignored: an API object has no commit message")

    assert calls(api) == [("GET", PATH, {}), ("PATCH", PATH, APPLY_QUERY)]
    get, patch = api.requests
    assert get.body is None
    assert get.headers["authorization"] == f"Bearer {TOKEN}"
    assert patch.headers["authorization"] == f"Bearer {TOKEN}"
    assert patch.headers["content-type"] == APPLY
    assert patch.headers["accept"] == "application/json"
    assert patch.body == obj  # exactly the rendered object, nothing added or dropped
    assert result.changed is True
    assert result.ref == api.objects[PATH].obj["metadata"]["resourceVersion"] == "101"
    assert result.detail == "created SeldonDeployment models/fraud-model at resourceVersion 101"


def test_second_identical_apply_is_a_no_op(
    api: FakeKubeAPI, applier: KubernetesApplier, cfg: Config
) -> None:
    first = applier.apply(single(cfg), cfg)
    again = applier.apply(single(cfg), cfg)

    assert calls(api) == [("GET", PATH, {}), ("PATCH", PATH, APPLY_QUERY)] * 2
    assert again.changed is False
    assert again.ref == first.ref == "101"
    assert again.detail == "SeldonDeployment models/fraud-model unchanged at resourceVersion 101"


def test_changed_object_moves_the_resource_version(
    api: FakeKubeAPI, applier: KubernetesApplier, cfg: Config
) -> None:
    applier.apply(single(cfg), cfg)
    result = applier.apply(canary(cfg), cfg)

    assert result.changed is True
    assert result.ref == "102"
    assert (
        result.detail == "updated SeldonDeployment models/fraud-model: resourceVersion 101 -> 102"
    )
    assert api.requests[-1].body == canary(cfg)
    # Back to the champion alone: the canary predictor is gone from what we send, so a real
    # server-side apply removes it (we own that field).
    back = applier.apply(single(cfg), cfg)
    assert back.changed is True
    assert [p["name"] for p in api.requests[-1].body["spec"]["predictors"]] == ["champion"]


def test_conflict_without_force_is_a_validation_error_with_the_servers_message(
    api: FakeKubeAPI, cfg: Config
) -> None:
    hand_edited = canary(cfg)
    api.seed(PATH, hand_edited, manager="kubectl-edit")
    careful = make_applier(api.url, force=False)

    with pytest.raises(ValidationError) as exc:
        careful.apply(single(cfg), cfg)

    assert api.requests[-1].query == {"fieldManager": ["retrain"], "force": ["false"]}
    assert exit_code_for(exc.value) == EXIT_VALIDATION
    assert 'conflict with "kubectl-edit"' in str(exc.value)
    assert exc.value.problems == [".spec.predictors: conflict"]
    # The default policy takes the fields over: the registry is the source of truth.
    result = make_applier(api.url).apply(single(cfg), cfg)
    assert result.changed is True
    assert api.objects[PATH].manager == "retrain"


def test_kserve_inference_service_is_applied_the_same_way(
    api: FakeKubeAPI, applier: KubernetesApplier, cfg: Config
) -> None:
    state = DeploymentState.with_canary("fraud-model", "models", V1, V2, 10)
    obj = KServeBackend().render(state, cfg)
    path = "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices/fraud-model"

    first = applier.apply(obj, cfg)
    again = applier.apply(obj, cfg)

    assert calls(api) == [("GET", path, {}), ("PATCH", path, APPLY_QUERY)] * 2
    assert api.requests[1].body == obj
    assert (first.changed, again.changed, again.ref) == (True, False, first.ref)


# --- failures -------------------------------------------------------------------------------


def test_forbidden_patch_names_the_missing_rbac_verb(
    api: FakeKubeAPI, applier: KubernetesApplier, cfg: Config
) -> None:
    applier.apply(single(cfg), cfg)
    api.fail_next(
        "PATCH",
        403,
        'seldondeployments.machinelearning.seldon.io "fraud-model" is forbidden: User '
        '"system:serviceaccount:models:retrain-deployer" cannot patch resource '
        '"seldondeployments" in API group "machinelearning.seldon.io" in the namespace "models"',
    )
    with pytest.raises(ValidationError) as exc:
        applier.apply(canary(cfg), cfg)

    text = str(exc.value)
    assert exit_code_for(exc.value) == EXIT_VALIDATION
    assert "missing RBAC verb 'patch' on seldondeployments.machinelearning.seldon.io" in text
    assert "retrain-deployer" in text  # the server's own words are kept
    assert "verbs ['get', 'patch'] on" in exc.value.problems[0]
    assert "resourceNames ['fraud-model']" in exc.value.problems[0]


def test_forbidden_create_through_apply_names_create(
    api: FakeKubeAPI, applier: KubernetesApplier, cfg: Config
) -> None:
    api.fail_next(
        "PATCH",
        403,
        'seldondeployments.machinelearning.seldon.io "fraud-model" is forbidden: User "u" '
        'cannot create resource "seldondeployments" in API group "machinelearning.seldon.io" '
        'in the namespace "models"',
    )
    with pytest.raises(ValidationError, match="missing RBAC verb 'create'") as exc:
        applier.apply(single(cfg), cfg)
    assert "verbs ['get', 'patch', 'create']" in exc.value.problems[0]


def test_forbidden_get_without_a_parsable_message_names_get(
    api: FakeKubeAPI, applier: KubernetesApplier, cfg: Config
) -> None:
    api.fail_next("GET", 403, "forbidden")
    with pytest.raises(ValidationError, match="missing RBAC verb 'get'"):
        applier.apply(single(cfg), cfg)
    assert calls(api) == [("GET", PATH, {})]  # nothing was patched


def test_rejected_credentials_are_a_validation_error(api: FakeKubeAPI, cfg: Config) -> None:
    with pytest.raises(ValidationError, match=r"rejected our credentials \(401\)") as exc:
        make_applier(api.url, token="expired").apply(single(cfg), cfg)
    assert exit_code_for(exc.value) == EXIT_VALIDATION


@pytest.mark.parametrize(("method", "code"), [("PATCH", 500), ("GET", 503), ("PATCH", 429)])
def test_server_errors_are_transient(
    api: FakeKubeAPI, applier: KubernetesApplier, cfg: Config, method: str, code: int
) -> None:
    api.fail_next(method, code, "etcdserver: request timed out")
    with pytest.raises(TransientError, match=f"HTTP {code}: etcdserver") as exc:
        applier.apply(single(cfg), cfg)
    assert exit_code_for(exc.value) == EXIT_TRANSIENT
    # A retry succeeds once the server recovers.
    assert applier.apply(single(cfg), cfg).changed is True


def test_unreachable_server_is_transient(cfg: Config) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    applier = make_applier(f"http://127.0.0.1:{port}")
    with pytest.raises(TransientError, match="cannot reach the Kubernetes API") as exc:
        applier.apply(single(cfg), cfg)
    assert exit_code_for(exc.value) == EXIT_TRANSIENT


def test_invalid_object_lists_the_servers_causes(
    api: FakeKubeAPI, applier: KubernetesApplier, cfg: Config
) -> None:
    causes = [{"field": "spec.predictors[0].traffic", "message": "Invalid value: 101"}]
    api.fail_next(
        "PATCH",
        422,
        'SeldonDeployment.machinelearning.seldon.io "fraud-model" is invalid',
        details={"causes": causes},
    )
    with pytest.raises(ValidationError, match=r"\(HTTP 422\): SeldonDeployment") as exc:
        applier.apply(single(cfg), cfg)
    assert exc.value.problems == ["spec.predictors[0].traffic: Invalid value: 101"]


@pytest.mark.parametrize(
    ("plain", "said"),
    [(True, "404 page not found"), (False, "the server could not find the requested resource")],
)
def test_a_cluster_without_the_crd_is_a_validation_error(
    api: FakeKubeAPI, applier: KubernetesApplier, cfg: Config, plain: bool, said: str
) -> None:
    api.crd_installed, api.plain_404 = False, plain
    with pytest.raises(ValidationError, match=r"CRD \(seldondeployments\) is installed") as exc:
        applier.apply(single(cfg), cfg)
    assert said in str(exc.value)
    assert calls(api) == [("GET", PATH, {})]


def test_object_being_deleted_is_transient(
    api: FakeKubeAPI, applier: KubernetesApplier, cfg: Config
) -> None:
    applier.apply(single(cfg), cfg)
    api.objects[PATH].obj["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    with pytest.raises(TransientError, match="is being deleted"):
        applier.apply(canary(cfg), cfg)
    assert api.requests[-1].method == "GET"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"metadata": {"name": "other", "namespace": "models"}}, "not this config's deployment"),
        ({"metadata": {"name": "fraud-model", "namespace": "prod"}}, "not this config's"),
        ({"kind": "Deployment"}, "cannot apply apiVersion"),
        ({"metadata": {"name": "Bad_Name", "namespace": "models"}}, "must be a Kubernetes name"),
    ],
)
def test_wrong_object_is_refused_before_any_request(
    api: FakeKubeAPI,
    applier: KubernetesApplier,
    cfg: Config,
    change: dict[str, Any],
    message: str,
) -> None:
    obj = single(cfg) | change
    with pytest.raises(ValidationError, match=message):
        applier.apply(obj, cfg)
    assert api.requests == []


# --- credentials and the factory ------------------------------------------------------------


def write_kubeconfig(path: Path, url: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": {"server": url}}],
                "users": [
                    {"name": "deployer", "user": {"token": TOKEN}},
                    {"name": "other", "user": {"token": "other-token"}},
                ],
                "contexts": [
                    {"name": "main", "context": {"cluster": "local", "user": "deployer"}},
                    {"name": "second", "context": {"cluster": "local", "user": "other"}},
                ],
                "current-context": "main",
            }
        )
    )
    return path


def test_factory_uses_the_kubeconfig_current_context(
    api: FakeKubeAPI, cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", api.url)))
    assert APPLIERS["kubernetes"] == KubernetesApplier.from_config

    applier = applier_for(cfg)
    result = applier.apply(single(cfg), cfg)

    assert isinstance(applier, KubernetesApplier)
    assert result.changed is True
    assert {r.headers["authorization"] for r in api.requests} == {f"Bearer {TOKEN}"}


def test_connect_with_a_named_context(
    api: FakeKubeAPI, cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")  # an explicit file wins
    api.tokens.add("other-token")
    kubeconfig = str(write_kubeconfig(tmp_path / "kubeconfig", api.url))

    KubernetesApplier.connect(kubeconfig=kubeconfig, context="second").apply(single(cfg), cfg)

    assert {r.headers["authorization"] for r in api.requests} == {"Bearer other-token"}


def test_missing_credentials_are_a_validation_error(
    cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(ValidationError, match="cannot load Kubernetes credentials from the kube"):
        applier_for(cfg)
    with pytest.raises(ValidationError, match=r"\(context 'unknown-context'\)"):
        KubernetesApplier.connect(
            kubeconfig=str(write_kubeconfig(tmp_path / "kc", "http://127.0.0.1:1")),
            context="unknown-context",
        )


def test_in_cluster_without_a_service_account_token_is_a_validation_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists():
        pytest.skip("this machine runs in a pod with a service account token")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(ValidationError, match="in-cluster service account"):
        KubernetesApplier.connect()


def test_required_rbac_is_least_privilege(cfg: Config) -> None:
    assert required_rbac(single(cfg)) == {
        "apiGroups": ["machinelearning.seldon.io"],
        "resources": ["seldondeployments"],
        "resourceNames": ["fraud-model"],
        "verbs": ["get", "patch", "create"],
    }
    assert required_rbac(single(cfg), create=False)["verbs"] == ["get", "patch"]


# --- through the deploy step ----------------------------------------------------------------


def test_deploy_step_in_kubernetes_mode_applies_once_and_converges(
    api: FakeKubeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real deploy step, credentials from a kubeconfig, the stand-in server as the API."""
    from retrain import steps
    from retrain.config import load_config
    from retrain.data.demo import generate_loans
    from retrain.registry import Registry
    from retrain.storage import open_storage

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", api.url)))
    loaded = load_config(generate_loans(tmp_path, windows=2, rows_per_window=300, drift_window=1))
    cfg = loaded.model_copy(
        update={"deploy": loaded.deploy.model_copy(update={"mode": "kubernetes"})}
    )
    text, run, t = cfg.to_yaml(), "r1", tmp_path / "run"
    steps.ingest(text, "0", run, str(t / "d.parquet"))
    steps.label(text, "0", run, str(t / "d.parquet"), str(t / "l.parquet"))
    steps.train(text, "0", run, str(t / "l.parquet"), str(t / "model"), str(t / "hold"))

    first = steps.deploy(text, run, str(t / "model"))
    second = steps.deploy(text, run, str(t / "model"))

    d = cfg.deploy
    path = f"/apis/machinelearning.seldon.io/v1/namespaces/{d.namespace}/seldondeployments/"
    path += d.deployment_name
    assert calls(api) == [("GET", path, {}), ("PATCH", path, APPLY_QUERY)] * 2
    assert (first.details["changed"], second.details["changed"]) == (True, False)
    assert first.commit == second.commit == api.objects[path].obj["metadata"]["resourceVersion"]
    champion = api.requests[1].body["spec"]["predictors"][0]
    assert champion["labels"]["retrain.dev/model-version"] == first.details["version"]
    events = Registry(open_storage(cfg.storage_root), cfg.name).events()
    assert [e["kind"] for e in events] == ["registered", "alias_moved", "deployed"]
    assert events[-1]["ref"] == first.commit
