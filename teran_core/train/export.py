"""A finished run's export: the model as a teran checkpoint beside its metrics and curves."""

from __future__ import annotations

import json

from teran_core.checkpoint import save_checkpoint
from teran_core.model.teran import TERAN
from teran_core.storage import StorageConfig, resolve
from teran_core.train.curves import history_csv, history_png
from teran_core.train.state import TrainState

__all__ = ["export_run"]


def export_run(model: TERAN, state: TrainState, uri: str, storage: StorageConfig | None, title: str) -> str:
    """Writes ``model`` as a teran checkpoint folder at ``uri`` (what ``teran encode`` loads) with the run's
    metrics per epoch (metrics.csv, metrics.json), the logged steps' losses (steps.csv) and the curves
    (curves.png); returns the folder's URI.

    Example::

        export_run(model, state, "s3://bucket/models/teran", storage, "run teran")
    """
    export = resolve(uri, storage)
    save_checkpoint(model, export.uri, storage)
    export.join("metrics.csv").write_text(history_csv(state.history))
    export.join("metrics.json").write_text(json.dumps(state.history, indent=2))
    export.join("steps.csv").write_text(history_csv(state.steps))
    export.join("curves.png").write_bytes(history_png(state.history, title, state.steps))
    return export.uri
