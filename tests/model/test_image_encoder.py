"""The image side: slot 0 added inside, padding ignored, unit tokens, gradients."""

import pytest
import torch


def regions(batch=3, slots=5, feat_dim=32):
    return torch.randn(batch, slots, feat_dim), torch.rand(batch, slots, 4)


def test_tokens_lengths_and_unit_norm(tiny_model):
    features, boxes = regions()
    with torch.no_grad():
        img = tiny_model.encode_images(features, boxes, torch.tensor([5, 2, 0]))
    assert img.tokens.shape == (3, 6, 16) and img.tokens.dtype == torch.float32
    assert img.lengths.tolist() == [6, 3, 1]
    torch.testing.assert_close(img.tokens.norm(dim=2), torch.ones(3, 6))
    assert torch.equal(img.global_vectors, img.tokens[:, 0])


def test_an_image_is_encoded_the_same_alone_and_in_a_batch_with_garbage_padding(tiny_model):
    features, boxes = regions()
    with torch.no_grad():
        alone = tiny_model.encode_images(features[1:2, :2], boxes[1:2, :2], torch.tensor([2]))
        features[1, 2:] = float("nan")  # rows past n_regions may hold anything
        boxes[1, 2:] = 1e9
        batched = tiny_model.encode_images(features, boxes, torch.tensor([5, 2, 4]))
    torch.testing.assert_close(batched.tokens[1, :3], alone.tokens[0], atol=1e-6, rtol=1e-5)


def test_slot_0_is_a_zero_feature_with_a_zero_box(tiny_model):
    # The transformers carry no position information, so a region given exactly slot 0's input
    # (zero feature, zero box) must come out identical to slot 0.
    features, boxes = regions(batch=1, slots=3)
    features[0, 1], boxes[0, 1] = 0.0, 0.0
    with torch.no_grad():
        img = tiny_model.encode_images(features, boxes, torch.tensor([3]))
    assert img.tokens.shape[1] == 4  # 3 regions + the slot the model adds
    torch.testing.assert_close(img.tokens[0, 2], img.tokens[0, 0], atol=1e-6, rtol=1e-5)
    assert (img.tokens[0, 1] - img.tokens[0, 0]).abs().max() > 1e-3


def test_gradients_reach_every_image_parameter(tiny_model):
    tiny_model.train()
    features, boxes = regions()
    img = tiny_model.encode_images(features, boxes, torch.tensor([5, 2, 3]))
    (img.tokens[:, :3] * torch.randn(3, 3, 16)).sum().backward()
    for name, p in [*tiny_model.image.named_parameters(), *tiny_model.joint_image.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    ("features", "boxes", "n_regions", "message"),
    [
        (torch.zeros(2, 3, 31), torch.zeros(2, 3, 4), torch.tensor([1, 1]), r"features: got shape \(2, 3, 31\), expected \(B, R, 32\)"),
        (torch.zeros(2, 3, 32), torch.zeros(2, 4, 4), torch.tensor([1, 1]), "boxes"),
        (torch.zeros(2, 3, 32), torch.zeros(2, 3, 4), torch.tensor([1, 4]), r"n_regions\[1\] = 4, expected 0..3"),
    ],
    ids=["feature-size", "boxes-shape", "too-many-regions"],
)
def test_bad_shapes_are_refused(tiny_model, features, boxes, n_regions, message):
    with pytest.raises(ValueError, match=message):
        tiny_model.encode_images(features, boxes, n_regions)
