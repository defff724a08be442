"""A tiny grounded synthetic dataset and a tiny TERAN config for the training tests."""

import pytest

from teran_core.data.synth import SynthConfig, generate_dataset
from teran_core.model.config import TeranConfig

TINY_MODEL = dict(feat_dim=16, embed_size=16, visual_layers=1, joint_layers=1, heads=2, feedforward=32,
                  bert_layers=1, fine_tune=False, dropout=0.0, visual_dropout=0.0)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("train-data") / "dataset")
    generate_dataset(SynthConfig(images=96, feature_dim=16, test_images=16, dev_images=16, seed=3, max_regions=12,
                                 max_objects=6, group_size=2), root)
    return root


@pytest.fixture
def tiny_model_kwargs() -> dict:
    return dict(TINY_MODEL)


@pytest.fixture
def tiny_model_config() -> TeranConfig:
    return TeranConfig(**TINY_MODEL)
