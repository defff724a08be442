"""An index folder: manifest written last, id maps, and the embedding set it came from."""

import json

import pytest

from teran_core.index.build import build_part
from teran_core.index.catalog import TeranIndex, write_index_manifest, write_side_ids
from teran_core.index.factory import choose_index
from teran_core.index.layout import PartSpec
from teran_core.storage import resolve


def test_index_folder_round_trip(tmp_path, make_side):
    root = resolve(str(tmp_path))
    emb, tokens, _ = make_side(root.join("emb", "images"), "images", [3, 4], dim=8)
    index_root = root.join("index")
    with pytest.raises(FileNotFoundError, match="the index build writes it last"):
        TeranIndex.open(index_root)
    part = build_part(emb, PartSpec("images", "global"), choose_index(7, 8, 2**30), index_root.join("images-global"))
    assert [write_side_ids(emb, s, index_root) for s in emb.shards] == [3, 4]
    write_index_manifest(index_root, root.join("emb").uri, {"images": emb}, {"images-global": part})

    index = TeranIndex.open(index_root.uri)
    assert index.part_names == ["images-global"]
    ids = index.part("images-global").search(tokens[5:6, 0], 1)[1]
    assert index.id_map("images").item_id(int(ids[0, 0])) == "i5"
    assert index.id_map("images").index_of(["i6", "i0"]).tolist() == [6, 0]
    assert len(index.embeddings("images")) == 7
    with pytest.raises(KeyError, match="has no index part 'images-regions'"):
        index.part("images-regions")

    manifest = json.loads(root.join("emb", "images", "manifest.json").read_text())
    manifest["model"] = {"checkpoint": "another.pt"}  # re-encoded with another model
    root.join("emb", "images", "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="changed after the index .* was built"):
        index.embeddings("images")
