"""Tiny TERAN models: the packaged backbone cut to 2 layers, everything else a few dozen wide."""

import pytest
import torch

from teran_core import TERAN, TeranConfig


@pytest.fixture
def tiny_config() -> TeranConfig:
    return TeranConfig(feat_dim=32, embed_size=16, visual_layers=1, joint_layers=1, heads=2, feedforward=32, bert_layers=2)


@pytest.fixture
def tiny_model(tiny_config) -> TERAN:
    return TERAN(tiny_config).eval()


@pytest.fixture
def encode_samples():
    """A function: a tiny model -> its (images, captions) token sets of three fixed images and captions (seeded)."""

    def encode(model):
        torch.manual_seed(5)
        with torch.no_grad():
            images = model.encode_images(torch.randn(3, 4, 32), torch.rand(3, 4, 4), torch.tensor([4, 2, 3]))
            captions = model.encode_texts(["a cat on a mat", "two dogs", "a red car left of a tree"])
        return images, captions

    return encode
