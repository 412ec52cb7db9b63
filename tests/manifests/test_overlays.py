"""`make manifests-check` on the real manifests: every kustomization renders with kubectl and
passes the schemas (Kubernetes 1.29-1.32, strict), the security rules, the consistency checks
and the pipeline-package check; the checks catch a broken rendered object."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from retrain.config import config_from_text
from retrain.errors import ValidationError
from retrain.settings.durations import parse_duration
from tools.manifests_check import (
    CONFIG_KEY,
    KUBERNETES_VERSIONS,
    PIPELINE_KEY,
    check_files,
    check_objects,
    consistency_findings,
    initial_seldon_deployment,
    load_documents,
    main,
    pipeline_findings,
    pod_specs,
    render,
    schema_findings,
)

MANIFESTS = Path(__file__).parents[2] / "manifests"
Objs = list[dict[str, Any]]
Render = Callable[[str], Objs]
Find = Callable[[Objs, str, str], dict[str, Any]]
TARGETS = ["base", "overlays/dev", "overlays/gcp"]
SCHEMAS = MANIFESTS / "schemas"


def _rules(findings: list[Any]) -> set[str]:
    return {f.rule for f in findings}


# --- the real manifests are clean ------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("target", TARGETS)
def test_kustomization_passes_every_check(rendered: Render, target: str) -> None:
    findings = check_objects(rendered(target), schema_dir=SCHEMAS)
    assert findings == [], "\n".join(map(str, findings))


@pytest.mark.parametrize("name", ["argocd/application.yaml", "examples/scheduledworkflow.yaml"])
def test_standalone_manifests_pass_their_schemas(name: str) -> None:
    assert check_files([MANIFESTS / name], schema_dir=SCHEMAS) == []


@pytest.mark.integration
def test_make_manifests_check_entry_point(kubectl: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["--manifests", str(MANIFESTS), "--kubectl", kubectl]) == 0
    out = capsys.readouterr().out
    for target in TARGETS:
        assert f"ok   {MANIFESTS / target}" in out
    # base, two overlays, and the three standalone manifests (argocd x2, examples)
    assert "6 of 6 targets clean (Kubernetes 1.29, 1.30, 1.31, 1.32, strict)" in out


def test_render_without_kubectl_says_so(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"not-a-kubectl.*not found"):
        render(MANIFESTS / "base", kubectl="not-a-kubectl")


def test_the_initial_seldon_deployment_is_what_the_backend_renders() -> None:
    cfg = config_from_text((MANIFESTS / "base" / CONFIG_KEY).read_text())
    committed = yaml.safe_load((MANIFESTS / "base" / "seldondeployment.yaml").read_text())
    assert committed == initial_seldon_deployment(cfg)
    predictor = committed["spec"]["predictors"][0]
    assert predictor["replicas"] == 0, "no serving pod before a model is blessed"


# --- schemas catch a broken object ------------------------------------------------------------


@pytest.mark.integration
def test_an_unknown_field_fails_strict_validation_for_every_version(
    rendered: Render, find: Find
) -> None:
    objs = rendered("overlays/gcp")
    pod = pod_specs(find(objs, "CronJob", "retrain-drift-monitor"))[0][1]
    pod["containers"][0]["securityContex"] = {}  # a typo Kubernetes would silently drop
    found = schema_findings(objs, schema_dir=SCHEMAS)
    assert len(found) == len(KUBERNETES_VERSIONS)
    assert all("securityContex" in f.message for f in found)


@pytest.mark.integration
def test_a_wrong_type_fails_schema_validation(rendered: Render, find: Find) -> None:
    objs = rendered("overlays/dev")
    find(objs, "PersistentVolumeClaim", "retrain-store")["spec"]["accessModes"] = "RWO"
    assert _rules(schema_findings(objs, schema_dir=SCHEMAS, versions=("1.29",))) == {"schema"}


@pytest.mark.integration
def test_the_seldon_deployment_is_checked_against_its_schema(rendered: Render, find: Find) -> None:
    objs = rendered("base")
    find(objs, "SeldonDeployment", "loans")["spec"]["predictors"][0]["traffic"] = 90
    found = schema_findings(objs, schema_dir=SCHEMAS)
    assert [f.message for f in found] == ["$.spec.predictors: traffic must sum to 100, got 90"]


def test_a_kind_without_schema_is_an_error() -> None:
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    found = schema_findings([obj], schema_dir=SCHEMAS, versions=("1.29",))
    assert len(found) == 1 and "no schema" in found[0].message


def _load(name: str) -> Objs:
    return load_documents((MANIFESTS / name).read_text(), name)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda a: a["spec"].pop("destination"), "destination"),
        (lambda a: a["spec"]["destination"].update(name="in-cluster"), "valid under each"),
        (lambda a: a["spec"]["syncPolicy"]["syncOptions"].append("Prune=true "), "syncOptions"),
        (lambda a: a["spec"]["syncPolicy"]["automated"].update(selfheal=True), "selfheal"),
        (lambda a: a["spec"]["ignoreDifferences"][0].pop("managedFieldsManagers"), "any of"),
    ],
    ids=["no-destination", "server-and-name", "bad-sync-option", "typo", "ignores-nothing"],
)
def test_the_argocd_application_schema_catches(
    mutate: Callable[[dict], Any], expected: str
) -> None:
    objs = _load("argocd/application.yaml")
    mutate(objs[0])
    found = schema_findings(objs, schema_dir=SCHEMAS)
    assert found and any(expected in f.message for f in found), found


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda s: s["spec"].update(maxConcurrency=11), "maxConcurrency"),
        (lambda s: s["spec"]["trigger"]["cronSchedule"].update(cron="0 6 * * 1"), "cron"),
        (lambda s: s["spec"].update(noCatchUp=True), "noCatchUp"),
        (lambda s: s["spec"]["trigger"].update(periodicSchedule={"intervalSecond": 60}), "trigger"),
        (lambda s: s["spec"]["trigger"]["cronSchedule"].update(startTime="Monday"), "startTime"),
    ],
    ids=["concurrency", "five-field-cron", "typo", "two-triggers", "bad-time"],
)
def test_the_scheduled_workflow_schema_catches(
    mutate: Callable[[dict], Any], expected: str
) -> None:
    objs = _load("examples/scheduledworkflow.yaml")
    mutate(objs[0])
    found = schema_findings(objs, schema_dir=SCHEMAS)
    assert found and any(expected in f.message for f in found), found


# --- consistency and the pipeline package ----------------------------------------------------


def _edit_config(objs: Objs, find: Find, edit: Callable[[dict], None]) -> None:
    cmap = find(objs, "ConfigMap", "retrain-config")
    raw = yaml.safe_load(cmap["data"][CONFIG_KEY])
    edit(raw)
    cmap["data"][CONFIG_KEY] = yaml.safe_dump(raw, sort_keys=False)


@pytest.mark.integration
def test_a_config_for_another_deployment_is_caught(rendered: Render, find: Find) -> None:
    objs = rendered("overlays/gcp")
    _edit_config(objs, find, lambda raw: raw["deploy"].update(deployment_name="fraud"))
    messages = [f.message for f in consistency_findings(objs)]
    assert any("none named models/fraud" in m for m in messages)
    assert any("must include 'fraud' in namespace 'models'" in m for m in messages)


@pytest.mark.integration
def test_a_serving_image_that_differs_from_the_config_is_caught(
    rendered: Render, find: Find
) -> None:
    objs = rendered("overlays/gcp")
    pod = pod_specs(find(objs, "SeldonDeployment", "loans"))[0][1]
    pod["containers"][0]["image"] = "ghcr.io/retrain-project/retrain-serving:0.3.0"
    found = consistency_findings(objs)
    assert len(found) == 1 and "deploy.image" in found[0].message


@pytest.mark.integration
@pytest.mark.parametrize("key", ["storage_root", "data", "labels"])
def test_relative_locations_in_the_cluster_config_are_caught(
    rendered: Render, find: Find, key: str
) -> None:
    objs = rendered("overlays/gcp")

    def edit(raw: dict) -> None:
        if key == "storage_root":
            raw["storage_root"] = "store"
        else:
            raw[key]["uri"] = "events"

    _edit_config(objs, find, edit)
    assert any("absolute path" in f.message for f in consistency_findings(objs))


@pytest.mark.integration
def test_an_invalid_config_is_caught(rendered: Render, find: Find) -> None:
    objs = rendered("overlays/dev")
    _edit_config(objs, find, lambda raw: raw.update(training={"historical_share": 2}))
    assert any("historical_share" in f.message for f in consistency_findings(objs))


@pytest.mark.integration
def test_a_stale_pipeline_package_is_caught(rendered: Render, find: Find) -> None:
    objs = rendered("overlays/dev")
    assert pipeline_findings(objs) == []
    cmap = find(objs, "ConfigMap", "retrain-config")
    cmap["data"][PIPELINE_KEY] = cmap["data"][PIPELINE_KEY].replace(
        "cpuLimit: 4.0", "cpuLimit: 8.0"
    )
    assert [f.rule for f in pipeline_findings(objs)] == ["pipeline-package"]


@pytest.mark.integration
def test_a_new_image_tag_needs_a_new_pipeline_package(rendered: Render, find: Find) -> None:
    # An overlay that bumps the components image without recompiling would launch old code.
    objs = rendered("overlays/gcp")
    for name in ("retrain-drift-monitor", "retrain-schedule-reconciler"):
        pod = pod_specs(find(objs, "CronJob", name))[0][1]
        pod["containers"][0]["image"] = "ghcr.io/retrain-project/retrain:0.3.0"
    assert [f.rule for f in pipeline_findings(objs)] == ["pipeline-package"]


def _shipped_pipeline(objs: Objs, find: Find) -> tuple[dict, dict]:
    text = find(objs, "ConfigMap", "retrain-config")["data"][PIPELINE_KEY]
    spec, platform = yaml.safe_load_all(text)
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


@pytest.mark.integration
def test_the_dev_pipeline_mounts_the_store_and_gcp_does_not(rendered: Render, find: Find) -> None:
    _, dev = _shipped_pipeline(rendered("overlays/dev"), find)
    _, gcp = _shipped_pipeline(rendered("overlays/gcp"), find)
    for executor in dev.values():
        assert [(m["constant"], m["mountPath"]) for m in executor["pvcMount"]] == [
            ("retrain-store", "/var/lib/retrain")
        ]
    assert all("pvcMount" not in e for e in gcp.values())


@pytest.mark.integration
@pytest.mark.parametrize("target", TARGETS)
def test_the_shipped_pipeline_gives_only_deploy_the_deployer_token(
    rendered: Render, find: Find, target: str
) -> None:
    _, executors = _shipped_pipeline(rendered(target), find)
    with_token = {
        name
        for name, e in executors.items()
        for s in e.get("secretAsVolume", [])
        if s["secretName"] == "retrain-deployer-token"
    }
    assert with_token == {"exec-deploy"}


@pytest.mark.integration
def test_gcp_uses_workload_identity_and_no_keys(rendered: Render, find: Find) -> None:
    objs = rendered("overlays/gcp")
    for name in ("retrain-pipeline", "retrain-monitor"):
        annotations = find(objs, "ServiceAccount", name)["metadata"]["annotations"]
        assert annotations["iam.gke.io/gcp-service-account"].startswith(f"{name}@")
    secrets = [o["metadata"]["name"] for o in objs if o["kind"] == "Secret"]
    assert secrets == ["retrain-deployer-token"], "no credential Secrets: Workload Identity"


# --- one monitor, one reconciler and one rollout tick for every model ------------------------


@pytest.mark.integration
@pytest.mark.parametrize("target", TARGETS)
def test_every_cronjob_serves_every_model_of_the_models_configmap(
    rendered: Render, find: Find, target: str
) -> None:
    objs = rendered(target)
    models = find(objs, "ConfigMap", "retrain-models")
    config = find(objs, "ConfigMap", "retrain-config")["data"][CONFIG_KEY]
    assert models["data"] == {"loans.yaml": config}  # the same file, not a copy to keep in step
    cronjobs = [o["metadata"]["name"] for o in objs if o["kind"] == "CronJob"]
    assert sorted(cronjobs) == [
        "retrain-drift-monitor",
        "retrain-rollout-advance",
        "retrain-schedule-reconciler",
    ]
    for name in cronjobs:
        pod = pod_specs(find(objs, "CronJob", name))[0][1]
        volume = next(v for v in pod["volumes"] if v["name"] == "models")
        assert volume["configMap"]["name"] == models["metadata"]["name"]
        container = pod["containers"][0]
        mount = next(m for m in container["volumeMounts"] if m["name"] == "models")
        assert mount["readOnly"] is True
        command = container["command"]
        assert command[command.index("--config") + 1] == mount["mountPath"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "margin"),
    [
        # A tick waits on a store, git or the API: the last one to start gets a minute.
        ("retrain-rollout-advance", 60),
        # A check of a large window takes minutes: the last one to start gets five.
        ("retrain-drift-monitor", 300),
    ],
)
@pytest.mark.parametrize("target", TARGETS)
def test_no_model_starts_so_late_that_the_jobs_deadline_kills_it(
    rendered: Render, find: Find, target: str, name: str, margin: int
) -> None:
    # --deadline stops starting models `margin` before the Job's deadline sends its SIGTERM,
    # and a model in progress at a SIGTERM gets at least a minute's grace to finish.
    cronjob = find(rendered(target), "CronJob", name)
    job = cronjob["spec"]["jobTemplate"]["spec"]
    pod = pod_specs(cronjob)[0][1]
    command = pod["containers"][0]["command"]
    deadline = parse_duration(command[command.index("--deadline") + 1])
    assert job["activeDeadlineSeconds"] - deadline >= margin
    assert pod["terminationGracePeriodSeconds"] >= 60


@pytest.mark.integration
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", ["retrain-drift-monitor", "retrain-rollout-advance"])
def test_a_retried_pod_counts_its_deadline_from_the_jobs_first_pod(
    rendered: Render, find: Find, target: str, name: str
) -> None:
    # A pod the Job retries started its own --deadline afresh while the Job's
    # activeDeadlineSeconds went on: its last checks (or ticks) were cut short. Every pod of
    # one Job must give the command the same pass id, one no other Job has: the Job's uid,
    # which the Job controller sets on its pods (the downward API reads it; no API access).
    cronjob = find(rendered(target), "CronJob", name)
    container = pod_specs(cronjob)[0][1]["containers"][0]
    command = container["command"]
    assert "--deadline" in command
    given = command[command.index("--pass-id") + 1]
    assert given.startswith("$(") and given.endswith(")")  # the kubelet expands it
    env = {e["name"]: e for e in container.get("env", [])}
    source = env[given[2:-1]]["valueFrom"]["fieldRef"]["fieldPath"]
    assert source == "metadata.labels['batch.kubernetes.io/controller-uid']"


@pytest.mark.integration
@pytest.mark.parametrize("target", TARGETS)
def test_a_monitor_pass_stopped_by_sigterm_has_time_to_finish_its_checks(
    rendered: Render, find: Find, target: str
) -> None:
    # The pass lets the checks in progress finish with their rollout ticks: the 30 s default
    # grace period would kill a check of a large window, and a tick with its lock held.
    cronjob = find(rendered(target), "CronJob", "retrain-drift-monitor")
    assert pod_specs(cronjob)[0][1]["terminationGracePeriodSeconds"] >= 120


@pytest.mark.integration
def test_on_dev_every_cronjob_that_reads_the_store_mounts_it(rendered: Render, find: Find) -> None:
    # The dev store is a volume: a CronJob whose command reads a model's store must mount it
    # where the configs say it is. The schedule reconciler talks to KFP only.
    objs = rendered("overlays/dev")
    models = find(objs, "ConfigMap", "retrain-models")["data"]
    roots = {yaml.safe_load(text)["storage_root"] for text in models.values()}
    assert roots == {"/var/lib/retrain/store"}
    for name in ("retrain-drift-monitor", "retrain-rollout-advance"):
        pod = pod_specs(find(objs, "CronJob", name))[0][1]
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in pod["volumes"]
            if "persistentVolumeClaim" in v
        }
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        stores = [n for n, claim in claims.items() if claim == "retrain-store"]
        assert [mounts.get(n) for n in stores] == ["/var/lib/retrain"], name


@pytest.mark.integration
def test_a_models_key_that_is_not_its_model_or_not_valid_is_caught(
    rendered: Render, find: Find
) -> None:
    objs = rendered("overlays/gcp")
    models = find(objs, "ConfigMap", "retrain-models")
    text = models["data"]["loans.yaml"]
    models["data"] = {"fraud.yaml": text, "broken.yaml": "name: broken\n"}
    messages = [f.message for f in consistency_findings(objs)]
    assert any("key 'fraud.yaml' holds model 'loans'" in m for m in messages)
    assert "broken.yaml: task: required key is missing" in messages


def _add_model(objs: Objs, find: Find, name: str, deployment: str, mode: str = "") -> None:
    """A second model in the models ConfigMap: the loans config renamed."""
    models = find(objs, "ConfigMap", "retrain-models")
    raw = yaml.safe_load(models["data"]["loans.yaml"])
    raw["name"] = name
    raw["deploy"]["deployment_name"] = deployment
    if mode:
        raw["deploy"]["mode"] = mode
    models["data"][f"{name}.yaml"] = yaml.safe_dump(raw, sort_keys=False)


@pytest.mark.integration
def test_each_models_deployment_must_be_the_deployers_and_exist(
    rendered: Render, find: Find
) -> None:
    objs = rendered("overlays/gcp")
    _add_model(objs, find, "fraud", "fraud")
    messages = [f.message for f in consistency_findings(objs)]
    assert any("none named models/fraud" in m for m in messages)
    assert any("must include 'fraud' in namespace 'models'" in m for m in messages)
    assert any("model 'fraud'" in m for m in messages)

    # Served: the deployer may patch it, and it exists (a copy of the loans deployment).
    rule = find(objs, "Role", "retrain-deployer")["rules"][0]
    rule["resourceNames"] = ["loans", "fraud"]
    fraud = copy.deepcopy(find(objs, "SeldonDeployment", "loans"))
    fraud["metadata"]["name"] = "fraud"
    objs.append(fraud)
    assert consistency_findings(objs) == []

    # A name no model deploys to is one object too many for the deployer.
    rule["resourceNames"] = ["loans", "fraud", "housing"]
    messages = [f.message for f in consistency_findings(objs)]
    assert messages == [
        "resourceNames ['housing'] are no deployment a model patches in 'models' "
        "(deploy.deployment_name of a model in deploy.mode kubernetes): name only the "
        "deployments the models patch"
    ]


@pytest.mark.integration
def test_a_gitops_model_needs_no_deployer_rule_nor_a_deployment_here(
    rendered: Render, find: Find
) -> None:
    # Its SeldonDeployment lives in the repository it pushes to; its deployer patches nothing.
    objs = rendered("overlays/gcp")
    _add_model(objs, find, "fraud", "fraud", mode="gitops")
    assert consistency_findings(objs) == []
    # Naming it for the deployer anyway is one permission too many.
    find(objs, "Role", "retrain-deployer")["rules"][0]["resourceNames"] = ["loans", "fraud"]
    assert [f.message for f in consistency_findings(objs)] == [
        "resourceNames ['fraud'] are no deployment a model patches in 'models' "
        "(deploy.deployment_name of a model in deploy.mode kubernetes): name only the "
        "deployments the models patch"
    ]


@pytest.mark.integration
def test_a_deployer_role_it_cannot_use_is_caught(rendered: Render, find: Find) -> None:
    # Unbound, or without patch: the first tick's patch would be refused (403).
    objs = rendered("overlays/gcp")
    assert consistency_findings(objs) == []
    binding = find(objs, "RoleBinding", "retrain-deployer")
    binding["subjects"][0]["name"] = "someone-else"
    messages = [f.message for f in consistency_findings(objs)]
    assert any("no RoleBinding in 'models' binds this Role" in m for m in messages)
    assert any("must include 'loans' in namespace 'models'" in m for m in messages)
    binding["subjects"][0]["name"] = "retrain-deployer"
    find(objs, "Role", "retrain-deployer")["rules"][0]["verbs"] = ["get"]
    messages = [f.message for f in consistency_findings(objs)]
    assert any("verbs lack ['patch']" in m for m in messages)


@pytest.mark.integration
def test_two_models_patching_one_deployment_are_caught(rendered: Render, find: Find) -> None:
    objs = rendered("overlays/gcp")
    _add_model(objs, find, "fraud", "loans")
    messages = [f.message for f in consistency_findings(objs)]
    assert any("models 'loans' and 'fraud' both deploy to models/loans" in m for m in messages)
