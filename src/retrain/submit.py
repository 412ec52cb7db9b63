"""`retrain submit`: compile the cluster pipeline and start one run on a KFP endpoint.

    retrain submit --host https://kubeflow.example.com/pipeline --config loans.yaml --window 7

The pipeline is compiled on the spot with the cluster settings (`ClusterOptions`: non-root
user, /tmp scratch volume, pod labels, timeouts, and in ``deploy.mode: kubernetes`` the
deployer's token for the deploy step only) and the components image pinned by tag and,
optionally, digest. The run gets the same three parameters as a local run: the normalised
config text, the window id and a run id, so the step records in the store are named the same
way wherever the run happened. It runs as the pipeline runner's service account (KFP v2 sets
the account per run, not per step).

``--window auto`` submits what a recurring run submits: the pipeline's resolve task picks the
newest complete window at the run's time and takes the run lease, and the run id (unless
given) becomes ``w<window>-<KFP run id>``.

Errors keep the project's exit codes: a bad config, window or an API refusal (401/403/4xx) is
a `ValidationError` (2); an unreachable endpoint, 429 or 5xx is a `TransientError` (75).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from retrain.config import Config, load_config
from retrain.errors import EXIT_OK, TransientError, ValidationError

__all__ = [
    "DEFAULT_EXPERIMENT",
    "SubmittedRun",
    "add_commands",
    "check_cluster_paths",
    "submit_run",
]

#: The KFP experiment runs are filed under unless told otherwise.
DEFAULT_EXPERIMENT = "retrain"

# Config keys that name locations the pipeline pods must reach.
_LOCATION_KEYS = (
    ("storage_root",),
    ("data", "uri"),
    ("labels", "uri"),
    ("deploy", "gitops_repo"),
)


@dataclass(frozen=True)
class SubmittedRun:
    """A run started on a KFP endpoint.

    Attributes:
        run_id: retrain's run id (the pipeline parameter; names ``runs/<run_id>/`` in the store).
            ``auto``: the pipeline derives it from the window it resolves and the KFP run id.
        window_id: the normalised window id the run processes, or ``auto`` (resolved by the
            pipeline when it runs).
        kfp_run_id: the id the KFP API gave the run.
        experiment_id: the KFP experiment it was filed under.
        url: the run's page in the KFP UI.
        package: where the compiled pipeline was kept ("" when it went to a temporary file).
    """

    run_id: str
    window_id: str
    kfp_run_id: str
    experiment_id: str
    url: str
    package: str


def check_cluster_paths(raw: Mapping[str, Any], source: str) -> None:
    """Refuse relative locations in a config meant for the cluster.

    `load_config` resolves relative paths against the config file's directory, which is right
    on this machine and meaningless in a pod. Locations must be URIs (``gs://``) or absolute
    paths mounted into the pods (the dev overlay's volume).
    """
    problems = []
    for path in _LOCATION_KEYS:
        value: Any = raw
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if isinstance(value, str) and "://" not in value and not value.startswith("/"):
            problems.append(
                f"{'.'.join(path)}: {value!r} is relative; on the cluster use a gs:// URI or "
                "an absolute path mounted into the pods"
            )
    if problems:
        raise ValidationError(f"{source} cannot run on a cluster as it is", problems)


def submit_run(
    cfg: Config,
    window: str,
    *,
    host: str | None,
    image: str,
    image_digest: str | None = None,
    cluster: Any = None,
    service_account: str | None = None,
    namespace: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    run_id: str | None = None,
    pipeline_root: str | None = None,
    token: str | None = None,
    package_path: str | Path | None = None,
    dry_run: bool = False,
    as_of: str | None = None,
) -> SubmittedRun:
    """Compile the cluster pipeline for `cfg` and start a run for `window` on `host`.

    Args:
        cluster: a ``retrain_pipelines.retrain_pipeline.ClusterOptions``; default: its
            defaults, with the deployer's token for ``deploy.mode: kubernetes``.
        service_account: the run's Kubernetes service account (default: the pipeline runner).
        namespace: the KFP namespace (multi-user Kubeflow: the profile namespace).
        token: a bearer token for the KFP API (e.g. a projected service-account token).
        package_path: keep the compiled pipeline here (default: a temporary file).
        dry_run: compile and return without contacting `host`.
        as_of: the run's time for the label join (the pipeline's ``as_of``); default: the
            label task's own clock.
    """
    from retrain_pipelines.retrain_pipeline import (
        DEPLOYER_TOKEN_SECRET,
        PIPELINE_SERVICE_ACCOUNT,
        ClusterOptions,
        compile_pipeline,
        pinned_image,
    )

    from retrain import steps
    from retrain.data.windows import as_of_text, parse_as_of, parse_window
    from retrain.deploy import require_deploy_target
    from retrain.runner import new_run_id
    from retrain.steps.resolve_rules import AUTO, check_keyword

    # Before compiling or contacting the cluster: deploy would fail only after training.
    require_deploy_target(cfg, cluster=True)
    check_keyword("window_id", window)
    if window == AUTO:
        # Passed through: the pipeline resolves it at run time, as for a recurring run.
        window_id = AUTO
        run_id = run_id or AUTO
    else:
        window_id = parse_window(cfg.data, window).id
        run_id = run_id or new_run_id(window_id)
    check_keyword("run_id", run_id)
    if run_id != AUTO:
        steps.check_run_id(run_id)
    if cluster is None:
        token_secret = DEPLOYER_TOKEN_SECRET if cfg.deploy.mode == "kubernetes" else None
        cluster = ClusterOptions(deployer_token_secret=token_secret)
    try:
        image_ref = pinned_image(image, image_digest)
    except ValueError as err:
        raise ValidationError(f"--image/--image-digest: {err}") from None
    if not dry_run:
        _check_host(host)
    arguments = {"config_yaml": cfg.to_yaml(), "window_id": window_id, "run_id": run_id}
    if as_of:
        arguments["as_of"] = as_of_text(parse_as_of(cfg.data, as_of))
    with _package(package_path) as package:
        compile_pipeline(package, image_ref, cluster=cluster)
        kept = str(package) if package_path is not None else ""
        if dry_run:
            return SubmittedRun(run_id, window_id, "", "", "", kept)
        with _kfp_errors(str(host)):
            client = _client(str(host), token, namespace)
            result = client.create_run_from_pipeline_package(
                str(package),
                arguments=arguments,
                run_name=_run_name(cfg, window_id, run_id),
                experiment_name=experiment,
                namespace=namespace,
                pipeline_root=pipeline_root,
                service_account=service_account or PIPELINE_SERVICE_ACCOUNT,
            )
        experiment_id = str(getattr(result.run_info, "experiment_id", "") or "")
        url = f"{str(host).rstrip('/')}/#/runs/details/{result.run_id}"
        return SubmittedRun(run_id, window_id, str(result.run_id), experiment_id, url, kept)


def _run_name(cfg: Config, window_id: str, run_id: str) -> str:
    """The KFP run's display name: the run id, or for an "auto" run the model and time.

    ("auto" is `retrain.steps.resolve_rules.AUTO`, spelt out here so the CLI starts without pandas.)
    """
    if run_id != "auto":
        return run_id
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{cfg.name}-{'auto' if window_id == 'auto' else 'w' + window_id}-{stamp}"


def _check_host(host: str | None) -> None:
    if not host:
        raise ValidationError(
            "--host is required (the KFP API endpoint, e.g. http://localhost:8080)"
        )
    if not host.startswith(("http://", "https://")):
        raise ValidationError(f"--host {host!r} must start with http:// or https://")


@contextlib.contextmanager
def _package(path: str | Path | None) -> Iterator[Path]:
    if path is not None:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        yield out
        return
    with tempfile.TemporaryDirectory(prefix="retrain-submit-") as tmp:
        yield Path(tmp) / "retrain-pipeline.yaml"


def _client(host: str, token: str | None, namespace: str | None) -> Any:
    import kfp

    with warnings.catch_warnings():
        # "This client only works with Kubeflow Pipeline v2.0.0-beta.2 and later versions."
        warnings.simplefilter("ignore", FutureWarning)
        if namespace:
            return kfp.Client(host=host, existing_token=token, namespace=namespace)
        return kfp.Client(host=host, existing_token=token)


@contextlib.contextmanager
def _kfp_errors(host: str) -> Iterator[None]:
    """Map the KFP client's failures to the project's exit-code errors."""
    import urllib3
    from kfp_server_api.exceptions import ApiException

    try:
        yield
    except ApiException as err:
        status = int(err.status or 0)
        said = _api_message(err.body) or str(err.reason or "")
        msg = f"KFP API at {host} answered HTTP {status}: {said}"
        if status in (0, 429) or status >= 500:
            raise TransientError(msg) from None
        if status in (401, 403):
            raise ValidationError(
                msg,
                [
                    "check the token (--token-file) and that the account may create runs and "
                    "experiments in the namespace (Role retrain-monitor shows the rules)"
                ],
            ) from None
        raise ValidationError(msg) from None
    except urllib3.exceptions.HTTPError as err:
        raise TransientError(f"cannot reach the KFP API at {host}: {err}") from None


def _api_message(body: Any) -> str:
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if not isinstance(body, str) or not body.strip():
        return ""
    try:
        parsed = yaml.safe_load(body)  # JSON is YAML
    except yaml.YAMLError:
        return body.strip().splitlines()[0][:300]
    if isinstance(parsed, dict):
        return str(parsed.get("message") or parsed.get("error") or body.strip())[:300]
    return body.strip()[:300]


# --- command line -----------------------------------------------------------------------------


def _split_mount(value: str, flag: str) -> tuple[str, str]:
    name, sep, path = value.partition(":")
    if not sep or not name or not path.startswith("/"):
        raise ValidationError(f"{flag} {value!r}: expected NAME:/absolute/path")
    return name, path


def _cluster_from_args(args: argparse.Namespace, cfg: Config) -> Any:
    from retrain_pipelines.retrain_pipeline import DEPLOYER_TOKEN_SECRET, ClusterOptions

    secrets: dict[str, list[tuple[str, str]]] = {}
    for item in args.secret or []:
        step, sep, mount = item.partition("=")
        if not sep:
            raise ValidationError(f"--secret {item!r}: expected STEP=NAME:/path")
        secrets.setdefault(step, []).append(_split_mount(mount, "--secret"))
    token = args.deployer_token_secret
    if token is None:
        token = DEPLOYER_TOKEN_SECRET if cfg.deploy.mode == "kubernetes" else ""
    try:
        return ClusterOptions(
            pvc=_split_mount(args.pvc, "--pvc") if args.pvc else None,
            secret_volumes={step: tuple(mounts) for step, mounts in secrets.items()},
            deployer_token_secret=token or None,
            image_pull_secrets=tuple(args.image_pull_secret or ()),
        )
    except ValueError as err:
        raise ValidationError(f"cluster options: {err}") from None


def _cmd_submit(args: argparse.Namespace) -> int:
    from retrain_components import DEFAULT_IMAGE

    path = Path(args.config)
    cfg = load_config(path)
    check_cluster_paths(yaml.safe_load(path.read_text()) or {}, str(path))
    token = None
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as err:
            raise ValidationError(f"--token-file {args.token_file}: {err}") from None
    run = submit_run(
        cfg,
        args.window,
        host=args.host,
        image=args.image or DEFAULT_IMAGE,
        image_digest=args.image_digest,
        cluster=_cluster_from_args(args, cfg),
        service_account=args.service_account,
        namespace=args.namespace,
        experiment=args.experiment,
        run_id=args.run_id,
        pipeline_root=args.pipeline_root,
        token=token,
        package_path=args.output,
        dry_run=args.dry_run,
        as_of=args.as_of,
    )
    if args.dry_run:
        where = run.package or "a temporary file (pass --output to keep it)"
        print(f"compiled {where} for window {run.window_id}, run {run.run_id}; not submitted")
        return EXIT_OK
    if run.window_id == "auto" or run.run_id == "auto":
        window = "the newest complete window" if run.window_id == "auto" else run.window_id
        named = "<window>" if run.window_id == "auto" else run.window_id
        rid = f"w{named}-{run.kfp_run_id}" if run.run_id == "auto" else run.run_id
        print(
            f"submitted a scheduled-style run (KFP run {run.kfp_run_id}): it resolves {window} "
            f"when it starts and records as run {rid}"
        )
    else:
        print(f"submitted window {run.window_id} as run {run.run_id} (KFP run {run.kfp_run_id})")
    print(f"  {run.url}")
    return EXIT_OK


def add_commands(subparsers: Any) -> None:
    """Add `retrain submit` to the CLI."""
    s = subparsers.add_parser(
        "submit",
        help="compile the pipeline for the cluster and start a run on a KFP endpoint",
        description=__doc__.splitlines()[0],
    )
    s.add_argument("--host", help="KFP API endpoint, e.g. http://localhost:8080 (port-forward)")
    s.add_argument("--config", required=True, help="config file (cluster locations only)")
    s.add_argument(
        "--window",
        required=True,
        help="window id: a period number or an ISO date; 'auto': the pipeline picks the newest "
        "complete window when it runs, as a recurring run does",
    )
    s.add_argument(
        "--run-id",
        help="retrain run id (default: derived from window and time; with --window auto, "
        "from the resolved window and the KFP run id)",
    )
    s.add_argument(
        "--as-of",
        help="the run's time for the label join: labels dated later are left out (an ISO "
        "time, or a period number for period sources; default: the label task's clock)",
    )
    s.add_argument("--image", help="components image with a pinned tag (default: this version)")
    s.add_argument("--image-digest", help="sha256:... digest to pin the image immutably")
    s.add_argument("--service-account", help="run as this service account (retrain-pipeline)")
    s.add_argument("--namespace", help="KFP namespace (multi-user Kubeflow profile)")
    s.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="KFP experiment name")
    s.add_argument("--pipeline-root", help="where KFP keeps artifacts (e.g. gs://bucket/kfp)")
    s.add_argument("--token-file", help="bearer token for the KFP API (e.g. a projected token)")
    s.add_argument("--pvc", help="CLAIM:/path mounted into every step (dev overlay store)")
    s.add_argument(
        "--secret",
        action="append",
        help="STEP=SECRET:/path mounted into one step (repeatable)",
    )
    s.add_argument("--image-pull-secret", action="append", help="registry credentials Secret")
    s.add_argument(
        "--deployer-token-secret",
        help="Secret with the deployer's token for the deploy step (default: "
        "retrain-deployer-token in deploy.mode kubernetes, none in gitops; '' for none)",
    )
    s.add_argument("--output", help="keep the compiled pipeline in this file")
    s.add_argument("--dry-run", action="store_true", help="compile only; do not contact --host")
    s.set_defaults(func=_cmd_submit)
