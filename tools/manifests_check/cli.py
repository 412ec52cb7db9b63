"""All checks together, per kustomization and standalone file, and the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from retrain.errors import EXIT_OK, EXIT_VALIDATION, ValidationError

from .consistency import consistency_findings
from .objects import KUBERNETES_VERSIONS, Finding, kustomizations, load_documents, render
from .pipeline import pipeline_findings, write_pipeline_packages
from .schemas import schema_findings
from .security import _rule_image_pinned, _rule_schedule_policy, security_findings


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
    package = sys.modules[__name__.rpartition(".")[0]]  # its docstring describes the checks
    p = argparse.ArgumentParser(
        prog="python -m tools.manifests_check",
        description=package.__doc__,
    )
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
