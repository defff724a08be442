"""One Ray version everywhere: pyproject.toml's pin, the installed Ray, every image tag and rayVersion."""

from __future__ import annotations

import re

import pytest
import ray
from cluster_files import CLUSTER, DOCKERFILE, KUBERAY_FILES, LAUNCHER_YAML, PYPROJECT, RAY_VERSION, REPO

# Every way a Ray version is written in these files: image tags, rayVersion, pip pins, the image check.
VERSION_SPOTS = re.compile(
    r"rayproject/ray:(?P<image>[\w.]+?)-"
    r"|rayVersion:\s*\"?(?P<crd>[\w.]+)"
    r"|-ray(?P<tag>\d[\w.]*?)-py"
    r"|ray\[[\w,]+\]==(?P<pin>[\w.]+)"
    r"|ray\.__version__ == '(?P<check>[\w.]+)'"
)
FILES = [LAUNCHER_YAML, DOCKERFILE, *KUBERAY_FILES, CLUSTER / "README.md", REPO / "docs" / "cluster.md"]


def ray_versions_in(text: str) -> set[str]:
    """Every Ray version written in ``text``.

    Example:
        >>> sorted(ray_versions_in('FROM rayproject/ray:2.60.0-py311-gpu\\nrayVersion: "2.59.1"'))
        ['2.59.1', '2.60.0']
    """
    return {next(v for v in m.groups() if v) for m in VERSION_SPOTS.finditer(text)}


def test_installed_ray_is_the_pin():
    assert ray.__version__ == RAY_VERSION


def test_image_python_is_allowed_by_pyproject():
    assert PYPROJECT["project"]["requires-python"] == ">=3.11,<3.12", "the images are py311: change both together"


@pytest.mark.parametrize("path", [p for p in FILES if p.name != "serviceaccount.yaml"], ids=lambda p: p.name)
def test_file_names_only_the_pinned_ray(path):
    assert ray_versions_in(path.read_text()) == {RAY_VERSION}


def test_a_stale_version_is_caught():
    stale = LAUNCHER_YAML.read_text().replace(f"ray:{RAY_VERSION}-", "ray:2.49.0-")
    assert ray_versions_in(stale) == {"2.49.0"}
