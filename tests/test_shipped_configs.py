"""Every YAML config the repo ships loads and validates with the config class of the job it names."""

import pathlib
import re

import pytest

from teran_core.compress.run import CompressJobConfig
from teran_core.config import load_config
from teran_core.data.jobconfig import ConvertJobConfig, SynthJobConfig
from teran_core.demo import DemoJobConfig
from teran_core.distill import DistillJobConfig
from teran_core.encode import EncodeJobConfig
from teran_core.index.config import BuildIndexJobConfig
from teran_core.pipeline import PipelineJobConfig
from teran_core.recall.config import EvaluateJobConfig
from teran_core.retrieval import SearchConfig
from teran_core.train import TrainJobConfig

REPO = pathlib.Path(__file__).resolve().parents[1]
CLASSES = {
    "synth": SynthJobConfig, "convert": ConvertJobConfig, "train": TrainJobConfig, "encode": EncodeJobConfig,
    "build-index": BuildIndexJobConfig, "build_index": BuildIndexJobConfig, "evaluate": EvaluateJobConfig,
    "search": SearchConfig, "demo": DemoJobConfig, "pipeline": PipelineJobConfig, "compress": CompressJobConfig, "distill": DistillJobConfig,
}
SHIPPED = sorted([*REPO.glob("configs/*.yaml"), *REPO.glob("cluster/configs/*.yaml")])


def job_of(path: pathlib.Path) -> str:
    """The job a config belongs to, read from the command in its opening comment."""
    head = "".join(path.read_text().splitlines(keepends=True)[:3])
    match = re.search(r"(?:teran ([a-z-]+)(?: [a-z0-9]+)?|python -m jobs\.([a-z_]+)) --config", head)
    assert match, f"{path} does not open with the command that uses it"
    return match.group(1) or match.group(2)


def test_every_job_ships_a_config():
    assert {job_of(p).replace("_", "-") for p in SHIPPED} >= {"synth", "train", "encode", "build-index", "evaluate", "demo"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_config_is_valid(path):
    job = job_of(path)
    # what the command line adds: the data jobs take their folders as --out and --root
    overrides = {"synth": ["output.uri=/tmp/out"], "convert": ["output.uri=/tmp/out", "convert.root=/tmp/src"]}.get(job, [])
    cfg = load_config(CLASSES[job], str(path), overrides)
    assert type(cfg) is CLASSES[job]
