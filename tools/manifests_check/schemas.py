"""Schema checks: built-in kinds strictly for every supported Kubernetes version, the
SeldonDeployment with `retrain.deploy.seldon.validate_seldon`, CRDs with manifests/schemas/."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from retrain.errors import ValidationError

from .objects import _SELDON, KUBERNETES_VERSIONS, Finding, _where

_CRD_SCHEMAS: Mapping[tuple[str, str], str] = {
    ("kubeflow.org/v1beta1", "ScheduledWorkflow"): "scheduledworkflow.schema.json",
    ("argoproj.io/v1alpha1", "Application"): "argocd-application.schema.json",
}


def schema_findings(
    objs: Sequence[Mapping[str, Any]],
    *,
    schema_dir: Path,
    versions: Sequence[str] = KUBERNETES_VERSIONS,
) -> list[Finding]:
    """Every object against its schema: built-in kinds for each of `versions`, strictly."""
    from retrain.deploy.seldon import validate_seldon

    out: list[Finding] = []
    for obj in objs:
        key = (str(obj.get("apiVersion")), str(obj.get("kind")))
        where = _where(obj)
        if key == _SELDON:
            try:
                validate_seldon(obj)
            except ValidationError as err:
                out.extend(Finding("schema", where, p) for p in (err.problems or [str(err)]))
        elif key in _CRD_SCHEMAS:
            validator = _crd_validator(str(schema_dir / _CRD_SCHEMAS[key]))
            out.extend(Finding("schema", where, msg) for msg in _errors(validator, obj))
        else:
            for version in versions:
                validator = _builtin_validator(version, *key)
                if validator is None:
                    out.append(
                        Finding(
                            "schema",
                            where,
                            f"no schema for apiVersion {key[0]!r} kind {key[1]!r} in Kubernetes "
                            f"{version} (a custom resource needs a schema in manifests/schemas/)",
                        )
                    )
                    break
                out.extend(
                    Finding("schema", where, f"Kubernetes {version}: {msg}")
                    for msg in _errors(validator, obj)
                )
    return out


def _errors(validator: Any, obj: Mapping[str, Any]) -> list[str]:
    errors = sorted(validator.iter_errors(obj), key=lambda e: (e.json_path, e.message))
    return [f"{e.json_path}: {e.message}" for e in errors]


@functools.lru_cache(maxsize=8)
def _crd_validator(path: str) -> Any:
    import jsonschema

    try:
        schema = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValidationError(f"schema file not found: {path}") from None
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@functools.lru_cache(maxsize=256)
def _builtin_validator(version: str, api_version: str, kind: str) -> Any:
    """A strict validator from kubernetes-validate's schemas, or None if the kind is unknown.

    kubernetes-validate's own `validate` re-reads its 1.2 MB definitions file on every call
    and stops at the first error; this caches per (version, kind) and reports every error.
    """
    import jsonschema
    from kubernetes_validate import utils
    from packaging.version import Version
    from referencing import Registry, Resource

    known = [v for v in utils.all_versions() if Version(v) <= Version(version + ".999")]
    if not known or utils.major_minor(known[-1]) != version:
        raise ValidationError(
            f"kubernetes-validate has no schemas for Kubernetes {version}; "
            f"it has {sorted({utils.major_minor(v) for v in utils.all_versions()})}"
        )
    schema_dir = f"kubernetes-json-schema/v{known[-1]}-local-strict"
    # rbac.authorization.k8s.io/v1 -> rbac-v1; v1 -> v1 (as kubernetes-validate names files)
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(f"{schema_dir}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        return None
    definitions = utils.schema_contents(f"{schema_dir}/_definitions.json", version)
    registry: Registry = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)
