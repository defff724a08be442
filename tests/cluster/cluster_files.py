"""The cluster files under test, the versions they must agree with, and a typo maker for tests."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
LAUNCHER_YAML = CLUSTER / "aws-gpu.yaml"
DOCKERFILE = CLUSTER / "Dockerfile"
KUBERAY_FILES = sorted((CLUSTER / "kuberay").glob("*.yaml"))
RAYJOB_FILES = [p for p in KUBERAY_FILES if p.name.startswith("rayjob-")]

# pyproject.toml is the one source of the versions; every cluster file must agree with it.
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
RAY_VERSION = re.fullmatch(r"ray\[[^\]]*\]==(\S+)", PYPROJECT["project"]["optional-dependencies"]["ray"][0])[1]
PY_TAG = "py311"  # the image's Python; test_cluster_versions checks requires-python allows it
RAY_IMAGE = f"rayproject/ray:{RAY_VERSION}-{PY_TAG}-gpu"  # Ray's GPU image (no ray-ml after 2.49)
TERAN_IMAGE_TAG_SUFFIX = f"-ray{RAY_VERSION}-{PY_TAG}-gpu"  # the tag of cluster/Dockerfile's image
IMAGE_ROOT = "/home/ray/teran"  # where cluster/Dockerfile puts the repository's files


def load_yaml(path: Path) -> dict[str, Any]:
    """The single YAML document in ``path``."""
    return yaml.safe_load(path.read_text())


def renamed(doc: dict[str, Any], path: tuple[str | int, ...], new_key: str) -> dict[str, Any]:
    """A copy of ``doc`` with the key at ``path`` renamed to ``new_key``, its value kept: a typo.

    Example:
        >>> renamed({"spec": {"groups": [{"minReplicas": 0}]}}, ("spec", "groups", 0, "minReplicas"), "minReplica")
        {'spec': {'groups': [{'minReplica': 0}]}}
    """
    out = copy.deepcopy(doc)
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    parent[new_key] = parent.pop(path[-1])
    return out
