"""An index spread over shard groups (one per searcher actor) finds exactly what the whole index finds."""

import numpy as np
import pytest

from teran_core.index.catalog import TeranIndex
from teran_core.index.config import IndexSection
from teran_core.index.groups import FanOutIndex, ShardGroupSearcher, shard_groups
from teran_core.index.run import build_index
from teran_core.storage import resolve


@pytest.fixture
def index(tmp_path, make_side):
    root = resolve(str(tmp_path))
    make_side(root.join("emb", "images"), "images", [60, 50, 70], dim=8)
    make_side(root.join("emb", "captions"), "captions", [150, 140, 160], dim=8, seed=1)
    # IVF everywhere, with few lists probed: the groups' merge must also match the shared-quantizer path
    build_index(root.join("emb"), root.join("index"), IndexSection(factory="IVF8,Flat", nprobe=2, use_gpu=False))
    return TeranIndex.open(root.join("index"))


def shard_bytes(index):
    return {(part, s["name"]): index.root.join(part, "shards", s["name"]).size()
            for part in index.part_names for s in index.part_manifest(part)["shards"]}


def test_groups_hold_every_shard_once_within_the_byte_limit(index):
    sizes = shard_bytes(index)
    limit = 2 * max(sizes.values())
    groups = shard_groups(index, limit)
    held = [(part, name) for group in groups for part, names in group.items() for name in names]
    assert sorted(held) == sorted(sizes)  # each of the 12 shards in exactly one group
    assert all(sum(sizes[part, name] for part, names in g.items() for name in names) <= limit for g in groups)
    assert len(groups) >= sum(sizes.values()) / limit
    assert shard_groups(index, 1) == [{part: [name]} for part, name in sizes]  # a shard over the limit goes alone
    assert len(shard_groups(index, sum(sizes.values()))) == 1


def test_fanned_out_parts_search_as_the_whole_index(index):
    searchers = [ShardGroupSearcher(index.root.uri, group) for group in shard_groups(index, 2 * max(shard_bytes(index).values()))]
    assert len(searchers) > 2
    assert sum(s.vectors() for s in searchers) == sum(p.ntotal for p in index.parts().values())
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(25, 8)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    for name, whole in index.parts().items():
        holders = [s for s in searchers if name in s.parts]
        fanned = FanOutIndex(index.part_manifest(name), lambda q, k, holders=holders, name=name: [s.search(name, q, k) for s in holders])
        want_scores, want_ids = whole.search(queries, 15)
        got_scores, got_ids = fanned.search(queries, 15)
        np.testing.assert_array_equal(got_ids, want_ids, err_msg=name)
        np.testing.assert_allclose(got_scores, want_scores, rtol=1e-6, err_msg=name)
    with pytest.raises(ValueError, match=r"expected \(Q, 8\) for index part images-global"):
        FanOutIndex(index.part_manifest("images-global"), lambda q, k: []).search(queries[:, :4], 3)
