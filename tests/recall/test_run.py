"""The evaluators side by side on a small grounded collection, in process."""

import json

import numpy as np
import pytest
import torch

from teran_core.alignment import TokenSet, alignment_scores
from teran_core.embedding_set import EmbeddingSet, EmbeddingSideWriter
from teran_core.index.catalog import TeranIndex
from teran_core.index.config import IndexSection
from teran_core.index.run import build_index
from teran_core.index.synthetic import GroundedSpec, write_grounded_embeddings
from teran_core.recall import CollectionEvaluator, EvalSection, GroundTruth, evaluate_collection, evaluate_protocol, local_mapper
from teran_core.recall.evaluation import retrieval_metrics
from teran_core.recall.report import write_report
from teran_core.retrieval import TwoStageConfig
from teran_core.storage import resolve

SPEC = GroundedSpec(images=40, captions_per_image=5, dim=16, regions=5, words=(2, 5), salient=2, concepts=8,
                    word_noise=1.5, global_noise=1.2, images_per_shard=16)
SIZES = {"images": 40, "captions": 200}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = resolve(str(tmp_path_factory.mktemp("recall")))
    owner = write_grounded_embeddings(root.join("emb"), SPEC)
    build_index(root.join("emb"), root.join("index"), IndexSection())
    sides = {side: EmbeddingSet.open(root.join("emb", side)) for side in SIZES}
    gt = GroundTruth(np.arange(40), np.arange(200), owner)
    tokens = {s: e.load().fetch(np.arange(len(e))) for s, e in sides.items()}
    exact = alignment_scores(*(TokenSet(torch.from_numpy(tokens[s].tokens), torch.from_numpy(tokens[s].lengths)) for s in SIZES))
    return root, gt, exact.numpy(), tokens


def evaluator(root, **two_stage):
    return CollectionEvaluator(TeranIndex.open(root.join("index")), TwoStageConfig(**two_stage), block_items=7)


def test_three_evaluators_against_hand_computed_metrics(built):
    root, gt, exact, tokens = built
    section = EvalSection(k_sweep=[4, 40], global_k=200, chunk_queries=9, latency_queries=5)
    two_stage = TwoStageConfig(k_candidates=40, i2t_k_factor=1.0)  # image queries: 40 of 200 captions
    results = evaluate_collection(section, two_stage, gt, SIZES, local_mapper(evaluator(root, i2t_k_factor=1.0)))
    exhaustive, ann, two_stage = (results["evaluators"][k] for k in ("exhaustive", "global", "two-stage"))
    assert exhaustive["metrics"] == pytest.approx(retrieval_metrics(exact, gt.caption_image))
    glob = tokens["images"].tokens[:, 0] @ tokens["captions"].tokens[:, 0].T
    assert ann["metrics"] == pytest.approx(retrieval_metrics(glob, gt.caption_image))
    # K' = 40 covers every image; for captions, the union of two 40-lists scores up to 80 of 200
    assert two_stage["metrics"]["t2i_r10"] == exhaustive["metrics"]["t2i_r10"]
    assert two_stage["gap"]["t2i_r1"] == 0.0 and two_stage["r10_ratio"]["t2i"] == 1.0
    assert exhaustive["pairs"] == results["total_pairs"] == 2 * 40 * 200 and exhaustive["pairs_fraction"] == 1.0
    assert 0 < two_stage["pairs"] < exhaustive["pairs"] and ann["pairs"] == 0
    assert [r["k_candidates"] for r in results["sweep"]] == [4, 40]
    assert results["latency_ms"]["queries"] == 5 and results["latency_ms"]["p50"] > 0


def test_sampled_queries_and_protocol(built, tmp_path):
    root, gt, exact, _ = built
    section = EvalSection(queries=12, evaluators=["exhaustive", "two-stage"], k_sweep=[5], latency_queries=0)
    results = evaluate_collection(section, TwoStageConfig(k_candidates=5), gt, SIZES, local_mapper(evaluator(root)))
    assert results["queries"] == {"images": 12, "captions": 12}
    assert results["total_pairs"] == 12 * 200 + 12 * 40
    protocol = evaluate_protocol(EvalSection(protocol="all"), gt, local_mapper(evaluator(root)), block_images=16)
    assert protocol["metrics"] == pytest.approx(retrieval_metrics(exact, gt.caption_image))
    assert "skipped" in evaluate_protocol(EvalSection(max_exhaustive_pairs=10), gt, local_mapper(evaluator(root)))
    reused = evaluate_collection(section, TwoStageConfig(k_candidates=5), gt, SIZES, local_mapper(evaluator(root)), protocol)
    assert reused["evaluators"]["exhaustive"]["metrics"] == results["evaluators"]["exhaustive"]["metrics"]
    results["protocol"] = {k: v for k, v in protocol.items() if k != "scores"}
    files = write_report(results, resolve(str(tmp_path)))
    assert files == ["recall_vs_kprime.png", "recall_vs_pairs.png", "report.md", "results.json"]
    assert json.loads((tmp_path / "results.json").read_text())["queries"]["images"] == 12
    assert "two-stage (K'=5)" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "recall_vs_pairs.png").read_bytes()[:4] == b"\x89PNG"


def test_global_vectors_wider_than_the_tokens_index_rank_and_give_two_stage_candidates(built, tmp_path):
    """A prototype head's K-wide global column (here 24 wide beside 16-wide tokens) through build-index and evaluate."""
    _, gt, exact, tokens = built
    root = resolve(str(tmp_path))
    rng = np.random.default_rng(0)
    lift = rng.normal(size=(16, 24)).astype(np.float32)
    wide = {}
    for side, batch in tokens.items():
        vectors = np.maximum(batch.tokens[:, 0] @ lift, 0.0) + 0.1  # some K-wide unit vectors made from slot 0
        wide[side] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        writer = EmbeddingSideWriter(root.join("emb", side), side, dtype="float32")
        writer.add(batch.ids, batch.tokens, batch.lengths, wide[side])
        writer.finish()
    build_index(root.join("emb"), root.join("index"), IndexSection())
    index = TeranIndex.open(root.join("index"))
    assert index.parts()["images-global"].dim == 24 and index.manifest["sides"]["images"]["global_dim"] == 24
    section = EvalSection(global_k=200, k_sweep=[40], latency_queries=0)
    two_stage = TwoStageConfig(k_candidates=40, i2t_k_factor=1.0, t2i_candidates="global", i2t_candidates="global")
    results = evaluate_collection(section, two_stage, gt, SIZES, local_mapper(CollectionEvaluator(index, two_stage, block_items=7)))
    assert results["evaluators"]["global"]["metrics"] == pytest.approx(retrieval_metrics(wide["images"] @ wide["captions"].T, gt.caption_image))
    assert results["evaluators"]["exhaustive"]["metrics"] == pytest.approx(retrieval_metrics(exact, gt.caption_image))
    assert results["evaluators"]["two-stage"]["metrics"]["t2i_r10"] == results["evaluators"]["exhaustive"]["metrics"]["t2i_r10"]
