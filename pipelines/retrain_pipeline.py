"""The retraining pipeline: resolve -> ingest -> label -> train -> evaluate -> [blessed] deploy.

`resolve` runs first and every later task takes the window id and run id from its outputs,
never from the raw run parameters: scheduled (recurring) runs pass ``"auto"`` for both, since
KFP v2 does not expand ``[[ScheduledTime]]`` macros, and resolve turns them into the newest
complete window and a run id derived from the KFP job id (`retrain.steps.resolve_rules`).
Explicit ids pass through unchanged.

The optional parameter ``as_of`` (an ISO time, or a period number for period sources) is the
run's time for the label join: labels dated after it have not arrived and are left out.
Empty (the default, and what scheduled runs pass): resolve outputs a scheduled run's own
instant (when it chose the window), and the label task joins as of that; explicit ids with an
empty ``as_of`` leave it to the label task's clock.

A scheduled run also takes the run lease in resolve, so it never overlaps a drift-launched run
(or refuses to start, exit 75). All tasks sit inside a `dsl.ExitHandler` whose exit task,
`release`, runs last whatever happened and frees the lease if this job took it. An exit task
cannot read the outputs of the tasks it guards: it finds the lease by the job id alone.

Policy lives here and nowhere else (asserted by tests/pipelines/test_compile.py):

- Retries only on steps whose failures are usually transient I/O and whose writes are
  idempotent: resolve, ingest and label read external sources (resolve writes only its own run
  record and a scheduled run's lease, which a retry of the same job keeps; a lease held by
  another run exits 75, so the retries also wait a few minutes for it), deploy writes the
  registry and the GitOps repo with create-only / compare-and-swap writes, release
  compare-and-swaps the lease. Train and evaluate are deterministic computations: a retry would
  fail the same way. KFP retries whatever the exit code, so the retries compile with no KFP
  backoff and the step launcher waits instead (`RETRY_BACKOFF`), knowing the exit code: a
  retry of a task whose earlier attempt failed on bad input (exit 2) exits 2 at once.
- Caching is off for every step, explicitly. Each step reads state that is not among its KFP
  inputs (the data source, the history store, the current champion), so a cache hit could
  silently serve a stale result: the classic KFP pitfall of an ingest step that "looks the same".
- Resources are requests/limits for the cluster; kfp.local ignores them.
- Cluster settings (`ClusterOptions`: pod user, scratch volume, volumes, secrets, labels,
  timeouts) go into the kfp-kubernetes platform spec; they are off unless asked for, so the
  kfp.local pipeline and the plain compiled YAML carry none.

Nothing here reads the environment: the image is an argument, the config is a run parameter.
No `from __future__ import annotations` here: KFP reads the pipeline signature's types.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfp import compiler, dsl
from retrain_components import DEFAULT_IMAGE, container_components, local_components

__all__ = [
    "DEPLOYER_TOKEN_SECRET",
    "PIPELINE_NAME",
    "PIPELINE_SERVICE_ACCOUNT",
    "RETRY_BACKOFF",
    "STEP_POLICY",
    "ClusterOptions",
    "build_pipeline",
    "compile_pipeline",
    "pinned_image",
]

PIPELINE_NAME = "retrain"

#: step -> retries, cpu request/limit, memory request/limit
STEP_POLICY: dict[str, dict[str, Any]] = {
    # Cheap: it reads the data source only when the window is "auto", and then only footers'
    # statistics, or the time column of row groups that span windows (CSV: streamed); about
    # 240 MiB at 50 windows (benchmarks/results/scale.md). The scheduler reserves the 256Mi
    # request; the limit is a ceiling, kept at ingest's so a source whose row groups span
    # every window (one time column read whole) does not get a scheduled run OOM-killed.
    "resolve": {"retries": 3, "cpu": ("100m", "1"), "memory": ("256Mi", "4Gi")},
    "ingest": {"retries": 3, "cpu": ("500m", "2"), "memory": ("1Gi", "4Gi")},
    "label": {"retries": 3, "cpu": ("500m", "2"), "memory": ("1Gi", "4Gi")},
    "train": {"retries": 0, "cpu": ("1", "4"), "memory": ("2Gi", "8Gi")},
    "evaluate": {"retries": 0, "cpu": ("1", "2"), "memory": ("1Gi", "4Gi")},
    "deploy": {"retries": 3, "cpu": ("250m", "1"), "memory": ("256Mi", "1Gi")},
    # A retry resumes the rollout from its state in the store; a busy lock or an unreachable
    # Prometheus exits 75.
    "rollout": {"retries": 3, "cpu": ("250m", "1"), "memory": ("512Mi", "2Gi")},
    # The exit task: reads and compare-and-swaps one small object (idempotent), so a retry is
    # safe and a failed release would otherwise hold the lease until it expires.
    "release": {"retries": 3, "cpu": ("100m", "1"), "memory": ("128Mi", "512Mi")},
}


#: The Kubernetes service account pipeline pods run as (manifests/base/serviceaccounts.yaml).
#: KFP v2 sets it per run, not per task: `retrain submit` and the recurring runs pass it.
PIPELINE_SERVICE_ACCOUNT = "retrain-pipeline"

#: A `kubernetes.io/service-account-token` Secret of the `retrain-deployer` service account
#: (manifests/base/serviceaccounts.yaml), mounted into the deploy task only.
DEPLOYER_TOKEN_SECRET = "retrain-deployer-token"

# Where the Kubernetes client looks for in-cluster credentials. Mounting the deployer's token
# here (deploy task only) makes the deploy step talk to the API as `retrain-deployer`, the one
# identity allowed to patch the SeldonDeployment; the rest of the run cannot.
_SA_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ClusterOptions:
    """Kubernetes settings of the pipeline's pods, compiled into the kfp-kubernetes spec.

    Attributes:
        run_as_user: numeric user (and group) of every step; the components image's USER.
        scratch_size: size limit of the emptyDir mounted at /tmp (KFP writes the component
            program there; the image's root filesystem is not for writing).
        timeout_seconds: active deadline of each step's pod.
        pvc: ``(claim, mount path)`` mounted into every step, e.g. the dev overlay's store.
        secret_volumes: ``{step: ((secret, mount path), ...)}``, e.g. git credentials for
            deploy. Steps not named get no secrets.
        deployer_token_secret: Secret holding the deployer's service-account token, mounted
            into the deploy step where the Kubernetes client finds in-cluster credentials
            (``deploy.mode: kubernetes``). None in GitOps mode: deploy needs no API access.
        image_pull_secrets: registry credentials for a private components image.
        pod_labels: labels on every step's pod (with ``retrain.dev/step``), to find and
            select a step's pods.
    """

    run_as_user: int = 10001
    scratch_size: str = "2Gi"
    timeout_seconds: int = 4 * 3600
    pvc: tuple[str, str] | None = None
    secret_volumes: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    deployer_token_secret: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    pod_labels: Mapping[str, str] = field(
        default_factory=lambda: {
            "app.kubernetes.io/part-of": "retrain",
            "app.kubernetes.io/component": "pipeline-step",
        }
    )

    def __post_init__(self) -> None:
        if isinstance(self.run_as_user, bool) or self.run_as_user < 1:
            raise ValueError(f"run_as_user must be a non-root uid (>= 1), got {self.run_as_user}")
        if self.timeout_seconds < 60:
            raise ValueError(f"timeout_seconds must be at least 60, got {self.timeout_seconds}")
        unknown = sorted(set(self.secret_volumes) - set(STEP_POLICY))
        if unknown:
            raise ValueError(
                f"secret_volumes names unknown steps {unknown}; steps: {list(STEP_POLICY)}"
            )
        mounts = [path for vols in self.secret_volumes.values() for _, path in vols]
        if self.pvc:
            mounts.append(self.pvc[1])
        for path in mounts:
            if not path.startswith("/") or path.rstrip("/") in ("", "/tmp", _SA_TOKEN_DIR):
                raise ValueError(
                    f"mount path {path!r} must be absolute and not /, /tmp or the "
                    "service-account token directory"
                )


def pinned_image(image: str, digest: str | None = None) -> str:
    """`image` (``repo:tag``) with an optional ``sha256:`` digest: ``repo:tag@sha256:...``.

    The tag keeps the reference readable in the UI; the digest makes it immutable. Raises
    ValueError for an unpinned reference (no tag, ``:latest``) or a malformed digest.
    """
    name, _, existing = image.partition("@")
    tail = name.rsplit("/", 1)[-1]
    if ":" not in tail or tail.endswith(":latest"):
        raise ValueError(f"image {image!r} must carry a pinned tag (not ':latest')")
    if existing and not _DIGEST.match(existing):
        raise ValueError(f"image {image!r} has a malformed digest (want sha256:<64 hex>)")
    if digest is None:
        return image
    if not _DIGEST.match(digest):
        raise ValueError(f"digest {digest!r} is not sha256:<64 lowercase hex digits>")
    if existing and existing != digest:
        raise ValueError(f"image {image!r} already pins a different digest than {digest!r}")
    return f"{name}@{digest}"


def _apply_cluster(task: Any, step: str, cluster: ClusterOptions) -> Any:
    from kfp import kubernetes  # kfp-kubernetes; only needed for cluster pipelines

    kubernetes.set_security_context(
        task,
        run_as_user=cluster.run_as_user,
        run_as_group=cluster.run_as_user,
        run_as_non_root=True,
    )
    kubernetes.empty_dir_mount(
        task, volume_name="tmp", mount_path="/tmp", size_limit=cluster.scratch_size
    )
    kubernetes.set_timeout(task, cluster.timeout_seconds)
    for key, value in sorted({**cluster.pod_labels, "retrain.dev/step": step}.items()):
        kubernetes.add_pod_label(task, key, value)
    if cluster.pvc:
        kubernetes.mount_pvc(task, pvc_name=cluster.pvc[0], mount_path=cluster.pvc[1])
    for secret, path in cluster.secret_volumes.get(step, ()):
        kubernetes.use_secret_as_volume(task, secret_name=secret, mount_path=path)
    if step == "deploy" and cluster.deployer_token_secret:
        kubernetes.use_secret_as_volume(
            task, secret_name=cluster.deployer_token_secret, mount_path=_SA_TOKEN_DIR
        )
    if cluster.image_pull_secrets:
        kubernetes.set_image_pull_secrets(task, list(cluster.image_pull_secrets))
    return task


#: The wait before a retry of a failed task, decided by the step launcher, which knows the
#: exit code (KFP's retry policy does not): 30 s, doubling, at most 10 minutes; none at all
#: after a permanent failure (exit 2), see `retrain.steps.attempts`.
RETRY_BACKOFF = ("30", "2", "600")


def _apply_policy(task: Any, step: str, retries: bool = True) -> Any:
    policy = STEP_POLICY[step]
    task.set_caching_options(enable_caching=False)
    if retries and policy["retries"]:
        # No backoff in KFP: the launcher waits where a wait helps (see RETRY_BACKOFF), so
        # a retry after a bad-input failure starts, finds it recorded and exits 2 at once.
        task.set_retry(num_retries=policy["retries"], backoff_duration="0s")
    cpu_req, cpu_lim = policy["cpu"]
    mem_req, mem_lim = policy["memory"]
    task.set_cpu_request(cpu_req).set_cpu_limit(cpu_lim)
    task.set_memory_request(mem_req).set_memory_limit(mem_lim)
    task.set_display_name(step)
    return task


def build_pipeline(
    image: str = DEFAULT_IMAGE,
    *,
    local: bool = False,
    cluster: ClusterOptions | None = None,
    image_digest: str | None = None,
) -> Any:
    """The pipeline with every component running in `image`.

    By default every step is a container component running the step launcher (the cluster
    packaging, `retrain_components.container_components`), with retries. `local=True` is for
    `kfp.local`: the same steps as lightweight components calling the same launcher, and no
    retries (kfp.local runs them in-process, and failing fast is the better policy on a
    laptop).

    `cluster` adds the Kubernetes settings of `ClusterOptions` to every step; `image_digest`
    pins the image by digest as well as tag (see `pinned_image`).
    """
    image = pinned_image(image, image_digest) if image_digest else image
    backoff = ["--retry-backoff", ",".join(RETRY_BACKOFF)]
    steps = (
        local_components(image)
        if local
        else container_components(
            image, {step: backoff for step, p in STEP_POLICY.items() if p["retries"]}
        )
    )
    ops = steps.ops

    def policy(task: Any, step: str) -> Any:
        task = _apply_policy(task, step, retries=not local)
        return _apply_cluster(task, step, cluster) if cluster is not None else task

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Retrain a model on history + a new data window, gate it against the "
        "champion, and roll it out as a Seldon canary.",
    )
    def retrain_pipeline(config_yaml: str, window_id: str, run_id: str, as_of: str = "") -> None:
        release = policy(
            ops["release"](config_yaml=config_yaml, job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER),
            "release",
        )
        # Everything else runs inside the handler, so `release` runs after it, however it ends.
        with dsl.ExitHandler(release, name="run"):
            resolve = policy(
                ops["resolve"](
                    config_yaml=config_yaml,
                    window_id=window_id,
                    run_id=run_id,
                    job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                    as_of=as_of,
                ),
                "resolve",
            )
            # From here on only the resolved ids: "auto" must never reach a step.
            window = resolve.outputs[steps.output("resolve", "resolved_window_id")]
            run = resolve.outputs[steps.output("resolve", "resolved_run_id")]
            ingest = policy(
                ops["ingest"](config_yaml=config_yaml, window_id=window, run_id=run), "ingest"
            )
            label = policy(
                ops["label"](
                    config_yaml=config_yaml,
                    window_id=window,
                    run_id=run,
                    dataset=ingest.outputs["dataset"],
                    as_of=resolve.outputs[steps.output("resolve", "resolved_as_of")],
                ),
                "label",
            )
            train = policy(
                ops["train"](
                    config_yaml=config_yaml,
                    window_id=window,
                    run_id=run,
                    labelled=label.outputs["labelled"],
                ),
                "train",
            )
            evaluate = policy(
                ops["evaluate"](
                    config_yaml=config_yaml,
                    run_id=run,
                    model=train.outputs["model"],
                    holdout=train.outputs["holdout"],
                ),
                "evaluate",
            )
            blessed = evaluate.outputs[steps.output("evaluate", "blessed")]
            with dsl.If(blessed == True, name="blessed"):  # noqa: E712
                deploy = policy(
                    ops["deploy"](
                        config_yaml=config_yaml, run_id=run, model=train.outputs["model"]
                    ),
                    "deploy",
                )
                policy(ops["rollout"](config_yaml=config_yaml, run_id=run).after(deploy), "rollout")

    return retrain_pipeline


def compile_pipeline(
    output: "str | Path",
    image: str = DEFAULT_IMAGE,
    *,
    cluster: ClusterOptions | None = None,
    image_digest: str | None = None,
) -> Path:
    """Write the pipeline YAML that the Kubeflow UI and the `kfp` CLI accept.

    With `cluster`, the file has a second YAML document: the kfp-kubernetes platform spec.
    """
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    pipeline = build_pipeline(image, cluster=cluster, image_digest=image_digest)
    compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(out))
    return out


#: For `kfp dsl compile --py pipelines/retrain_pipeline.py --output retrain.yaml`.
retrain_pipeline = build_pipeline()
