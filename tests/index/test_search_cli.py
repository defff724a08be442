"""``teran search`` on an index of embeddings made by a tiny real TERAN model."""

import pytest
import torch

from jobs import search
from teran_core.checkpoint import save_checkpoint
from teran_core.embedding_set import write_embedding_side
from teran_core.index.catalog import TeranIndex
from teran_core.index.config import IndexSection
from teran_core.index.run import build_index
from teran_core.model.config import TeranConfig
from teran_core.model.teran import TERAN
from teran_core.retrieval import TwoStageConfig, TwoStageRetriever
from teran_core.storage import resolve

TEXTS = ["a red dog next to a blue car", "two cats on a sofa", "a man riding a horse", "a bowl of fruit on a table"]


@pytest.fixture(scope="module")
def index_root(tmp_path_factory):
    root = resolve(str(tmp_path_factory.mktemp("search")))
    cfg = TeranConfig(feat_dim=8, embed_size=8, heads=2, feedforward=8, visual_layers=1, joint_layers=1, bert_layers=1)
    model = TERAN(cfg).eval()
    save_checkpoint(model, root.join("ckpt").uri)
    with torch.no_grad():
        images = model.encode_images(torch.randn(6, 4, 8), torch.rand(6, 4, 4), torch.full((6,), 4))
        captions = model.encode_texts(TEXTS)
    recorded = {"checkpoint": root.join("ckpt").uri, "format": "teran"}
    for side, ids, tokens in (("images", [f"img{i}" for i in range(6)], images), ("captions", [f"cap{i}" for i in range(4)], captions)):
        write_embedding_side(root.join("emb", side), side, [(ids, tokens.tokens.numpy(), tokens.lengths.numpy())], model=recorded)
    build_index(root.join("emb"), root.join("index"), IndexSection())
    return root.join("index")


def test_text_query_prints_the_two_stage_ranking(index_root, capsys):
    assert search.main(["--index", index_root.uri, TEXTS[1], "--k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    index = TeranIndex.open(index_root)
    expected = TwoStageRetriever.over(index, TwoStageConfig()).search("captions", index.load_model().encode_texts([TEXTS[1]]), k=3)
    assert [line.split()[2] for line in lines[1:4]] == [f"img{i}" for i in expected.items[0]]
    assert [float(line.split()[1]) for line in lines[1:4]] == pytest.approx(expected.scores[0], abs=1e-4)
    assert lines[-1] == "(6 candidates scored with exact TERAN alignment)"


def test_image_query_prints_captions_and_bad_input_is_named(index_root, capsys):
    assert search.main(["--index", index_root.uri, "--image-id", "img2", "two_stage.k_candidates=2",
                        "two_stage.i2t_k_factor=1", "two_stage.i2t_candidates=global"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "top captions for image img2" and len(out) == 4 and out[1].split()[2].startswith("cap")
    assert search.main(["--index", index_root.uri, "--image-id", "nope"]) == 2
    assert "item id 'nope' is not in this index" in capsys.readouterr().err
    assert search.main(["--index", index_root.uri]) == 2
    assert search.main(["--index", index_root.uri, "x", "eval.k=1"]) == 2  # only two_stage and storage exist
    assert "eval: unknown key" in capsys.readouterr().err
    # overrides may stand before or after the caption, as for every job; a caption may hold "="
    assert search.main(["--index", index_root.uri, "two_stage.t2i_candidates=global", "a = b", "two_stage.k_candidates=2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "top images for 'a = b'" and out[-1] == "(2 candidates scored with exact TERAN alignment)"
    assert search.main(["--index", index_root.uri, "x", "--config", "configs/search.yaml", "--checkpoint", "/no/such"]) == 2
