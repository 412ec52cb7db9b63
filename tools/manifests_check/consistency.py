"""Consistency: the ConfigMap's config is valid, and the serving objects agree with it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from retrain.config import Config, config_from_text
from retrain.errors import ValidationError

from .objects import (
    _SELDON,
    CONFIG_KEY,
    CONFIG_MAP,
    DEPLOYER_SERVICE_ACCOUNT,
    Finding,
    _containers,
    _rules_of,
    _where,
    pod_specs,
)

#: The placeholder predictor of the initial SeldonDeployment (zero replicas: nothing serves).
BOOTSTRAP_VERSION = "bootstrap"
BOOTSTRAP_MODEL_URI = "none://no-model-blessed-yet"


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
    models: list[Config] = []
    out.extend(_models_findings(objs, models))
    out.extend(_serving_agrees(objs, [cfg, *models]))
    return out


#: The ConfigMap of every model's config that the monitor, reconciler and rollout CronJobs serve.
MODELS_MAP = "retrain-models"


def _models_findings(objs: Sequence[Mapping[str, Any]], valid: list[Config]) -> Iterator[Finding]:
    """Each key of the models ConfigMap is ``<name>.yaml`` holding a valid config of `name`;
    the valid configs are appended to `valid`."""
    for cmap in objs:
        meta = cmap.get("metadata") or {}
        if cmap.get("kind") != "ConfigMap" or not str(meta.get("name", "")).startswith(MODELS_MAP):
            continue
        where = _where(cmap)
        data = cmap.get("data") or {}
        if not data:
            yield Finding("consistency", where, "holds no model config")
        for key, text in sorted(data.items()):
            try:
                cfg = config_from_text(str(text), source=f"{where} {key}")
            except ValidationError as err:
                problems = err.problems or [str(err)]
                yield from (Finding("consistency", where, f"{key}: {p}") for p in problems)
                continue
            valid.append(cfg)
            if key != f"{cfg.name}.yaml":
                yield Finding(
                    "consistency",
                    where,
                    f"key {key!r} holds model {cfg.name!r}: name it {cfg.name}.yaml, so one "
                    "key is one model and no two keys can hold the same model",
                )


def _serving_agrees(objs: Sequence[Mapping[str, Any]], configs: Sequence[Config]) -> list[Finding]:
    """No two models deploy to one SeldonDeployment. Each model that patches its deployment
    through the Kubernetes API (``deploy.mode: kubernetes``) finds it here with its serving
    image, and the deployer's Roles name exactly those deployments: each in its namespace,
    nothing more. A GitOps-mode model's deployment lives in the repository it pushes to, and
    its deployer needs no Kubernetes permission."""
    out: list[Finding] = []
    deploys: dict[tuple[str, str], str] = {}  # (namespace, deployment) -> the model
    patched: dict[tuple[str, str], str] = {}  # the same, for the models that patch it
    for cfg in configs:
        d = cfg.deploy
        other = deploys.setdefault((d.namespace, d.deployment_name), cfg.name)
        if d.mode == "kubernetes":
            patched.setdefault((d.namespace, d.deployment_name), cfg.name)
        if other != cfg.name:
            out.append(
                Finding(
                    "consistency",
                    "SeldonDeployment",
                    f"models {other!r} and {cfg.name!r} both deploy to "
                    f"{d.namespace}/{d.deployment_name}: each model needs its own "
                    "(deploy.deployment_name)",
                )
            )
        if d.mode == "kubernetes":
            out.extend(f for f in _deployment_agrees(objs, cfg) if f not in out)
    out.extend(_deployer_names_agree(objs, patched))
    return out


def _deployment_agrees(objs: Sequence[Mapping[str, Any]], cfg: Config) -> Iterator[Finding]:
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


def _deployer_names_agree(
    objs: Sequence[Mapping[str, Any]], deploys: Mapping[tuple[str, str], str]
) -> Iterator[Finding]:
    """The seldondeployments rules name each model's deployment in its namespace, and no
    deployment that no model patches (least privilege)."""
    namespaces = sorted({ns for ns, _ in deploys})
    named: set[tuple[str, str]] = set()
    bound = _deployer_bindings(objs)
    for obj in objs:
        for i, rule in _rules_of(obj):
            if "seldondeployments" not in (rule.get("resources") or []):
                continue
            where = f"{_where(obj)} rules[{i}]"
            ns = (obj.get("metadata") or {}).get("namespace")
            role = (obj.get("metadata") or {}).get("name")
            if not namespaces:
                yield Finding(
                    "consistency",
                    where,
                    "no model patches a SeldonDeployment through the Kubernetes API (every "
                    "deploy.mode is gitops): the deployer needs no seldondeployments rule",
                )
                continue
            if ns not in namespaces:
                yield Finding(
                    "consistency",
                    where,
                    f"must be in a serving namespace {namespaces} (the models' deploy.namespace)",
                )
                continue
            names = [str(n) for n in rule.get("resourceNames") or []]
            missing = sorted({"get", "patch"} - set(rule.get("verbs") or []))
            if missing:
                yield Finding(
                    "consistency",
                    where,
                    f"verbs lack {missing}: the rollout tick and the deploy step get and patch "
                    "the models' deployments",
                )
            elif obj.get("kind") != "Role" or (ns, role) not in bound:
                yield Finding(
                    "consistency",
                    where,
                    f"no RoleBinding in {ns!r} binds this Role to the ServiceAccount "
                    f"{DEPLOYER_SERVICE_ACCOUNT!r}: its patches would be refused (403)",
                )
            else:
                named.update((ns, n) for n in names)
            extra = sorted(n for n in names if (ns, n) not in deploys)
            if extra:
                yield Finding(
                    "consistency",
                    where,
                    f"resourceNames {extra} are no deployment a model patches in {ns!r} "
                    "(deploy.deployment_name of a model in deploy.mode kubernetes): name only "
                    "the deployments the models patch",
                )
    for (ns, name), model in sorted(deploys.items()):
        if (ns, name) not in named:
            yield Finding(
                "consistency",
                f"Role in namespace {ns}",
                f"resourceNames of a seldondeployments rule must include {name!r} in namespace "
                f"{ns!r} (deploy.deployment_name of model {model!r}): the rollout tick and the "
                "deploy step patch it as the deployer",
            )


def _deployer_bindings(objs: Sequence[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """(namespace, Role) pairs a RoleBinding grants the deployer's ServiceAccount."""
    accounts = {
        (o.get("metadata") or {}).get("namespace")
        for o in objs
        if o.get("kind") == "ServiceAccount"
        and (o.get("metadata") or {}).get("name") == DEPLOYER_SERVICE_ACCOUNT
    }
    out: set[tuple[str, str]] = set()
    for o in objs:
        ref = o.get("roleRef") or {}
        if o.get("kind") != "RoleBinding" or ref.get("kind") != "Role":
            continue
        if any(
            s.get("kind") == "ServiceAccount"
            and s.get("name") == DEPLOYER_SERVICE_ACCOUNT
            and s.get("namespace") in accounts
            for s in o.get("subjects") or []
        ):
            out.add((str((o.get("metadata") or {}).get("namespace")), str(ref.get("name"))))
    return out


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
