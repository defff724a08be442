"""The text side: the packaged backbone, its truncation, the cached-hidden split and a frozen backbone."""

import dataclasses
import json

import pytest
import torch
from transformers import BertModel, BertTokenizerFast

from teran_core.data.tokenizer import default_backbone_path, load_tokenizer
from teran_core.model.backbone import check_bert_uncased_vocabulary, load_backbone

CAPTIONS = ["a man riding a wave on top of a surfboard.", "two dogs.", "a red double decker bus driving down a street."]


def test_packaged_vocabulary_has_the_bert_base_uncased_layout():
    tok = load_tokenizer()
    assert len(tok) == 30522
    assert [tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id] == [0, 100, 101, 102]
    # bert-base-uncased ids of a few word pieces (its vocab.txt line numbers)
    assert tok.convert_tokens_to_ids(["the", ".", "a", "##s", "dog", "surf", "##board"]) == [1996, 1012, 1037, 2015, 3899, 14175, 6277]
    assert tok(CAPTIONS[0])["input_ids"][:3] == [101, 1037, 2158] and tok(CAPTIONS[0])["input_ids"][-1] == 102
    check_bert_uncased_vocabulary(tok)


def test_a_different_vocabulary_is_refused(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]", "a", "dog"]))
    with pytest.raises(ValueError, match=r"not use the bert-base-uncased WordPiece layout.*expected 30522"):
        check_bert_uncased_vocabulary(BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")))


def test_the_truncated_backbone_equals_the_full_models_hidden_state_at_that_depth():
    ids = torch.tensor([[101, 1037, 2417, 3899, 102, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    full = BertModel.from_pretrained(default_backbone_path(), local_files_only=True).eval()
    truncated = load_backbone(layers=2).eval()
    with torch.no_grad():
        expected = full(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[2]
        got = truncated(input_ids=ids, attention_mask=mask).last_hidden_state
    assert truncated.config.num_hidden_layers == 2 and len(truncated.encoder.layer) == 2
    torch.testing.assert_close(got[:, :5], expected[:, :5], atol=1e-5, rtol=1e-5)


def test_asking_for_more_layers_than_the_backbone_has_is_refused():
    depth = json.loads(open(f"{default_backbone_path()}/config.json").read())["num_hidden_layers"]
    with pytest.raises(ValueError, match=f"has {depth} layers; cannot keep {depth + 1}"):
        load_backbone(layers=depth + 1)


def test_cached_hidden_states_give_the_same_captions(tiny_model):
    batch = tiny_model.tokenizer(CAPTIONS, padding=True, return_tensors="pt")
    lengths = batch["attention_mask"].sum(1)
    with torch.no_grad():
        direct = tiny_model.encode_captions(batch["input_ids"], lengths)
        hidden = tiny_model.text_backbone_hidden(batch["input_ids"], lengths)
        cached = tiny_model.encode_captions_from_hidden(hidden.half().numpy(), lengths.numpy())  # stored as fp16
        texts = tiny_model.encode_texts(CAPTIONS)
    assert hidden.shape == (3, batch["input_ids"].shape[1], 384)
    assert direct.tokens.shape == (3, hidden.shape[1], 16) and direct.lengths.tolist() == lengths.tolist()
    torch.testing.assert_close(cached.tokens, direct.tokens, atol=5e-3, rtol=1e-2)
    torch.testing.assert_close(texts.tokens, direct.tokens)
    torch.testing.assert_close(direct.tokens.norm(dim=2), torch.ones(direct.tokens.shape[:2]))


def test_a_caption_is_encoded_the_same_alone_and_in_a_padded_batch(tiny_model):
    with torch.no_grad():
        alone = tiny_model.encode_texts(CAPTIONS[1:2])
        batched = tiny_model.encode_texts(CAPTIONS)
    n = int(alone.lengths[0])
    torch.testing.assert_close(batched.tokens[1, :n], alone.tokens[0], atol=1e-5, rtol=1e-5)


def test_a_frozen_backbone_gets_no_gradients_and_stays_deterministic(tiny_config):
    from teran_core import TERAN

    model = TERAN(dataclasses.replace(tiny_config, fine_tune=False)).train()
    assert not model.text.bert.training and model.joint_text.training
    assert not any(p.requires_grad for p in model.text.bert.parameters())
    batch = model.tokenizer(CAPTIONS, padding=True, return_tensors="pt")
    lengths = batch["attention_mask"].sum(1)
    first = model.text_backbone_hidden(batch["input_ids"], lengths)
    assert torch.equal(first, model.text_backbone_hidden(batch["input_ids"], lengths))  # no dropout
    model.encode_captions(batch["input_ids"], lengths).tokens.sum().backward()
    assert model.text.proj.weight.grad is not None


def test_fine_tuning_trains_the_backbone(tiny_model):
    tiny_model.train()
    tiny_model.encode_texts(CAPTIONS).tokens[:, :4].sum().backward()
    assert tiny_model.text.bert.embeddings.word_embeddings.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("ids", "lengths", "message"),
    [
        (torch.tensor([[101, 102, 0]]), torch.tensor([4]), r"lengths\[0\] = 4, expected 1..3"),
        (torch.tensor([[101, 40000, 102]]), torch.tensor([3]), "outside the backbone's vocabulary"),
        (torch.full((1, 600), 101), torch.tensor([600]), "T <= 512"),
    ],
    ids=["length", "vocabulary", "positions"],
)
def test_bad_token_input_is_refused(tiny_model, ids, lengths, message):
    with pytest.raises(ValueError, match=message):
        tiny_model.encode_captions(ids, lengths)
