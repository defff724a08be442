"""Every YAML config the repo ships loads and validates with the config class of the job it names."""

import dataclasses
import pathlib
import re
import types
import typing
from typing import Literal

import pytest

from jobs.config import BuildIndexJobConfig, CompressJobConfig, ConvertJobConfig, EncodeJobConfig, EvaluateJobConfig, SynthJobConfig
from jobs.demo_config import DemoJobConfig
from jobs.pipeline_plan import PipelineJobConfig
from jobs.train_config import DistillJobConfig, TrainJobConfig
from teran_core.config import ConfigError, load_config
from teran_core.retrieval import SearchConfig

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


# what the command line adds: the data jobs take their folders as --out and --root
REQUIRED = {"synth": ["output.uri=/tmp/out"], "convert": ["output.uri=/tmp/out", "convert.root=/tmp/src"]}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_config_is_valid(path):
    job = job_of(path)
    cfg = load_config(CLASSES[job], str(path), REQUIRED.get(job, []))
    assert type(cfg) is CLASSES[job]


def enumerated_fields(cls, prefix=""):
    """(dotted key, allowed values) of every field under the config dataclass ``cls`` that takes one of a
    fixed set of values (a ``Literal``, optionally ``| None``)."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        union = typing.get_origin(tp) in (typing.Union, types.UnionType)
        for option in (a for a in typing.get_args(tp) if a is not type(None)) if union else [tp]:
            if dataclasses.is_dataclass(option):
                yield from enumerated_fields(option, f"{prefix}{field.name}.")
            elif typing.get_origin(option) is Literal:
                yield f"{prefix}{field.name}", typing.get_args(option)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_every_enumerated_field_refuses_a_bad_value_at_load_naming_the_key_and_the_choices(path):
    job = job_of(path)
    fields = list(enumerated_fields(CLASSES[job]))
    for key, allowed in fields:
        bad = f"not-{allowed[0]}"
        with pytest.raises(ConfigError) as err:
            load_config(CLASSES[job], str(path), [*REQUIRED.get(job, []), f"{key}={bad}"])
        message = str(err.value)
        assert f"{key} (command line): got {bad!r}" in message and all(repr(a) in message for a in allowed), message


def test_enumerated_fields_include_each_jobs_choices():
    keys = {job: {key for key, _ in enumerated_fields(cls)} for job, cls in CLASSES.items()}
    assert {"two_stage.mode", "two_stage.padding", "two_stage.t2i_candidates", "storage.retry_mode"} <= keys["pipeline"]
    assert {"two_stage.mode", "storage.retry_mode"} <= keys["evaluate"]
    assert "model.alignment_mode" in keys["train"] and "compress.nbits" in keys["compress"], keys["compress"]


def test_a_bad_override_is_named_as_the_command_lines_not_the_files(tmp_path):
    path = tmp_path / "evaluate.yaml"
    path.write_text("two_stage:\n  mode: MrSW\n")
    with pytest.raises(ConfigError) as err:
        load_config(EvaluateJobConfig, str(path), ["two_stage.padding=maskd"])
    assert err.value.problems == [
        "two_stage.mode: got 'MrSW', expected one of 'MrSw', 'MrAVGw', 'MwSr', 'symm', 'sum', 'mean', 'scan-sentences'",
        "two_stage.padding (command line): got 'maskd', expected one of 'reference', 'masked'",
    ]
