"""Tiny TERAN models: the packaged backbone cut to 2 layers, everything else a few dozen wide."""

import pytest

from teran_core import TERAN, TeranConfig


@pytest.fixture
def tiny_config() -> TeranConfig:
    return TeranConfig(feat_dim=32, embed_size=16, visual_layers=1, joint_layers=1, heads=2, feedforward=32, bert_layers=2)


@pytest.fixture
def tiny_model(tiny_config) -> TERAN:
    return TERAN(tiny_config).eval()
