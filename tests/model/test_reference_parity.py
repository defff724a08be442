"""teran against the reference TERAN: state-dict layout, parameter counts and forward-pass numbers."""

import dataclasses
from pathlib import Path

import pytest
import torch
from reference_layout import (
    BERT,
    reference_captions,
    reference_config_dict,
    reference_images,
    reference_shapes,
    reference_state_dict,
    write_reference_checkpoint,
)
from transformers import BertConfig

from teran_core import TeranConfig, load_reference_checkpoint
from teran_core.checkpoint import model_from_reference

KEY_FILE = Path(__file__).parent / "data" / "teran_state_dict_keys.txt"  # copy of shared/reference/
# The reference hard-codes 4 heads and a 2048-wide feed-forward in its transformers; its config cannot change them.
TINY = TeranConfig(feat_dim=24, embed_size=16, visual_layers=2, joint_layers=2, heads=4, feedforward=2048, bert_layers=2)
TINY_BERT = BertConfig(vocab_size=30522, hidden_size=12, num_hidden_layers=2, num_attention_heads=3,
                       intermediate_size=20, max_position_embeddings=40)


def reference_file_lines() -> list[tuple[str, tuple]]:
    lines = [line.split("\t") for line in KEY_FILE.read_text().splitlines()]
    return [(key, tuple(int(d) for d in shape.strip("[]").split(", "))) for key, shape in lines]


def test_the_layout_generator_reproduces_the_reference_key_file():
    bert_base = BertConfig(num_hidden_layers=6)  # bert-base-uncased cut to 6 layers
    assert reference_shapes(TeranConfig(), bert_base) == reference_file_lines()
    shared = reference_shapes(TeranConfig(shared_transformer=True), bert_base)
    assert len(reference_file_lines()) - len(shared) == 24  # the sharedTE variants: no transformer_encoder_2.*


def test_default_config_loads_the_full_reference_layout_with_the_reference_parameter_count():
    # The one test that builds the full-size model (~1 GB of float32): weights are constant, shapes are the point.
    state = reference_state_dict(TeranConfig(), BertConfig(num_hidden_layers=6), fill=0.01)
    assert [(k, tuple(v.shape)) for k, v in state.items()] == reference_file_lines()
    model = model_from_reference(reference_config_dict(TeranConfig()), state)

    unique_reference = sum(v.numel() for k, v in state.items() if k != "img_txt_enc.txt_enc.word_embeddings.weight")
    dead = sum(v.numel() for k, v in state.items() if k.startswith(
        ("img_txt_enc.txt_enc.map.", "img_txt_enc.img_enc.fc.", BERT + "pooler.")))
    assert round(unique_reference / 1e6, 2) == 215.47
    assert sum(p.numel() for p in model.parameters()) == unique_reference - dead
    assert model.bert_config.num_attention_heads == 12 and model.bert_config.hidden_size == 768
    assert not model.training
    # every loaded tensor sits where the mapping put it
    assert torch.equal(model.image.box_encoding[0].weight, state["img_txt_enc.img_enc.pos_encoding_image.map.0.weight"])


def tiny_inputs():
    features, boxes = torch.randn(3, 5, TINY.feat_dim), torch.rand(3, 5, 4)
    n_regions = torch.tensor([5, 2, 3])
    input_ids = torch.tensor([[101, 1037, 2417, 3899, 1012, 102, 0], [101, 2048, 8870, 102, 0, 0, 0],
                              [101, 1037, 2158, 5559, 1037, 4400, 102]])
    return features, boxes, n_regions, input_ids, torch.tensor([6, 4, 7])


def assert_same_valid_tokens(ours, reference, lengths):
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(ours[b, :n], reference[b, :n], atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("shared", [False, True], ids=["separate-TE", "shared-TE"])
@pytest.mark.parametrize("legacy_format", [False, True], ids=["zip", "legacy-pickle"])
def test_reference_checkpoint_file_gives_the_reference_forward_numbers(tmp_path, shared, legacy_format):
    cfg = dataclasses.replace(TINY, shared_transformer=shared)
    state = reference_state_dict(cfg, TINY_BERT)
    path = tmp_path / "model_best_rsum.pth.tar"
    write_reference_checkpoint(path, reference_config_dict(cfg), state, legacy_format=legacy_format)

    model = load_reference_checkpoint(str(path), bert_config=TINY_BERT)
    features, boxes, n_regions, input_ids, lengths = tiny_inputs()
    with torch.no_grad():
        img = model.encode_images(features, boxes, n_regions)
        cap = model.encode_captions(input_ids, lengths)
    assert model.config.shared_transformer is shared and (model.joint_image is None) is shared
    assert img.lengths.tolist() == [6, 3, 4] and cap.lengths.tolist() == [6, 4, 7]
    assert_same_valid_tokens(img.tokens, reference_images(state, cfg, features, boxes, n_regions), img.lengths)
    assert_same_valid_tokens(cap.tokens, reference_captions(state, cfg, TINY_BERT, input_ids, lengths), cap.lengths)


def test_bert_shape_is_inferred_from_the_weights_and_heads_default_to_64_wide():
    bert = BertConfig(vocab_size=30522, hidden_size=128, num_hidden_layers=1, intermediate_size=48, max_position_embeddings=64)
    cfg = dataclasses.replace(TINY, bert_layers=1)
    model = model_from_reference(reference_config_dict(cfg), reference_state_dict(cfg, bert))
    got = model.bert_config
    assert (got.hidden_size, got.intermediate_size, got.max_position_embeddings, got.num_hidden_layers) == (128, 48, 64, 1)
    assert got.num_attention_heads == 2  # 128 / 64


def test_a_bert_config_that_contradicts_the_weights_is_refused():
    state = reference_state_dict(TINY, TINY_BERT)
    wrong = BertConfig(**{**TINY_BERT.to_dict(), "intermediate_size": 99})
    with pytest.raises(ValueError, match="intermediate_size: bert_config 99, state dict 20"):
        model_from_reference(reference_config_dict(TINY), state, bert_config=wrong)


def test_known_dead_and_legacy_keys_are_ignored():
    state = reference_state_dict(TINY, TINY_BERT)
    state[BERT + "embeddings.position_ids"] = torch.arange(40)[None]  # saved by transformers 3.x-4.30
    model = model_from_reference(reference_config_dict(TINY), state, bert_config=TINY_BERT)
    assert torch.equal(model.text.proj.weight, state["img_txt_enc.cap_proj.weight"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("img_txt_enc.img_proj.bias"), r"1 missing: image\.proj\.bias"),
        (lambda s: s.__setitem__("img_txt_enc.extra.weight", torch.zeros(2)), r"1 unexpected: img_txt_enc\.extra\.weight"),
        (lambda s: s.__setitem__("img_txt_enc.cap_proj.bias", torch.zeros(3)), r"1 misshapen: text\.proj\.bias \(3,\)"),
        (lambda s: s.__setitem__("img_txt_enc.txt_enc.word_embeddings.weight", torch.zeros(30522, 12)), "alias"),
        (lambda s: s.pop(BERT + "embeddings.position_embeddings.weight"), "position_embeddings.weight is missing"),
    ],
    ids=["missing", "unexpected", "misshapen", "alias-differs", "bert-shape-key-missing"],
)
def test_any_other_key_problem_fails_loudly(change, message):
    state = reference_state_dict(TINY, TINY_BERT)
    change(state)
    with pytest.raises(ValueError, match=message):
        model_from_reference(reference_config_dict(TINY), state, bert_config=TINY_BERT)


def test_shared_config_with_a_second_transformer_in_the_weights_is_refused():
    state = reference_state_dict(TINY, TINY_BERT)  # has transformer_encoder_2.*
    shared = dataclasses.replace(TINY, shared_transformer=True)
    with pytest.raises(ValueError, match=r"24 unexpected: img_txt_enc\.transformer_encoder_2\."):
        model_from_reference(reference_config_dict(shared), state, bert_config=TINY_BERT)


def test_layer_count_disagreeing_with_the_config_is_refused():
    state = reference_state_dict(TINY, TINY_BERT)
    config = reference_config_dict(TINY)
    config["text-model"]["extraction-hidden-layer"] = 3
    with pytest.raises(ValueError, match="config says 3 BERT layers, weights hold 2"):
        model_from_reference(config, state, bert_config=TINY_BERT)


def test_a_backbone_with_its_own_vocabulary_loads_with_its_tokenizer_and_a_size_mismatch_names_both(tmp_path):
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "dog", "on", "couch", "##s"]
    bert = BertConfig(**{**TINY_BERT.to_dict(), "vocab_size": len(words)})
    BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}).save_pretrained(tmp_path / "tokenizer")
    bert.save_pretrained(tmp_path / "tokenizer")  # a backbone's model folder: its config.json beside the tokenizer
    state, config = reference_state_dict(TINY, bert), reference_config_dict(TINY)

    model = model_from_reference(config, state, bert_config=bert, tokenizer=str(tmp_path / "tokenizer"))
    assert len(model.tokenizer) == len(words)
    assert model.encode_texts(["a dog on couchs"]).tokens.shape[:2] == (1, 7)  # [CLS] a dog on couch ##s [SEP]
    with pytest.raises(ValueError, match=r"BERT vocabulary 10, but teran's bert-base-uncased tokenizer has 30522"):
        model_from_reference(config, state, bert_config=bert)
    bigger = BertConfig(**{**TINY_BERT.to_dict(), "vocab_size": 12})
    with pytest.raises(ValueError, match=r"BERT vocabulary 12, but the given tokenizer has 10"):
        model_from_reference(config, reference_state_dict(TINY, bigger), bert_config=bigger, tokenizer=str(tmp_path / "tokenizer"))
