"""The per-epoch metrics of a training run as CSV and as a PNG of the training curves."""

from __future__ import annotations

import csv
import io

__all__ = ["history_csv", "history_png"]


def history_csv(history: list[dict]) -> str:
    """One row per epoch, one column per metric.

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


def history_png(history: list[dict], title: str) -> bytes:
    """Loss (left) and dev recall (right) against epoch, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] + 1 for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [row["loss"] for row in history], marker="o")
    left.set(xlabel="epoch", ylabel="mean training loss", title="loss")
    for key in ("t2i_r10", "i2t_r10", "t2i_r1", "i2t_r1"):
        if any(key in row for row in history):
            right.plot(epochs, [row.get(key) for row in history], marker="o", label=key)
    right.set(xlabel="epoch", ylabel="recall (%)", title="dev recall")
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
