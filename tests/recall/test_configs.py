"""The shipped build-index, evaluate and search configs load strictly; bad values are named."""

import pytest

from jobs.config import BuildIndexJobConfig, EvaluateJobConfig
from teran_core.config import ConfigError, from_dict, load_config
from teran_core.index.config import IndexSection
from teran_core.retrieval import SearchConfig


@pytest.mark.parametrize(("path", "cls"), [
    ("configs/build_index.yaml", BuildIndexJobConfig),
    ("configs/evaluate.yaml", EvaluateJobConfig),
    ("configs/search.yaml", SearchConfig),
])
def test_shipped_configs_load_and_start_with_their_command(path, cls):
    cfg = load_config(cls, path)
    first = open(path).readline()
    assert first.startswith("# teran ") and f"--config {path}" in first
    if hasattr(cfg, "missing"):
        assert cfg.missing()  # the locations are left to the command line


def test_bad_values_are_all_reported():
    with pytest.raises(ConfigError) as err:
        from_dict(EvaluateJobConfig, {"eval": {"protocol": "coco-2k", "evaluators": ["exhaustive", "magic"], "k_sweep": [0]},
                                      "two_stage": {"t2i_candidates": "words"}})
    text = str(err.value)
    for needle in ("protocol: got 'coco-2k'", "evaluators: got ['exhaustive', 'magic']", "k_sweep: got [0]",
                   "two_stage.t2i_candidates: got 'words'"):
        assert needle in text
    with pytest.raises(ConfigError, match="index part 'images-words' is not known"):
        from_dict(IndexSection, {"parts": ["images-words"]})
