"""The whole model: training through the loss, shared transformer, autocast, config checks."""

import dataclasses

import pytest
import torch

from teran_core import TERAN, ConfigError, TeranConfig, alignment_scores
from teran_core.losses import TeranLoss

CAPTIONS = ["a man riding a wave on top of a surfboard.", "two dogs playing in the snow.", "a red bus on a street."]


def image_batch(feat_dim=32):
    return torch.randn(3, 4, feat_dim), torch.rand(3, 4, 4), torch.tensor([4, 2, 3])


def test_one_training_step_reaches_every_trainable_parameter(tiny_config):
    model = TERAN(dataclasses.replace(tiny_config, matching_weight=1.0)).train()
    ids = model.tokenizer(CAPTIONS, padding=True, return_tensors="pt")
    images, captions = model(*image_batch(), ids["input_ids"], ids["attention_mask"].sum(1))
    terms = TeranLoss(model.config)(images, captions)
    terms["total"].backward()
    assert terms["total"] > 0
    untouched = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    # every trainable weight, backbone included, takes part in the loss
    assert untouched == []


def test_shared_transformer_uses_the_text_transformer_for_images(tiny_config):
    model = TERAN(dataclasses.replace(tiny_config, shared_transformer=True)).eval()
    assert model.joint_image is None and not any(k.startswith("joint_image") for k in model.state_dict())
    before = model.encode_images(*image_batch()).tokens
    with torch.no_grad():
        model.joint_text.layers[0].linear2.bias.add_(1.0)
    assert not torch.allclose(before, model.encode_images(*image_batch()).tokens)


def test_bfloat16_autocast_keeps_padding_masks_and_gives_float32_unit_tokens(tiny_model):
    torch.manual_seed(1)
    features, boxes, n_regions = image_batch()
    with torch.no_grad():
        exact_img = tiny_model.encode_images(features, boxes, n_regions)
        exact_cap = tiny_model.encode_texts(CAPTIONS)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            img = tiny_model.encode_images(features, boxes, n_regions)
            cap = tiny_model.encode_texts(CAPTIONS)
            alone = tiny_model.encode_texts(CAPTIONS[1:2])
    for fast, exact in ((img, exact_img), (cap, exact_cap)):
        assert fast.tokens.dtype == torch.float32
        valid = torch.arange(fast.tokens.shape[1])[None] < fast.lengths[:, None]
        torch.testing.assert_close(fast.tokens.norm(dim=2)[valid], torch.ones(int(valid.sum())))
        assert (fast.tokens - exact.tokens)[valid].abs().max() < 0.1  # bfloat16 keeps ~3 digits
    n = int(alone.lengths[0])
    assert (cap.tokens[1, :n] - alone.tokens[0]).abs().max() < 0.05  # padding stays masked under autocast
    scores = alignment_scores(img, cap, "MrSw")
    assert torch.isfinite(scores).all()


def test_an_inconsistent_config_is_refused():
    with pytest.raises(ConfigError, match="embed_size: got 10, expected a multiple of heads"):
        TERAN(TeranConfig(embed_size=10, heads=4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_float16_autocast_on_cuda_matches_float32(tiny_config):
    from transformers import BertConfig

    # A backbone from its config alone (as from a reference checkpoint): no packaged weights needed.
    bert = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    model = TERAN(tiny_config, bert_config=bert).cuda().eval()
    features, boxes, n_regions = image_batch()
    ids = torch.randint(1000, 5000, (3, 9))
    ids[:, 0], lengths = 101, torch.tensor([9, 5, 7])
    with torch.no_grad():
        exact_img, exact_cap = model.encode_images(features, boxes, n_regions), model.encode_captions(ids, lengths)
        with torch.autocast("cuda", dtype=torch.float16):
            img, cap = model.encode_images(features, boxes, n_regions), model.encode_captions(ids, lengths)
            alone = model.encode_captions(ids[1:2, :5], lengths[1:2])
    assert img.tokens.device.type == "cuda" and img.tokens.dtype == cap.tokens.dtype == torch.float32
    for fast, exact in ((img, exact_img), (cap, exact_cap)):
        valid = torch.arange(fast.tokens.shape[1], device="cuda")[None] < fast.lengths[:, None]
        assert (fast.tokens - exact.tokens)[valid].abs().max() < 1e-2
    assert (cap.tokens[1, :5] - alone.tokens[0]).abs().max() < 1e-2  # padding stays masked under autocast
    assert torch.isfinite(alignment_scores(img, cap, "MrSw")).all()
