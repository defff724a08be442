"""The prototype head: MrSw through prototypes as one K-wide vector per item, carried beside the tokens."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from teran_core import load_checkpoint, save_checkpoint
from teran_core.alignment import TokenSet, alignment_scores
from teran_core.encode.model_spec import ModelSpec
from teran_core.model.config import ALIGNMENT_MODES
from teran_core.model.global_head import GlobalHeadConfig, build_global_head
from teran_core.model.prototype_head import PrototypeHead
from teran_core.storage import resolve

PROTOTYPES = GlobalHeadConfig(kind="prototypes", prototypes=12, assign_temperature=1e-4)


def _unit(x):
    return F.normalize(torch.as_tensor(x, dtype=torch.float32), dim=-1)


def _items(seed, n, length, dim, lengths):
    torch.manual_seed(seed)
    return TokenSet(_unit(torch.randn(n, length, dim)), torch.tensor(lengths))


def test_with_the_words_as_prototypes_the_vectors_give_mrsw_exactly():
    captions = _items(0, 1, 7, 8, [7])  # [CLS], 4 scored words, the last word piece, [SEP]
    images = _items(1, 3, 6, 8, [6, 4, 5])  # slot 0 and up to 5 regions
    words = captions.tokens[0, 1:5]  # (4, D): the words MrSw scores
    head = PrototypeHead(GlobalHeadConfig(kind="prototypes", prototypes=4, assign_temperature=1e-4), embed_size=8)
    with torch.no_grad():
        head.prototypes.copy_(words)
        v, u = head.images(images), head.captions(captions)  # (3, 4), (1, 4) unit vectors
    # the raw vectors, by hand: v[k] = best region for word k, u = one count per word
    raw_v = torch.stack([(images.tokens[i, 1:n] @ words.T).max(0).values for i, n in enumerate([6, 4, 5])])
    assert torch.allclose(v, _unit(raw_v), atol=1e-6) and torch.allclose(u, torch.full((1, 4), 0.5), atol=1e-4)
    mrsw = alignment_scores(images, captions, "MrSw", "masked")[:, 0]  # (3,)
    assert torch.allclose((v @ u.T)[:, 0] * raw_v.norm(dim=1) * 2.0, mrsw, atol=1e-4)  # |u_raw| = 2: four words, one each


def test_an_item_gets_the_same_vector_alone_or_padded_in_a_batch():
    head = build_global_head(GlobalHeadConfig(kind="prototypes", prototypes=16), embed_size=8).eval()
    items = _items(3, 3, 7, 8, [7, 4, 5])
    for kind in ("images", "captions"):
        with torch.no_grad():
            batched = head(items, kind)
            alone = torch.cat([head(TokenSet(items.tokens[i:i + 1, :n], items.lengths[i:i + 1]), kind)
                               for i, n in enumerate([7, 4, 5])])
        assert torch.allclose(batched, alone, atol=1e-6), kind
        assert torch.allclose(batched.norm(dim=1), torch.ones(3), atol=1e-6)


def test_a_caption_without_scored_words_gets_a_unit_vector_that_ranks_every_image_alike():
    head = build_global_head(GlobalHeadConfig(kind="prototypes", prototypes=16), embed_size=8).eval()
    with torch.no_grad():
        u = head(_items(4, 1, 3, 8, [3]), "captions")  # [CLS], one word piece (not scored), [SEP]
    assert torch.allclose(u, torch.full((1, 16), 0.25))


def test_init_from_sets_each_prototype_to_the_mean_direction_of_the_tokens_nearest_it():
    rng = np.random.default_rng(0)
    tokens = _unit(torch.as_tensor(rng.normal(size=(300, 8)))).numpy()
    head = PrototypeHead(GlobalHeadConfig(kind="prototypes", prototypes=4), embed_size=8)
    head.init_from(tokens, niter=50)
    found = F.normalize(head.prototypes.detach(), dim=1).numpy()
    nearest = (tokens @ found.T).argmax(axis=1)
    means = _unit(torch.as_tensor(np.stack([tokens[nearest == k].mean(0) for k in range(4)]))).numpy()
    assert np.abs(means - found).max() < 1e-3  # a fixed point of spherical k-means over these tokens
    again = PrototypeHead(GlobalHeadConfig(kind="prototypes", prototypes=4), embed_size=8)
    again.init_from(tokens, niter=50)
    assert torch.allclose(again.prototypes, head.prototypes)  # seeded
    with pytest.raises(ValueError, match="3 tokens for 4 prototypes"):
        head.init_from(tokens[:3])


@pytest.mark.parametrize("padding", ["masked", "reference"])
def test_a_prototype_head_travels_beside_the_tokens_and_leaves_all_seven_alignment_modes_unchanged(encode_samples, tiny_model, padding):
    plain_images, plain_captions = encode_samples(tiny_model)
    head = build_global_head(PROTOTYPES, tiny_model.config.embed_size).eval()
    tiny_model.attach_global_head(head)
    images, captions = encode_samples(tiny_model)
    for plain, headed, kind in ((plain_images, images, "images"), (plain_captions, captions, "captions")):
        assert torch.equal(plain.tokens, headed.tokens) and plain.globals is None  # every slot, slot 0 included, as before
        assert headed.globals.shape == (len(headed), 12) and torch.equal(headed.global_vectors, headed.globals)
        with torch.no_grad():
            assert torch.allclose(headed.globals, head(plain, kind))
    for mode in ALIGNMENT_MODES:
        assert torch.equal(alignment_scores(images, captions, mode, padding),
                           alignment_scores(plain_images, plain_captions, mode, padding)), mode


def test_a_checkpoint_with_a_prototype_head_round_trips_and_tells_encode_its_width(encode_samples, tiny_model, tmp_path):
    tiny_model.attach_global_head(build_global_head(PROTOTYPES, tiny_model.config.embed_size).eval())
    save_checkpoint(tiny_model, str(tmp_path))
    meta = json.loads((tmp_path / "teran_config.json").read_text())
    assert meta["global_head"]["kind"] == "prototypes" and meta["global_head"]["prototypes"] == 12
    loaded = load_checkpoint(str(tmp_path))
    assert isinstance(loaded.global_head, PrototypeHead)
    for ours, theirs in zip(encode_samples(loaded), encode_samples(tiny_model)):
        assert torch.equal(ours.tokens, theirs.tokens) and torch.equal(ours.globals, theirs.globals)
    info = ModelSpec(resolve(str(tmp_path)), "teran").info()
    assert (info.global_kind, info.embed_size, info.global_dim) == ("distilled", tiny_model.config.embed_size, 12)
