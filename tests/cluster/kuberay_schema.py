"""Offline validation of Kubernetes manifests against KubeRay v1.7.0's CRD schemas, typos rejected.

The CRDs' raw ``openAPIV3Schema`` lets unknown fields through (the API server drops them unless the
client asks for strict field validation), so :func:`strict` adds ``additionalProperties: false``
to every object schema that lists its ``properties``. The CRD does not describe ``metadata``;
:data:`OBJECT_META` does, with KubeRay's own name rules (a DNS-1035 label of at most 53 characters
for a RayCluster, 47 for a RayJob, whose cluster name gets a 6-character suffix).
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema
import yaml
from cluster_files import REPO

CRD_DIR = REPO.parent / "shared" / "kuberay-crds"  # CI puts a copy of shared/ beside the clone
CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}
CRD_API_VERSION = "ray.io/v1"
NAME_LIMITS = {"RayCluster": 53, "RayJob": 47, "ServiceAccount": 253}

DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

OBJECT_META: dict[str, Any] = {
    "type": "object",
    "required": ["name", "namespace"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": DNS1035_LABEL},
        "namespace": {"type": "string", "pattern": DNS1123_LABEL, "maxLength": 63},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
}

# core/v1 ServiceAccount has no CRD here; these are all of its top-level fields.
SERVICE_ACCOUNT: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "v1"},
        "kind": {"const": "ServiceAccount"},
        "metadata": OBJECT_META,
        "automountServiceAccountToken": {"type": "boolean"},
        "imagePullSecrets": {"type": "array"},
        "secrets": {"type": "array"},
    },
}


def strict(schema: Any) -> Any:
    """A copy of an OpenAPI schema in which every object that lists ``properties`` rejects others.

    Objects that already say what extra keys may hold (``additionalProperties``: maps such as
    labels or resource limits) and objects marked ``x-kubernetes-preserve-unknown-fields`` are
    left open, as the API server leaves them.

    Example:
        >>> out = strict({"properties": {"a": {"properties": {}}, "labels": {"additionalProperties": {}}}})
        >>> out["additionalProperties"], out["properties"]["a"]["additionalProperties"], out["properties"]["labels"]
        (False, False, {'additionalProperties': {}})
    """
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    closable = "properties" in out and "additionalProperties" not in out
    if closable and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator(kind: str) -> jsonschema.protocols.Validator:
    """The strict validator for ``kind`` (``RayCluster`` or ``RayJob``) at API version ``v1``.

    Raises:
        FileNotFoundError: the CRD folder is missing (it lives in ``../shared/kuberay-crds``).
    """
    path = CRD_DIR / CRD_FILES[kind]
    if not path.exists():
        raise FileNotFoundError(f"KubeRay CRD {path} is missing: expected shared/ beside the repository")
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # 2 MB: C parser
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == CRD_API_VERSION.split("/")[1]]
    return jsonschema.Draft202012Validator(strict(version["schema"]["openAPIV3Schema"]))


def _where(error: jsonschema.ValidationError) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path]
    return "".join(parts).lstrip(".") or "<root>"


def _errors(validator: jsonschema.protocols.Validator, doc: Any, prefix: str = "") -> list[str]:
    found = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{prefix}{_where(e)}: {e.message}" for e in found]


def manifest_problems(doc: dict[str, Any]) -> list[str]:
    """Every schema problem in one manifest: kind and apiVersion, metadata, then the CRD schema.

    Example:
        >>> manifest_problems({"apiVersion": "ray.io/v1", "kind": "RayJob",
        ...                    "metadata": {"name": "x", "namespace": "teran"}, "spec": {"jobID": "x"}})
        ["spec: Additional properties are not allowed ('jobID' was unexpected)"]
    """
    kind = doc.get("kind")
    if kind == "ServiceAccount":
        return _errors(jsonschema.Draft202012Validator(SERVICE_ACCOUNT), doc)
    if kind not in CRD_FILES:
        return [f"kind: got {kind!r}, expected one of {sorted(CRD_FILES)} or 'ServiceAccount'"]
    problems = []
    if doc.get("apiVersion") != CRD_API_VERSION:
        problems.append(f"apiVersion: got {doc.get('apiVersion')!r}, expected {CRD_API_VERSION!r}")
    problems += _errors(jsonschema.Draft202012Validator(OBJECT_META), doc.get("metadata", {}), "metadata.")
    name = doc.get("metadata", {}).get("name", "")
    if len(name) > NAME_LIMITS[kind]:
        problems.append(f"metadata.name: {name!r} has {len(name)} characters, KubeRay allows {NAME_LIMITS[kind]}")
    return problems + _errors(crd_validator(kind), doc)
