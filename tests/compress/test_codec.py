"""The residual codec and the compressed store, without Ray."""

import json

import numpy as np
import pytest
import torch

from teran_core.alignment import TokenSet, alignment_scores
from teran_core.compress import centroid_count, fit_codec, train_centroids
from teran_core.compress.codec import pack_bits, unpack_bits
from teran_core.compress.run import CompressSection, compress
from teran_core.embedding_set import ROW_GROUP_ITEMS, EmbeddingSet
from teran_core.index.synthetic import GroundedSpec, write_grounded_embeddings
from teran_core.storage import resolve


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_centroid_count_follows_plaid_and_is_capped_for_tiny_sets():
    assert centroid_count(9_900_000) == 2**15  # 16 * sqrt(9.9M) = 50343 -> 2^15
    assert centroid_count(2**20) == 2**14
    assert centroid_count(100) == 2  # 100 // 39 = 2 training points' worth
    assert centroid_count(10**6, n_train=39 * 100) == 64


@pytest.mark.parametrize("nbits", [1, 2])
def test_bits_pack_and_unpack_back(nbits):
    buckets = np.random.default_rng(nbits).integers(0, 2**nbits, size=(50, 32))
    packed = pack_bits(buckets, nbits)
    assert packed.shape == (50, 32 * nbits // 8) and packed.dtype == np.uint8
    np.testing.assert_array_equal(unpack_bits(packed, 32, nbits), buckets)


def test_each_token_gets_its_best_centroid_whatever_the_score_block():
    rng = np.random.default_rng(1)
    centroids, tokens = unit(rng.normal(size=(64, 16))), unit(rng.normal(size=(1000, 16)))
    codec = fit_codec(centroids, tokens[:500], 2)
    best = np.argmax(tokens @ centroids.T, axis=1)
    for block_bytes in (1, 4 * 64 * 7, 2**30):  # one token at a time, 7 tokens (a ragged last block), all at once
        np.testing.assert_array_equal(codec.assign(tokens, block_bytes=block_bytes), best)


@pytest.mark.parametrize("nbits", [1, 2])
def test_decode_encode_is_within_half_a_bucket_width_per_dimension(nbits):
    rng = np.random.default_rng(0)
    tokens = unit(rng.normal(size=(6000, 32)))
    codec = fit_codec(train_centroids(tokens[:4000], 64), tokens[4000:5000], nbits)
    x = tokens[5000:]  # neither trained on nor held out
    codes, packed = codec.encode(x)
    assert packed.shape == (1000, 32 * nbits // 8)
    residual = x - codec.centroids[codes]  # (T, D)
    error = np.abs(codec.decode(codes, packed) - x)
    inside = (residual >= codec.edges[0]) & (residual <= codec.edges[-1])
    assert inside.mean() > 0.97  # the held-out 1%..99% range covers nearly every value
    bucket = np.clip(np.searchsorted(codec.cutoffs, residual, side="right"), 0, 2**nbits - 1)
    half_width = (codec.edges[1:] - codec.edges[:-1])[bucket] / 2
    assert np.all(error[inside] <= half_width[inside] + 1e-6)


@pytest.mark.parametrize("nbits", [1, 2])
def test_the_product_residual_spends_the_same_bytes_with_less_error_than_buckets(nbits):
    rng = np.random.default_rng(2)
    directions = unit(rng.normal(size=(40, 32)))  # tokens near 40 directions with correlated noise, as trained tokens are
    tokens = unit(directions[rng.integers(0, 40, 16000)] + 0.3 * rng.normal(size=(16000, 4)) @ rng.normal(size=(4, 32))
                  + 0.05 * rng.normal(size=(16000, 32)))
    centroids = train_centroids(tokens[:4000], 64)
    buckets, product = (fit_codec(centroids, tokens[4000:14000], nbits, residual) for residual in ("buckets", "product"))
    assert (buckets.residual, product.residual) == ("buckets", "product")
    x = tokens[14000:]  # neither trained on nor held out
    errors = {}
    for codec in (buckets, product):
        codes, packed = codec.encode(x)
        assert packed.shape == (2000, 32 * nbits // 8) and codec.bytes_per_token == 4 + 32 * nbits // 8
        errors[codec.residual] = float(((codec.decode(codes, packed) - x) ** 2).sum(1).mean())
    assert errors["product"] < 0.5 * errors["buckets"], errors


def test_a_bad_nbits_is_refused():
    with pytest.raises(ValueError, match="nbits 3"):
        fit_codec(np.eye(8, dtype=np.float32), np.eye(8, dtype=np.float32), 3)


def test_a_product_residual_over_fewer_held_out_tokens_than_256_trains_fewer_codewords_and_still_decodes():
    tokens = unit(np.random.default_rng(0).normal(size=(300, 8)))
    codec = fit_codec(tokens[:16], tokens[16:271], 2, "product")  # 255 held out: 128 codewords per sub-space
    assert codec.product.codebooks.shape == (2, 128, 4)
    codes, packed = codec.encode(tokens[271:])
    assert packed.shape == (29, 2) and packed.max() < 128
    decoded = codec.decode(codes, packed)
    assert np.abs(decoded - tokens[271:]).mean() < np.abs(codec.centroids[codes] - tokens[271:]).mean()  # the residual helps


# on MrSw totals (a sum over ~10 words of the best region's cosine); measured max gaps 1.56 (2 bits) and 2.14 (1 bit)
# with buckets, 0.76 (2 bits) with the product residual, at D = 64; grounded synthetic tokens are noisier than trained ones
# (docs/engine.md)
SCORE_TOLERANCE = {(2, "buckets"): 2.0, (1, "buckets"): 3.0, (2, "product"): 1.0}


@pytest.mark.parametrize("nbits,residual", [(2, "buckets"), (1, "buckets"), (2, "product")])
def test_exhaustive_scores_from_the_compressed_store_match_fp16(tmp_path, nbits, residual):
    root = resolve(str(tmp_path))
    write_grounded_embeddings(root.join("fp16"), GroundedSpec(images=160, dim=64, images_per_shard=80, seed=3))
    summary = compress(root.join("fp16"), root.join("res"), CompressSection(nbits=nbits, residual=residual))
    assert summary["codec"]["residual"] == residual
    assert {side: s["skipped"] for side, s in summary["sides"].items()} == {"images": 0, "captions": 0}
    sets = {name: {side: EmbeddingSet.open(root.join(name, side)) for side in ("images", "captions")} for name in ("fp16", "res")}
    images = {name: s["images"].fetch(range(160)) for name, s in sets.items()}
    captions = {name: s["captions"].fetch(range(40)) for name, s in sets.items()}
    assert images["res"].ids == images["fp16"].ids and captions["res"].ids == captions["fp16"].ids
    np.testing.assert_array_equal(images["res"].tokens[:, 0], images["fp16"].tokens[:, 0])  # slot 0 kept exact
    scores = {}
    for name in ("fp16", "res"):
        raw = alignment_scores(TokenSet(torch.from_numpy(images[name].tokens), torch.from_numpy(images[name].lengths)),
                               TokenSet(torch.from_numpy(captions[name].tokens), torch.from_numpy(captions[name].lengths)))
        scores[name] = raw.numpy()  # (images, captions)
    gap = np.abs(scores["res"] - scores["fp16"])
    assert gap.max() <= SCORE_TOLERANCE[nbits, residual], gap.max()
    if nbits == 1:
        return  # 2 x its tolerance exceeds every gap in this small set: no pair to check the ranking on
    # the ranking of images for each caption is the same wherever fp16 scores are further apart than the tolerance
    fp16 = scores["fp16"]
    apart = (fp16[:, None, :] - fp16[None, :, :]) > 2 * SCORE_TOLERANCE[nbits, residual]  # (i, j, caption): i clearly above j
    assert apart.any()
    assert np.all((scores["res"][:, None, :] > scores["res"][None, :, :])[apart])


def test_a_rerun_reuses_the_codec_and_skips_finished_shards(tmp_path):
    root = resolve(str(tmp_path))
    write_grounded_embeddings(root.join("fp16"), GroundedSpec(images=40, dim=16, images_per_shard=20))
    first = compress(root.join("fp16"), root.join("res"), CompressSection(seed=1, residual="buckets"))
    centroids = root.join("res", "codec", "centroids.npy").read_bytes()
    again = compress(root.join("fp16"), root.join("res"), CompressSection(seed=2, residual="buckets"))  # another seed: still reused
    assert again["codec"] == first["codec"] and root.join("res", "codec", "centroids.npy").read_bytes() == centroids
    assert again["codec_reused"] and {side: s["skipped"] for side, s in again["sides"].items()} == {"images": 2, "captions": 2}
    with pytest.raises(ValueError, match="nbits 2, residual buckets; this run asks for nbits 2, residual product"):
        compress(root.join("fp16"), root.join("res"), CompressSection())  # the default (product) is never mixed into a buckets set


def test_a_product_codec_round_trips_through_storage_and_refuses_replaced_codebooks(tmp_path):
    root = resolve(str(tmp_path))
    write_grounded_embeddings(root.join("fp16"), GroundedSpec(images=200, dim=16, images_per_shard=100, seed=4))
    compress(root.join("fp16"), root.join("res"), CompressSection())  # product, the default
    res = EmbeddingSet.open(root.join("res", "images"))
    assert res.manifest["codec"]["residual"] == "product" and res.codec.product.codebooks.shape == (4, 256, 4)
    fp16 = EmbeddingSet.open(root.join("fp16", "images")).fetch(range(20))
    decoded = res.fetch(range(20))
    content = np.arange(decoded.tokens.shape[1])[None, :] < decoded.lengths[:, None]
    content[:, 0] = False
    cosines = (decoded.tokens * fp16.tokens).sum(-1)[content]
    assert cosines.min() > 0.9  # unit tokens decoded close to what was encoded
    codebooks = root.join("res", "codec", "product.npz")
    codebooks.write_bytes(codebooks.read_bytes()[:-1] + b"x")
    with pytest.raises(ValueError, match="product.npz does not match the sha256"):
        _ = EmbeddingSet.open(root.join("res", "captions")).codec


def test_the_compressed_set_says_what_kind_of_global_vector_it_holds(tmp_path):
    root = resolve(str(tmp_path))
    write_grounded_embeddings(root.join("fp16"), GroundedSpec(images=40, dim=16, images_per_shard=20))
    for side in ("images", "captions"):  # as encode writes it for a checkpoint with a distilled head
        manifest = root.join("fp16", side, "manifest.json")
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "global_kind": "distilled"}))
    compress(root.join("fp16"), root.join("res"), CompressSection())
    assert [EmbeddingSet.open(root.join("res", side)).manifest["global_kind"] for side in ("images", "captions")] == ["distilled"] * 2


def test_a_loaded_compressed_set_stays_compressed_and_decodes_only_what_is_fetched(tmp_path):
    root = resolve(str(tmp_path))
    write_grounded_embeddings(root.join("fp16"), GroundedSpec(images=300, dim=16, images_per_shard=150, seed=5))
    compress(root.join("fp16"), root.join("res"), CompressSection(nbits=2))
    fp16, res = (EmbeddingSet.open(root.join(name, "captions")) for name in ("fp16", "res"))
    for shard in res.shards:  # 750 captions a shard, in groups fetch can read one at a time
        with res._parquet(shard) as parquet:
            groups = [parquet.metadata.row_group(g).num_rows for g in range(parquet.metadata.num_row_groups)]
        assert sum(groups) == shard.rows and max(groups) == ROW_GROUP_ITEMS
    resident = {name: emb.load() for name, emb in (("fp16", fp16), ("res", res))}
    ask = [1499, 3, 760, 3, 749, 750]  # both shards, out of order, a duplicate, both sides of the boundary
    got, from_disk = resident["res"].fetch(ask), res.fetch(ask)
    assert got.ids == from_disk.ids == [f"cap{i // 5:08d}-{i % 5}" for i in ask]
    np.testing.assert_array_equal(got.tokens, from_disk.tokens)
    np.testing.assert_array_equal(resident["fp16"].fetch(ask).tokens, fp16.fetch(ask).tokens)
    assert resident["res"].nbytes < resident["fp16"].nbytes / 2  # codes and packed bits in RAM, not decoded floats
