"""The distilled global head: written into slot 0 it changes no alignment score; checkpoints carry it; old ones load."""

import dataclasses
import json

import pytest
import torch
from reference_layout import reference_config_dict, reference_state_dict, write_reference_checkpoint
from transformers import BertConfig

from teran_core import TeranConfig, load_checkpoint, load_reference_checkpoint, save_checkpoint
from teran_core.alignment import TokenSet, alignment_scores
from teran_core.checkpoint import FORMAT_VERSION
from teran_core.distill import FrozenTokens
from teran_core.model.config import ALIGNMENT_MODES
from teran_core.model.global_head import GlobalHead, GlobalHeadConfig

HEAD = GlobalHeadConfig(layers=1, heads=2, width=8, feedforward=12, dropout=0.0)


@pytest.mark.parametrize("padding", ["masked", "reference"])
@pytest.mark.parametrize("readout", ["first", "mean"])
def test_a_head_in_slot0_leaves_all_seven_alignment_modes_unchanged(encode_samples, tiny_model, padding, readout):
    plain_images, plain_captions = encode_samples(tiny_model)
    tiny_model.attach_global_head(GlobalHead(dataclasses.replace(HEAD, readout=readout), tiny_model.config.embed_size).eval())
    images, captions = encode_samples(tiny_model)
    for plain, headed in ((plain_images, images), (plain_captions, captions)):
        assert torch.equal(plain.tokens[:, 1:], headed.tokens[:, 1:]) and torch.equal(plain.lengths, headed.lengths)
        assert not torch.allclose(plain.tokens[:, 0], headed.tokens[:, 0])  # slot 0 is the head's now
        assert torch.allclose(headed.tokens[:, 0].norm(dim=1), torch.ones(len(headed)))
    assert len(ALIGNMENT_MODES) == 7
    for mode in ALIGNMENT_MODES:
        assert torch.equal(alignment_scores(images, captions, mode, padding),
                           alignment_scores(plain_images, plain_captions, mode, padding)), mode


@pytest.mark.parametrize("readout", ["first", "mean"])
def test_each_readout_gives_an_item_the_same_vector_alone_or_padded_in_a_batch(readout):
    head = GlobalHead(dataclasses.replace(HEAD, readout=readout), embed_size=8).eval()
    torch.manual_seed(3)
    tokens = torch.nn.functional.normalize(torch.randn(3, 6, 8), dim=2)  # (B, L, D), rows past each length are padding
    lengths = torch.tensor([6, 2, 4])
    with torch.no_grad():
        batched = head(TokenSet(tokens, lengths))
        alone = torch.cat([head(TokenSet(tokens[i:i + 1, :n], lengths[i:i + 1])) for i, n in enumerate(lengths.tolist())])
    assert torch.allclose(batched, alone, atol=1e-6)


def test_the_mean_readout_is_another_vector_than_position_0():
    torch.manual_seed(0)
    first = GlobalHead(HEAD, embed_size=8).eval()
    mean = GlobalHead(dataclasses.replace(HEAD, readout="mean"), embed_size=8).eval()
    mean.load_state_dict(first.state_dict())  # the same weights: only the readout differs
    items = TokenSet(torch.nn.functional.normalize(torch.randn(2, 5, 8), dim=2), torch.tensor([5, 3]))
    with torch.no_grad():
        assert not torch.allclose(first(items), mean(items), atol=1e-3)


@pytest.mark.parametrize("readout", ["first", "mean"])
def test_a_checkpoint_with_a_head_round_trips(encode_samples, tiny_model, tmp_path, readout):
    head_config = dataclasses.replace(HEAD, readout=readout)
    tiny_model.attach_global_head(GlobalHead(head_config, tiny_model.config.embed_size).eval())
    save_checkpoint(tiny_model, str(tmp_path))
    meta = json.loads((tmp_path / "teran_config.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION == 2 and meta["global_head"]["width"] == 8
    assert meta["global_head"]["readout"] == readout
    loaded = load_checkpoint(str(tmp_path))
    assert loaded.global_head is not None and loaded.global_head.config == head_config
    for ours, theirs in zip(encode_samples(loaded), encode_samples(tiny_model)):
        assert torch.equal(ours.tokens, theirs.tokens)


def test_a_head_saved_before_the_readout_and_kind_knobs_loads_as_the_transformer_reading_position_0(encode_samples, tiny_model, tmp_path):
    tiny_model.attach_global_head(GlobalHead(HEAD, tiny_model.config.embed_size).eval())
    save_checkpoint(tiny_model, str(tmp_path))
    meta = json.loads((tmp_path / "teran_config.json").read_text())
    for knob in ("readout", "kind", "prototypes", "assign_temperature"):  # what format 2 wrote before these knobs
        del meta["global_head"][knob]
    (tmp_path / "teran_config.json").write_text(json.dumps(meta))
    loaded = load_checkpoint(str(tmp_path))
    assert loaded.global_head.config.readout == "first" and isinstance(loaded.global_head, GlobalHead)
    for ours, theirs in zip(encode_samples(loaded), encode_samples(tiny_model)):
        assert torch.equal(ours.tokens, theirs.tokens)


def test_an_old_checkpoint_without_a_head_still_loads(encode_samples, tiny_model, tmp_path):
    save_checkpoint(tiny_model, str(tmp_path))
    meta = json.loads((tmp_path / "teran_config.json").read_text())
    assert meta["global_head"] is None
    del meta["global_head"]
    meta["format_version"] = 1  # exactly what format 1 wrote
    (tmp_path / "teran_config.json").write_text(json.dumps(meta))
    loaded = load_checkpoint(str(tmp_path))
    assert loaded.global_head is None
    for ours, theirs in zip(encode_samples(loaded), encode_samples(tiny_model)):
        assert torch.equal(ours.tokens, theirs.tokens)
    meta["format_version"] = 3
    (tmp_path / "teran_config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"format_version 3, expected one of \(1, 2\)"):
        load_checkpoint(str(tmp_path))


def test_a_reference_checkpoint_is_a_frozen_teacher_and_keeps_its_head(tmp_path):
    cfg = TeranConfig(feat_dim=32, embed_size=16, visual_layers=1, joint_layers=1, heads=4, feedforward=2048, bert_layers=2,
                      fine_tune=True)
    bert = BertConfig(vocab_size=30522, hidden_size=12, num_hidden_layers=2, num_attention_heads=3, intermediate_size=20)
    path = tmp_path / "teran_coco.pth.tar"
    write_reference_checkpoint(path, reference_config_dict(cfg), reference_state_dict(cfg, bert))
    teacher = load_reference_checkpoint(str(path), bert_config=bert)
    frozen = FrozenTokens(teacher, max_mb=1)  # a fine-tuned reference backbone is frozen here too
    assert not any(p.requires_grad for p in teacher.parameters())
    batch = {"image_id": ["a"], "features": torch.rand(1, 3, 32), "boxes": torch.rand(1, 3, 4), "n_regions": torch.tensor([3]),
             "caption_id": ["c"], "input_ids": torch.tensor([[101, 1037, 3899, 102]]), "lengths": torch.tensor([4])}
    images, captions = frozen(batch)
    teacher.attach_global_head(GlobalHead(GlobalHeadConfig(layers=1, heads=2), cfg.embed_size).eval())
    save_checkpoint(teacher, str(tmp_path / "distilled"))
    student = load_checkpoint(str(tmp_path / "distilled"))
    with torch.no_grad():
        headed = student.encode_captions(batch["input_ids"], batch["lengths"])
    assert torch.allclose(headed.tokens[:, 1:], captions.tokens[:, 1:], atol=1e-6)
    assert torch.allclose(headed.tokens[:, 0], student.global_head(captions), atol=1e-6)
