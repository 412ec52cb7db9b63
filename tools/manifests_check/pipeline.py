"""The pipeline package each kustomization ships in its ConfigMap, compiled for its cluster."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from retrain.config import Config, config_from_text
from retrain.errors import ValidationError

from .objects import (
    CONFIG_KEY,
    CONFIG_MAP,
    CONFIG_MOUNT,
    DEPLOYER_SERVICE_ACCOUNT,
    PIPELINE_KEY,
    PIPELINE_SERVICE_ACCOUNT,
    Finding,
    _containers,
    _where,
    kustomizations,
    pod_specs,
    render,
)


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
