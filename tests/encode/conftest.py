"""Encode-test fixtures: one tiny checkpoint per run and the model loaded from it."""

import pytest
from encode_helpers import TINY

from teran_core import TERAN, load_checkpoint, save_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    """A teran checkpoint folder of a tiny model (random weights, the packaged 1-layer backbone)."""
    folder = str(tmp_path_factory.mktemp("tiny-checkpoint"))
    save_checkpoint(TERAN(TINY), folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint) -> TERAN:
    """The model exactly as the encoders load it."""
    return load_checkpoint(tiny_checkpoint)
