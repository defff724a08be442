"""The pipeline's stages and its config checks, from configs/pipeline.yaml as a user overrides it: no Ray."""

import pytest

from jobs.pipeline_plan import PipelineJobConfig, stages
from teran_core.config import ConfigError, load_config

CENTROID_PARTS = "index.parts=[images-global,captions-global,images-centroids,captions-centroids]"


def test_a_compressed_token_store_adds_a_compress_stage_that_the_index_and_evaluate_read():
    cfg = load_config(PipelineJobConfig, "configs/pipeline.yaml",
                      ["root=/r", "token_store=compressed", CENTROID_PARTS, "two_stage.union_with=centroids", "compress.nbits=1"])
    plan = stages(cfg)
    assert list(plan) == ["synth", "model", "encode", "compress", "build-index", "evaluate"]
    assert plan["compress"].config["paths"] == {"embeddings": "/r/embeddings", "output": "/r/embeddings-compressed"}
    assert plan["compress"].config["compress"]["nbits"] == 1
    assert plan["build-index"].config["paths"]["embeddings"] == "/r/embeddings-compressed"
    assert plan["evaluate"].inputs == ["/r/index", "/r/embeddings-compressed"]


def test_the_fp16_store_has_no_compress_stage():
    plan = stages(load_config(PipelineJobConfig, "configs/pipeline.yaml", ["root=/r"]))
    assert "compress" not in plan and plan["build-index"].config["paths"]["embeddings"] == "/r/embeddings"


@pytest.mark.parametrize(("overrides", "key", "what"), [
    # IVF-Flat token parts would keep a full-precision copy of every token beside the compressed store
    (["token_store=compressed", "two_stage.union_with=centroids"], "index.parts", "captions-words, images-regions with token_store: compressed"),
    (["token_store=compressed", CENTROID_PARTS], "two_stage", "candidates from 'tokens'"),
    ([CENTROID_PARTS], "index.parts", "captions-centroids, images-centroids with token_store: fp16"),
    (["two_stage.t2i_candidates=centroids"], "two_stage", "candidates from 'centroids'"),
])
def test_parts_and_candidates_that_do_not_fit_the_token_store_are_refused_at_load(overrides, key, what):
    with pytest.raises(ConfigError) as err:
        load_config(PipelineJobConfig, "configs/pipeline.yaml", ["root=/r", *overrides])
    assert f"- {key}" in str(err.value) and what in str(err.value)
