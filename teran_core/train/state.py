"""Training state beside a teran checkpoint: optimizer, epoch, step and the metrics history.

Stored with ``torch.save`` of plain containers and tensors only, so it loads with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import io
import os

import torch

from teran_core.checkpoint import load_checkpoint, save_checkpoint
from teran_core.model.teran import TERAN
from teran_core.storage import resolve

__all__ = ["TrainState", "save_train_state", "load_train_state"]

STATE_FILE = "train_state.pt"


@dataclasses.dataclass
class TrainState:
    epoch: int = 0  # the next epoch to run
    step: int = 0  # optimisation steps done so far (all epochs)
    history: list = dataclasses.field(default_factory=list)  # one dict of metrics per finished epoch
    steps: list = dataclasses.field(default_factory=list)  # {"step", "epoch", "loss"} every run.curve_every_steps steps (states saved before it have none)
    optimizer: dict | None = None  # optimizer.state_dict()

    def count_step(self, epoch: int, losses: list[float], every: int) -> None:
        """Counts one optimisation step; every ``every`` steps keeps the mean of the last ``every`` losses in
        ``steps`` (the training curve per logged step).

        Example:
            >>> state = TrainState()
            >>> for loss in [4.0, 2.0, 1.0]:
            ...     state.count_step(0, [4.0, 2.0, 1.0][: state.step + 1], every=2)
            >>> state.steps
            [{'step': 2, 'epoch': 0, 'loss': 3.0}]
        """
        self.step += 1
        if self.step % every == 0:
            recent = losses[-every:]
            self.steps.append({"step": self.step, "epoch": epoch, "loss": sum(recent) / len(recent)})


def save_train_state(folder: str, model: TERAN, state: TrainState) -> None:
    """Writes the model as a teran checkpoint into ``folder`` plus ``train_state.pt``."""
    save_checkpoint(model, folder)
    buffer = io.BytesIO()
    torch.save(dataclasses.asdict(state), buffer)
    resolve(folder).join(STATE_FILE).write_bytes(buffer.getvalue())


def load_train_state(folder: str) -> tuple[TERAN, TrainState]:
    """The model and training state saved by :func:`save_train_state` (model in eval mode)."""
    model = load_checkpoint(folder)
    with open(os.path.join(folder, STATE_FILE), "rb") as f:
        raw = torch.load(f, weights_only=True, map_location="cpu")
    return model, TrainState(**raw)
