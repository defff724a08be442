"""The metrics of a training run (per epoch, and the loss per logged step) as CSV and as a PNG of the training curves."""

from __future__ import annotations

import csv
import io

__all__ = ["history_csv", "history_png"]


def history_csv(history: list[dict]) -> str:
    """One row per epoch (or logged step), one column per metric.

    Example:
        >>> print(history_csv([{"epoch": 0, "loss": 2.5}, {"epoch": 1, "loss": 1.5, "rsum": 90.0}]).strip())
        epoch,loss,rsum
        0,2.5,
        1,1.5,90.0
    """
    columns = list(dict.fromkeys(key for row in history for key in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return out.getvalue()


def history_png(history: list[dict], title: str, steps: list[dict] = ()) -> bytes:
    """Training loss per logged step and per epoch (left), dev recall after each epoch (right), against the step.

    Args:
        history: one dict per epoch ({"epoch", "step", "loss", "t2i_r10", ...}).
        title: the figure's title.
        steps: the logged steps ({"step", "loss"}, ``TrainState.steps``); without them the loss is per epoch only.

    Example:
        >>> png = history_png([{"epoch": 0, "step": 4, "loss": 2.0, "t2i_r10": 50.0}], "run x",
        ...                   [{"step": 2, "loss": 3.0}, {"step": 4, "loss": 1.0}])
        >>> png[:4]
        b'\\x89PNG'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epoch_steps = [row.get("step", row["epoch"] + 1) for row in history]  # states written before "step" was logged: the epoch
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), sharex=True)  # one step axis: recall sits where its epoch ended
    if steps:
        left.plot([s["step"] for s in steps], [s["loss"] for s in steps], marker=".", label="mean over the logged steps")
    left.plot(epoch_steps, [row["loss"] for row in history], "s", color="k", label="mean over the epoch")
    left.set(xlabel="training step", ylabel="training loss", title="loss")
    left.legend()
    for key in ("t2i_r10", "i2t_r10", "t2i_r1", "i2t_r1"):
        if any(key in row for row in history):
            right.plot(epoch_steps, [row.get(key) for row in history], marker="o", label=key)
    right.set(xlabel="training step (dev set validated after each epoch)", ylabel="recall (%)", title="dev recall", ylim=(0, 100))
    if right.get_legend_handles_labels()[0]:
        right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
