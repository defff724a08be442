"""Strict config loading: every problem is named with its file, key, value and expectation."""

import dataclasses
from typing import Literal

import pytest

from jobs.config import RayConfig
from teran_core.config import ConfigError, knob, load_config, parse_overrides, to_yaml
from teran_core.storage import StorageConfig


@dataclasses.dataclass
class Pool:
    size: int = knob(2, ge=1)  # actors
    fraction: float = knob(0.5, gt=0, le=1)  # CPU per actor
    mode: Literal["cpu", "gpu"] = "cpu"
    tags: list[str] = knob(factory=list)

    def check(self) -> list[str]:
        return ["mode: 'gpu' needs size >= 2"] if self.mode == "gpu" and self.size < 2 else []


@dataclasses.dataclass
class Job:
    pool: Pool = dataclasses.field(default_factory=Pool)
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)
    name: str = "job"


def write(tmp_path, text: str) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return str(path)


def test_loads_nested_sections_and_keeps_defaults(tmp_path):
    cfg = load_config(Job, write(tmp_path, "pool:\n  size: 4\n  tags: [a, b]\nname: enc\n"))
    assert cfg.pool == Pool(size=4, fraction=0.5, mode="cpu", tags=["a", "b"])
    assert cfg.name == "enc" and cfg.ray.address is None


def test_every_problem_is_reported_at_once_with_file_and_key(tmp_path):
    path = write(tmp_path, "pool:\n  szie: 3\n  fraction: 1.5\n  mode: tpu\nname: 7\nextra: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(Job, path)
    text = str(err.value)
    assert path in text
    assert "pool.szie: unknown key (did you mean 'size'?)" in text
    assert "pool.fraction: got 1.5, expected a value <= 1" in text
    assert "pool.mode: got 'tpu', expected one of 'cpu', 'gpu'" in text
    assert "name: got 7, expected str" in text
    assert "extra: unknown key" in text
    assert len(err.value.problems) == 5


def test_cross_field_check_and_wrong_types(tmp_path):
    with pytest.raises(ConfigError, match=r"pool.mode: 'gpu' needs size >= 2"):
        load_config(Job, write(tmp_path, "pool: {mode: gpu, size: 1}\n"))
    with pytest.raises(ConfigError, match=r"pool.size: got True, expected an integer"):
        load_config(Job, write(tmp_path, "pool: {size: true}\n"))
    with pytest.raises(ConfigError, match=r"pool: got 3, expected a mapping"):
        load_config(Job, write(tmp_path, "pool: 3\n"))
    with pytest.raises(ConfigError, match=r"storage.endpoint_override: got 'localhost:9000', expected a URL"):
        load_config(Job, write(tmp_path, "storage: {endpoint_override: 'localhost:9000'}\n"))


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Job, write(tmp_path, "pool: [1,\n"))
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        load_config(Job, write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(FileNotFoundError, match="config file .*missing.yaml does not exist"):
        load_config(Job, str(tmp_path / "missing.yaml"))


def test_overrides_apply_on_top_and_are_checked(tmp_path):
    path = write(tmp_path, "pool: {size: 4}\n")
    cfg = load_config(Job, path, ["pool.size=8", "pool.mode=gpu", "ray.address=null"])
    assert (cfg.pool.size, cfg.pool.mode, cfg.ray.address) == (8, "gpu", None)
    with pytest.raises(ConfigError, match=r"pool.size \(command line\): got 0"):
        load_config(Job, path, ["pool.size=0"])
    with pytest.raises(ConfigError, match="expected an override of the form"):
        parse_overrides(["pool.size"])


def test_yaml_round_trip(tmp_path):
    cfg = load_config(Job, write(tmp_path, "pool: {size: 3, tags: [x]}\n"))
    again = load_config(Job, write(tmp_path, to_yaml(cfg)))
    assert again == cfg


def test_config_loads_from_s3(s3_root):
    s3_root.join("configs", "job.yaml").write_text("pool: {size: 5}\n")
    cfg = load_config(Job, s3_root.join("configs", "job.yaml").uri, storage=s3_root.storage)
    assert cfg.pool.size == 5
