"""cluster/kuberay/*.yaml validate against KubeRay v1.7.0's CRDs with unknown fields rejected."""

from __future__ import annotations

import copy

import pytest
from cluster_files import (
    IMAGE_ROOT,
    KUBERAY_FILES,
    RAY_VERSION,
    RAYJOB_FILES,
    TERAN_IMAGE_TAG_SUFFIX,
    load_yaml,
    renamed,
)
from kuberay_schema import CRD_DIR, manifest_problems

DOCS = {path.name: load_yaml(path) for path in KUBERAY_FILES}
CLUSTER_SPECS = {
    name: doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
    for name, doc in DOCS.items()
    if doc["kind"] in ("RayCluster", "RayJob")
}
SERVICE_ACCOUNT = DOCS["serviceaccount.yaml"]
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
needs_crds = pytest.mark.skipif(
    not CRD_DIR.is_dir(), reason=f"KubeRay CRD schemas not found at {CRD_DIR} (shared/ beside the repository)"
)


def test_all_kinds_are_here():
    kinds = sorted(doc["kind"] for doc in DOCS.values())
    assert kinds == ["RayCluster", "RayJob", "RayJob", "RayJob", "RayJob", "ServiceAccount"]
    assert {doc["metadata"]["labels"]["teran.io/job"] for doc in DOCS.values() if doc["kind"] == "RayJob"} == {
        "encode", "build-index", "evaluate", "train"
    }


@needs_crds
@pytest.mark.parametrize("name", list(DOCS))
def test_manifest_validates(name):
    assert manifest_problems(DOCS[name]) == []


def _group(i: int = 0) -> tuple:
    return ("workerGroupSpecs", i)


# (file, where the key is, its typo): top level, cluster spec, embedded PodSpec, metadata
TYPOS = [
    ("raycluster.yaml", ("spec", "rayVersion"), "rayVerison"),
    ("raycluster.yaml", ("spec", *_group(), "minReplicas"), "minReplica"),
    ("raycluster.yaml", ("spec", *_group(), "template", "spec", "tolerations", 0, "effect"), "efect"),
    ("raycluster.yaml", ("spec", "headGroupSpec", "template", "spec", "serviceAccountName"), "serviceAcountName"),
    ("serviceaccount.yaml", ("metadata", "annotations"), "annotation"),
] + [
    typo
    for path in RAYJOB_FILES
    for typo in [
        (path.name, ("spec", "shutdownAfterJobFinishes"), "shutdownAfterJobFinish"),
        (path.name, ("spec", "jobId"), "submissionId"),
        (path.name, ("spec", "rayClusterSpec", "enableInTreeAutoscaling"), "enableInTreeAutoScaling"),
        (path.name, ("spec", "rayClusterSpec", *_group(), "template", "spec", "containers", 0, "image"), "images"),
        (path.name, ("metadata", "namespace"), "namepsace"),
    ]
]


@needs_crds
@pytest.mark.parametrize(("name", "path", "typo"), TYPOS, ids=[f"{n}:{t}" for n, _, t in TYPOS])
def test_typo_is_rejected_naming_the_key(name, path, typo):
    problems = manifest_problems(renamed(DOCS[name], path, typo))
    assert any(f"Additional properties are not allowed ('{typo}' was unexpected)" in p for p in problems), problems


@needs_crds
def test_wrong_value_type_and_quantity_are_rejected():
    doc = copy.deepcopy(DOCS["rayjob-encode.yaml"])
    doc["spec"]["backoffLimit"] = "2"
    container = doc["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    container["resources"]["limits"]["memory"] = "12GB"  # Kubernetes spells it 12G or 12Gi
    problems = manifest_problems(doc)
    assert "spec.backoffLimit: '2' is not of type 'integer'" in problems
    where = "spec.rayClusterSpec.workerGroupSpecs[0].template.spec.containers[0].resources.limits.memory"
    assert any(p.startswith(f"{where}: '12GB' does not match") for p in problems), problems


@needs_crds  # manifest_problems validates against the CRD schemas first
def test_names_follow_kuberay_rules():
    doc = copy.deepcopy(DOCS["rayjob-encode.yaml"])
    doc["metadata"]["name"] = name = "teran-encode-" + "x" * 35
    assert f"metadata.name: {name!r} has 48 characters, KubeRay allows 47" in manifest_problems(doc)
    doc["metadata"]["name"] = "Teran_encode"
    assert "metadata.name: 'Teran_encode' does not match '^[a-z]([-a-z0-9]*[a-z0-9])?$'" in manifest_problems(doc)


@pytest.mark.parametrize("name", list(CLUSTER_SPECS))
def test_cluster_spec_follows_teran_rules(name):
    spec = CLUSTER_SPECS[name]
    assert spec["rayVersion"] == RAY_VERSION
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0", "the head must run no tasks"
    pods = [spec["headGroupSpec"]["template"]["spec"]] + [g["template"]["spec"] for g in spec["workerGroupSpecs"]]
    for pod in pods:
        # IRSA: every pod gets S3 credentials from the one annotated service account
        assert pod["serviceAccountName"] == SERVICE_ACCOUNT["metadata"]["name"]
        for container in pod["containers"]:
            assert container["image"].endswith(TERAN_IMAGE_TAG_SUFFIX), container["image"]
    for group in spec["workerGroupSpecs"]:
        assert 0 <= group["minReplicas"] <= group["maxReplicas"]
        (container,) = group["template"]["spec"]["containers"]
        limits, requests = container["resources"]["limits"], container["resources"]["requests"]
        gpus = limits.get("nvidia.com/gpu", 0)
        if gpus:  # extended resources: an integer count, requests equal to limits, and the GPU taint tolerated
            assert isinstance(gpus, int) and requests["nvidia.com/gpu"] == gpus
            assert GPU_TOLERATION in group["template"]["spec"]["tolerations"]


def test_every_manifest_is_in_the_service_accounts_namespace():
    assert {doc["metadata"]["namespace"] for doc in DOCS.values()} == {SERVICE_ACCOUNT["metadata"]["namespace"]}
    (role,) = SERVICE_ACCOUNT["metadata"]["annotations"].values()
    assert role.startswith("arn:aws:iam::") and ":role/" in role


@pytest.mark.parametrize("path", RAYJOB_FILES, ids=[p.name for p in RAYJOB_FILES])
def test_rayjob_resumes_instead_of_redoing(path):
    doc = load_yaml(path)
    labels, spec = doc["metadata"]["labels"], doc["spec"]
    job, run = labels["teran.io/job"], labels["teran.io/run"]
    # deterministic submission id from the job and run names, the same as the object's name
    assert spec["jobId"] == doc["metadata"]["name"] == f"teran-{job}-{run}"
    assert path.name == f"rayjob-{job}.yaml"
    module = job.replace("-", "_")
    assert spec["entrypoint"].startswith(f"python -m jobs.{module} --config {IMAGE_ROOT}/cluster/configs/{module}.yaml")
    assert f"/{run}" in spec["entrypoint"] or f"={run}" in spec["entrypoint"], "the run's output must carry its name"
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["backoffLimit"] >= 1, "a retry on a fresh cluster is what resuming is for"
    assert spec["submissionMode"] == "K8sJobMode"
