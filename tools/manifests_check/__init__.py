"""Validate the Kubernetes manifests without a cluster (`make manifests-check`).

    python -m tools.manifests_check [--manifests manifests] [--kubectl kubectl]

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
3. **consistency**: the ConfigMap's config is a valid retrain config with absolute locations;
   each key of the models ConfigMap is a valid config named after its model; every model has
   its own SeldonDeployment (with the config's serving image), and the deployer's Roles name
   exactly the models' deployments, each in its namespace.
4. **pipeline package**: the ConfigMap ships ``pipeline.yaml``, the pipeline compiled for this
   cluster (image, store volume, deployer token), which the drift monitor and the schedule
   reconciler submit; it must equal what the current code compiles (``--write-pipelines``).

The files under ``manifests/argocd/`` and ``manifests/examples/`` (applied separately, not by
kustomize) get the schema checks. Every check is a pure function of the rendered objects, so
a test can mutate one object and see the rule that catches it.

A development tool, not part of the ``retrain`` package: it needs the ``dev`` extra
(``kubernetes-validate``) and kubectl. Modules: `objects` (names, loading, pod specs),
`schemas`, `security`, `consistency`, `pipeline` (the shipped pipeline package) and `cli`
(all checks together, `main`).
"""

from __future__ import annotations

from .cli import check_files, check_manifests, check_objects, main
from .consistency import (
    BOOTSTRAP_MODEL_URI,
    BOOTSTRAP_VERSION,
    consistency_findings,
    initial_seldon_deployment,
)
from .objects import (
    CONFIG_KEY,
    CONFIG_MAP,
    CONFIG_MOUNT,
    DEPLOYER_SERVICE_ACCOUNT,
    KUBERNETES_VERSIONS,
    PIPELINE_KEY,
    PIPELINE_SERVICE_ACCOUNT,
    Finding,
    kustomizations,
    load_documents,
    pod_specs,
    render,
)
from .pipeline import (
    cluster_pipeline,
    compile_cluster_pipeline,
    pipeline_findings,
    write_pipeline_packages,
)
from .schemas import schema_findings
from .security import SECURITY_RULES, TOKEN_NEEDED, image_problem, security_findings

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
