"""Training TERAN: the job config, caption-indexed pairs, the plain-PyTorch step and validation.

``jobs/train.py`` wires these into Ray Train; nothing here imports Ray.
"""

from teran_core.train.loop import PairEncoder, learning_rate, train_step, validate
from teran_core.train.pairs import CaptionIndex, PairBuilder, collate_pairs

__all__ = ["CaptionIndex", "PairBuilder", "PairEncoder", "collate_pairs", "learning_rate",
           "train_step", "validate"]
