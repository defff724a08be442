"""The build-index and evaluate jobs end to end on real Ray, a real dataset split and real storage."""

import json
import logging

import numpy as np
import pytest
from job_output import printed_json

from jobs import build_index, evaluate
from teran_core.data import load_split
from teran_core.data.synth import SynthConfig, generate_dataset
from teran_core.embedding_set import write_embedding_side
from teran_core.index.catalog import TeranIndex
from teran_core.index.synthetic import GroundedSpec, grounded_shard


def embed_split(dataset, emb_root):
    """Grounded synthetic token sets under the test split's own image and caption ids."""
    image_ids, caption_ids, caption_image = load_split(dataset.uri, "test", dataset.storage)
    spec = GroundedSpec(images=len(image_ids), captions_per_image=5, dim=16, regions=5, words=(2, 5), salient=2,
                        concepts=8, images_per_shard=len(image_ids))
    (_, img_tokens, img_lengths), (_, cap_tokens, cap_lengths), owner = grounded_shard(spec, 0)
    assert owner.tolist() == caption_image.tolist()  # both put 5 consecutive captions per image
    half, cap_half = len(image_ids) // 2, 5 * (len(image_ids) // 2)
    write_embedding_side(emb_root.join("images"), "images", [
        (image_ids[:half], img_tokens[:half], img_lengths[:half]), (image_ids[half:], img_tokens[half:], img_lengths[half:])])
    write_embedding_side(emb_root.join("captions"), "captions", [
        (caption_ids[:cap_half], cap_tokens[:cap_half], cap_lengths[:cap_half]),
        (caption_ids[cap_half:], cap_tokens[cap_half:], cap_lengths[cap_half:])])
    return len(image_ids), len(caption_ids)


def storage_args(root):
    endpoint = root.storage.endpoint_override
    return [f"storage.endpoint_override={endpoint}"] if endpoint else []


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_build_index_then_evaluate(ray_session, storage_root, capsys, caplog):
    dataset, emb, index, out = (storage_root.join(p) for p in ("data", "emb", "index", "eval"))
    generate_dataset(SynthConfig(images=24, feature_dim=4, group_size=2, test_images=20, dev_images=0), dataset)
    n_images, n_captions = embed_split(dataset, emb)
    common = storage_args(storage_root)
    build = ["--config", "configs/build_index.yaml", f"paths.embeddings={emb.uri}", f"paths.index={index.uri}",
             "index.add_task_cpus=0.5", *common]
    assert build_index.main(build) == 0
    summary = printed_json(capsys.readouterr().out)
    assert {name: p["ntotal"] for name, p in summary["parts"].items()} == {
        "images-global": n_images, "captions-global": n_captions, "images-regions": n_images * 5,
        "captions-words": summary["parts"]["captions-words"]["ntotal"]}
    assert 2 * n_captions <= summary["parts"]["captions-words"]["ntotal"] <= 5 * n_captions  # 2..5 scored words each
    opened = TeranIndex.open(index)
    assert opened.id_map("captions").item_ids[:2] == load_split(dataset.uri, "test", dataset.storage)[1][:2]
    assert build_index.main(build) == 2  # a finished index is not overwritten by accident
    assert "already holds a finished index" in capsys.readouterr().err

    def run_evaluate(output, *overrides):
        assert evaluate.main([
            "--config", "configs/evaluate.yaml", f"paths.dataset={dataset.uri}", f"paths.index={index.uri}",
            f"paths.output={output.uri}", "eval.protocol=all", "eval.k_sweep=[5,20]", "eval.actor_cpus=0.5",
            "eval.latency_queries=3", "two_stage.k_candidates=20", *overrides, *common]) == 0
        return json.loads(output.join("results.json").read_text())

    # every shard on its own searcher actor (8) and the store in RAM (auto: it is a few kB), against evaluators
    # that map the whole index themselves and read candidates from the shards
    caplog.set_level(logging.INFO, logger="teran.evaluate")
    results = run_evaluate(out, "eval.searcher_max_bytes=1")
    assert "index spread over 8 searcher actors" in caplog.text
    assert results["in_memory"]["held"] and "embedding store held in each evaluator's RAM (auto:" in caplog.text
    whole = run_evaluate(storage_root.join("eval-whole"), "eval.searcher_max_bytes=0", "eval.in_memory_max_gb=0")
    assert not whole["in_memory"]["held"] and "> eval.in_memory_max_gb 0" in whole["in_memory"]["reason"]
    for name, result in whole["evaluators"].items():
        assert results["evaluators"][name]["metrics"] == result["metrics"], name
        assert results["evaluators"][name]["pairs"] == result["pairs"], name
    assert [r["metrics"] for r in results["sweep"]] == [r["metrics"] for r in whole["sweep"]]
    exhaustive, two_stage = results["evaluators"]["exhaustive"], results["evaluators"]["two-stage"]
    assert results["protocol"]["metrics"]["rsum"] == pytest.approx(exhaustive["metrics"]["rsum"])  # collection == split
    assert two_stage["metrics"]["t2i_r10"] == exhaustive["metrics"]["t2i_r10"]  # K' = 20 = every image
    assert results["missing"] == {"images": {"count": 0, "first": []}, "captions": {"count": 0, "first": []}}
    assert sorted(out.list()) == ["examples.json", "recall_vs_kprime.png", "recall_vs_pairs.png", "report.html", "report.md", "results.json"]
    assert f"- dataset: {dataset.uri}" in out.join("report.md").read_text() and results["model"] is None  # these embeddings name no checkpoint
    examples = json.loads(out.join("examples.json").read_text())
    assert len(examples["t2i"]) == 12 and len(examples["i2t"]) == 12  # 20 images, 100 captions: a dozen of each
    # these stand-in embeddings do not have the captions' word pieces: the page says so instead of mislabelling words
    assert all("it was cut at encode time or embedded with another tokenizer" in a["error"] for a in examples["alignments"])
    assert "No alignment view" in out.join("report.html").read_text()
    assert np.isfinite(results["latency_ms"]["p99"])


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_centroid_lists_on_ray_then_evaluate_from_the_compressed_store(ray_session, s3_root, capsys):
    from teran_core.compress.run import CompressSection, compress

    dataset, fp16, emb, index, out = (s3_root.join(p) for p in ("data", "fp16", "emb", "index", "eval"))
    generate_dataset(SynthConfig(images=24, feature_dim=4, group_size=2, test_images=20, dev_images=0), dataset)
    n_images, n_captions = embed_split(dataset, fp16)
    compress(fp16, emb, CompressSection(nbits=2))
    common = storage_args(s3_root)
    parts = "index.parts=[images-global,captions-global,images-centroids,captions-centroids]"
    assert build_index.main(["--config", "configs/build_index.yaml", f"paths.embeddings={emb.uri}", f"paths.index={index.uri}",
                             parts, "index.add_task_cpus=0.5", *common]) == 0
    summary = printed_json(capsys.readouterr().out)
    assert summary["parts"]["images-centroids"]["factory"] == "centroids"
    assert summary["parts"]["images-centroids"]["shards"] == 2
    lists = TeranIndex.open(index).part("images-centroids")
    assert lists.items_in(np.arange(lists.n_centroids)).tolist() == list(range(n_images))  # every image is in some list

    assert build_index.main(["--config", "configs/build_index.yaml", f"paths.embeddings={fp16.uri}",
                             f"paths.index={s3_root.join('index-fp16').uri}", parts, *common]) == 2  # fp16 set: refused
    assert "needs a compressed embedding set" in capsys.readouterr().err

    assert evaluate.main([
        "--config", "configs/evaluate.yaml", f"paths.dataset={dataset.uri}", f"paths.index={index.uri}",
        f"paths.output={out.uri}", "eval.protocol=all", "eval.k_sweep=[5,20]", "eval.actor_cpus=0.5", "eval.latency_queries=3",
        "eval.searcher_max_bytes=1", "two_stage.k_candidates=20", "two_stage.i2t_k_factor=5",
        "two_stage.t2i_candidates=centroids", "two_stage.i2t_candidates=union", "two_stage.union_with=centroids",
        "two_stage.ncells=1000", "two_stage.centroid_score_threshold=-1", *common]) == 0
    results = json.loads(out.join("results.json").read_text())
    assert results["in_memory"]["held"]  # auto, on the S3 store's listing of the shards: compressed codes, a few kB
    exhaustive, two_stage = results["evaluators"]["exhaustive"], results["evaluators"]["two-stage"]
    assert two_stage["metrics"]["t2i_r10"] == exhaustive["metrics"]["t2i_r10"]  # every centroid probed, K' = 20 = every image
    assert two_stage["metrics"]["i2t_r10"] == exhaustive["metrics"]["i2t_r10"]  # K' = 100 = every caption
