"""The security rules catch each regression: mutate one manifest, the named rule fires.

These run on the base objects as written (no kustomize, no cluster); the overlays, rendered
with kubectl, are checked in test_overlays.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tools.manifests_check import (
    SECURITY_RULES,
    Finding,
    image_problem,
    pod_specs,
    security_findings,
)

Objs = list[dict[str, Any]]
Find = Callable[[Objs, str, str], dict[str, Any]]


def _rule(objs: Objs, rule: str) -> list[Finding]:
    return [f for f in security_findings(objs) if f.rule == rule]


def _monitor(objs: Objs, find: Find) -> tuple[dict[str, Any], dict[str, Any]]:
    """The drift monitor's pod spec and its container."""
    pod = pod_specs(find(objs, "CronJob", "retrain-drift-monitor"))[0][1]
    return pod, pod["containers"][0]


def test_the_base_passes_every_rule(base_objs: Objs) -> None:
    # The generated ConfigMap is missing here; no rule depends on it.
    assert security_findings(base_objs) == []


def test_every_rule_is_exercised_below() -> None:
    tested = {
        "pod-security",
        "resources",
        "image-pinned",
        "token-automount",
        "rbac-wildcard",
        "rbac-secrets",
        "rbac-least-privilege",
        "namespace-pss",
        "network-default-deny",
        "service-account",
        "schedule-policy",
    }
    assert set(SECURITY_RULES) == tested


# --- restricted Pod Security, per container ---------------------------------------------------


def _drop_container_field(key: str) -> Callable[[dict, dict], None]:
    def mutate(pod: dict, c: dict) -> None:
        del c["securityContext"][key]

    return mutate


def _set_both(key: str, value: Any) -> Callable[[dict, dict], None]:
    def mutate(pod: dict, c: dict) -> None:
        c["securityContext"][key] = value
        pod["securityContext"][key] = value

    return mutate


def _remove_both(key: str) -> Callable[[dict, dict], None]:
    def mutate(pod: dict, c: dict) -> None:
        c["securityContext"].pop(key, None)
        pod["securityContext"].pop(key, None)

    return mutate


def _unmount_tmp(pod: dict, c: dict) -> None:
    c["volumeMounts"] = [m for m in c["volumeMounts"] if m["mountPath"] != "/tmp"]


def _tmp_not_empty_dir(pod: dict, c: dict) -> None:
    for v in pod["volumes"]:
        if v["name"] == "tmp":
            del v["emptyDir"]
            v["persistentVolumeClaim"] = {"claimName": "scratch"}


def _host_network(pod: dict, c: dict) -> None:
    pod["hostNetwork"] = True


def _host_path(pod: dict, c: dict) -> None:
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/var/run"}})


def _add_capability(pod: dict, c: dict) -> None:
    c["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]


def _privileged(pod: dict, c: dict) -> None:
    c["securityContext"]["privileged"] = True


def _root_user(pod: dict, c: dict) -> None:
    c["securityContext"]["runAsUser"] = 0


@pytest.mark.parametrize(
    "mutate",
    [
        _drop_container_field("allowPrivilegeEscalation"),
        _set_both("allowPrivilegeEscalation", True),
        _set_both("runAsNonRoot", False),
        _remove_both("runAsNonRoot"),
        _root_user,
        _drop_container_field("capabilities"),
        _remove_both("seccompProfile"),
        _set_both("seccompProfile", {"type": "Unconfined"}),
        _drop_container_field("readOnlyRootFilesystem"),
        _set_both("readOnlyRootFilesystem", False),
        _unmount_tmp,
        _tmp_not_empty_dir,
        _host_network,
        _host_path,
        _add_capability,
        _privileged,
    ],
    ids=lambda f: getattr(f, "__name__", "mutation"),
)
def test_pod_security_catches_a_lost_restricted_field(
    base_objs: Objs, find: Find, mutate: Callable[[dict, dict], None]
) -> None:
    assert _rule(base_objs, "pod-security") == []
    pod, container = _monitor(base_objs, find)
    mutate(pod, container)
    found = _rule(base_objs, "pod-security")
    assert found, "the checker missed the regression"
    assert all("retrain-drift-monitor" in f.where for f in found)


def test_pod_level_settings_count_for_containers(base_objs: Objs, find: Find) -> None:
    # seccomp and runAsNonRoot may be set on the pod alone: Kubernetes applies them to all.
    _pod, container = _monitor(base_objs, find)
    del container["securityContext"]["seccompProfile"]
    del container["securityContext"]["runAsNonRoot"]
    assert _rule(base_objs, "pod-security") == []


def test_pod_security_covers_the_seldon_deployment(base_objs: Objs, find: Find) -> None:
    sdep = find(base_objs, "SeldonDeployment", "loans")
    pod = pod_specs(sdep)[0][1]
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    found = _rule(base_objs, "pod-security")
    assert [f.where.split()[0] for f in found] == ["SeldonDeployment"]


# --- resources and images ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "resource"),
    [("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")],
)
def test_missing_requests_or_limits_are_caught(
    base_objs: Objs, find: Find, section: str, resource: str
) -> None:
    assert _rule(base_objs, "resources") == []
    pod = pod_specs(find(base_objs, "CronJob", "retrain-schedule-reconciler"))[0][1]
    del pod["containers"][0]["resources"][section][resource]
    found = _rule(base_objs, "resources")
    assert len(found) == 1 and f"{section}.{resource}" in found[0].message


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/retrain-project/retrain",
        "ghcr.io/retrain-project/retrain:latest",
        "localhost:5000/retrain",
        "ghcr.io/retrain-project/retrain@sha256:abc",
        "",
    ],
)
def test_unpinned_images_are_caught(base_objs: Objs, find: Find, image: str) -> None:
    assert _rule(base_objs, "image-pinned") == []
    _, container = _monitor(base_objs, find)
    container["image"] = image
    assert len(_rule(base_objs, "image-pinned")) == 1


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/retrain-project/retrain:0.1.0",
        "localhost:5000/retrain:1",
        "ghcr.io/retrain-project/retrain:0.1.0@sha256:" + "a" * 64,
        "ghcr.io/retrain-project/retrain@sha256:" + "a" * 64,
    ],
)
def test_pinned_images_pass(image: str) -> None:
    assert image_problem(image) is None


# --- service-account tokens -------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, None])
def test_token_automount_on_a_service_account_is_caught(
    base_objs: Objs, find: Find, value: bool | None
) -> None:
    assert _rule(base_objs, "token-automount") == []
    sa = find(base_objs, "ServiceAccount", "retrain-monitor")
    if value is None:
        del sa["automountServiceAccountToken"]  # the default is to mount
    else:
        sa["automountServiceAccountToken"] = value
    assert [f.where for f in _rule(base_objs, "token-automount")] == [
        "ServiceAccount retrain/retrain-monitor"
    ]


@pytest.mark.parametrize("value", [True, None])
def test_token_automount_on_a_pod_is_caught(
    base_objs: Objs, find: Find, value: bool | None
) -> None:
    pod, _ = _monitor(base_objs, find)
    if value is None:
        del pod["automountServiceAccountToken"]
    else:
        pod["automountServiceAccountToken"] = value
    assert len(_rule(base_objs, "token-automount")) == 1


def test_only_the_pipeline_runner_keeps_its_token(base_objs: Objs) -> None:
    mounting = {
        o["metadata"]["name"]
        for o in base_objs
        if o["kind"] == "ServiceAccount" and o.get("automountServiceAccountToken") is not False
    }
    assert mounting == {"retrain-pipeline"}


def test_the_seldon_pods_mount_no_token(base_objs: Objs, find: Find) -> None:
    pod = pod_specs(find(base_objs, "SeldonDeployment", "loans"))[0][1]
    del pod["automountServiceAccountToken"]
    assert len(_rule(base_objs, "token-automount")) == 1


# --- RBAC -------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["apiGroups", "resources", "verbs", "resourceNames"])
def test_a_wildcard_rule_is_caught(base_objs: Objs, find: Find, key: str) -> None:
    assert _rule(base_objs, "rbac-wildcard") == []
    role = find(base_objs, "Role", "retrain-monitor")
    role["rules"][0][key] = ["*"]
    found = _rule(base_objs, "rbac-wildcard")
    assert len(found) == 1 and key in found[0].message


@pytest.mark.parametrize("verbs", [["list"], ["watch"], ["get", "list", "watch"], ["*"]])
def test_listing_or_watching_secrets_is_caught(
    base_objs: Objs, find: Find, verbs: list[str]
) -> None:
    assert _rule(base_objs, "rbac-secrets") == []
    role = find(base_objs, "Role", "retrain-pipeline")
    role["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": verbs})
    assert any("list/watch" in f.message for f in _rule(base_objs, "rbac-secrets"))


def test_getting_any_secret_by_no_name_is_caught(base_objs: Objs, find: Find) -> None:
    role = find(base_objs, "Role", "retrain-pipeline")
    role["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    assert [f.message for f in _rule(base_objs, "rbac-secrets")] == [
        "get on secrets needs resourceNames"
    ]


def test_getting_one_named_secret_is_allowed(base_objs: Objs, find: Find) -> None:
    role = find(base_objs, "Role", "retrain-pipeline")
    role["rules"].append(
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["mlpipeline-minio-artifact"],
            "verbs": ["get"],
        }
    )
    assert _rule(base_objs, "rbac-secrets") == []


def test_the_deployer_may_only_get_and_patch_the_named_deployment(base_objs: Objs) -> None:
    rules = [
        r
        for o in base_objs
        if o["kind"] == "Role"
        for r in o["rules"]
        if "seldondeployments" in r["resources"]
    ]
    assert rules == [
        {
            "apiGroups": ["machinelearning.seldon.io"],
            "resources": ["seldondeployments"],
            "resourceNames": ["loans"],
            "verbs": ["get", "patch"],
        }
    ]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.pop("resourceNames"),
        lambda r: r["verbs"].append("delete"),
        lambda r: r["verbs"].append("list"),
        lambda r: r["verbs"].append("create"),
    ],
    ids=["any-name", "delete", "list", "create"],
)
def test_a_wider_deployer_is_caught(
    base_objs: Objs, find: Find, mutate: Callable[[dict], Any]
) -> None:
    assert _rule(base_objs, "rbac-least-privilege") == []
    mutate(find(base_objs, "Role", "retrain-deployer")["rules"][0])
    assert _rule(base_objs, "rbac-least-privilege")


def test_cluster_wide_rbac_is_caught(base_objs: Objs, find: Find) -> None:
    role = find(base_objs, "Role", "retrain-monitor")
    role["kind"] = "ClusterRole"
    del role["metadata"]["namespace"]
    assert _rule(base_objs, "rbac-least-privilege")


def test_privilege_granting_verbs_are_caught(base_objs: Objs, find: Find) -> None:
    role = find(base_objs, "Role", "retrain-scheduler")
    role["rules"].append(
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["bind"]}
    )
    assert _rule(base_objs, "rbac-least-privilege")


# --- namespaces, network, accounts, schedules ------------------------------------------------


@pytest.mark.parametrize("mode", ["enforce", "audit", "warn"])
def test_a_namespace_without_restricted_labels_is_caught(
    base_objs: Objs, find: Find, mode: str
) -> None:
    assert _rule(base_objs, "namespace-pss") == []
    ns = find(base_objs, "Namespace", "models")
    ns["metadata"]["labels"][f"pod-security.kubernetes.io/{mode}"] = "baseline"
    assert [f.where for f in _rule(base_objs, "namespace-pss")] == ["Namespace models"]


def test_a_workload_outside_the_restricted_namespaces_is_caught(
    base_objs: Objs, find: Find
) -> None:
    find(base_objs, "CronJob", "retrain-drift-monitor")["metadata"]["namespace"] = "default"
    assert any("'default'" in f.message for f in _rule(base_objs, "namespace-pss"))


def test_a_namespace_without_default_deny_is_caught(base_objs: Objs) -> None:
    assert _rule(base_objs, "network-default-deny") == []
    base_objs[:] = [
        o
        for o in base_objs
        if not (
            o["kind"] == "NetworkPolicy"
            and o["metadata"]["name"] == "default-deny"
            and o["metadata"]["namespace"] == "retrain"
        )
    ]
    assert [f.where for f in _rule(base_objs, "network-default-deny")] == ["Namespace retrain"]


def test_a_default_deny_that_allows_something_is_not_one(base_objs: Objs) -> None:
    for o in base_objs:
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "default-deny":
            o["spec"]["egress"] = [{}]  # an empty rule allows all egress
    assert len(_rule(base_objs, "network-default-deny")) == 2


@pytest.mark.parametrize("account", [None, "default", "retrain-nonexistent"])
def test_pods_must_run_as_a_rendered_service_account(
    base_objs: Objs, find: Find, account: str | None
) -> None:
    assert _rule(base_objs, "service-account") == []
    pod, _ = _monitor(base_objs, find)
    if account is None:
        del pod["serviceAccountName"]
    else:
        pod["serviceAccountName"] = account
    assert len(_rule(base_objs, "service-account")) == 1


def _schedule() -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "ScheduledWorkflow",
        "metadata": {"name": "retrain-loans-weekly", "namespace": "retrain"},
        "spec": {
            "enabled": True,
            "maxConcurrency": 1,
            "noCatchup": True,
            "serviceAccount": "retrain-pipeline",
            "trigger": {"cronSchedule": {"cron": "0 0 6 * * 1"}},
            "workflow": {},
        },
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [("maxConcurrency", 2), ("noCatchup", False), ("serviceAccount", "default-editor")],
)
def test_schedule_policy(key: str, value: Any) -> None:
    swf = _schedule()
    assert _rule([swf], "schedule-policy") == []
    swf["spec"][key] = value
    assert len(_rule([swf], "schedule-policy")) == 1
