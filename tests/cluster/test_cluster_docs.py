"""The cluster guide's commands name files and jobs that exist, so copying them works."""

from __future__ import annotations

import re

import pytest
from cluster_files import CLUSTER, REPO

GUIDES = [REPO / "docs" / "cluster.md", CLUSTER / "README.md", CLUSTER / "aws-gpu.yaml", CLUSTER / "Dockerfile"]
# a repository path as the guides write it: cluster/..., docs/..., configs/..., benchmarks/...
PATH = re.compile(r"(?<![\w/.$])((?:cluster|docs|configs|benchmarks)/[\w./*-]*\w)")
JOB = re.compile(r"python -m (jobs\.\w+)")


def paths_in(text: str) -> set[str]:
    """Repository paths written in ``text``.

    Example:
        >>> sorted(paths_in("kubectl apply -f cluster/kuberay/rayjob-encode.yaml; see docs/cluster.md."))
        ['cluster/kuberay/rayjob-encode.yaml', 'docs/cluster.md']
    """
    return set(PATH.findall(text))


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_paths_in_guide_exist(guide):
    missing = [p for p in sorted(paths_in(guide.read_text())) if not list(REPO.glob(p))]
    assert missing == [], f"{guide.name} names paths that do not exist"


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_jobs_in_guide_exist(guide):
    jobs = set(JOB.findall(guide.read_text()))
    assert [j for j in sorted(jobs) if not (REPO / (j.replace(".", "/") + ".py")).exists()] == []


def test_a_wrong_path_is_caught():
    assert paths_in("ray up -y cluster/aws-gpus.yaml") == {"cluster/aws-gpus.yaml"}
    assert not list(REPO.glob("cluster/aws-gpus.yaml"))
