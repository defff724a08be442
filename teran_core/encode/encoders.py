"""The encoder actors' callables: prepared pyarrow batches in, embedding rows out.

Shape notation: B rows, R regions (the batch's most), F features, T caption tokens, L token slots
(R + 1 for images, T for captions), D embedding size. One model per actor, loaded in ``__init__``;
on a GPU the matmuls run under fp16/bf16 autocast and tokens are cast to the stored dtype before
they leave the device. Rejected rows (``reason`` set) pass through untouched.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from teran_core.data.regions import as_array, region_arrays
from teran_core.embedding_set import embedding_schema, to_table
from teran_core.encode.model_spec import ModelSpec

__all__ = ["TeranEncoder", "ENCODED_COLUMNS"]

PASSED = ["kind", "shard", "row", "id", "reason"]
ENCODED_COLUMNS = ["id", "length", "global", "tokens", "kind", "shard", "row", "reason", "encoder", "encode_s"]


def _padded(column, width: int, slots: int) -> np.ndarray:
    """(B, slots, width) in the stored float type; no copy when every row fills all slots (features_36)."""
    counts, values = region_arrays(column, width)  # (B,), (sum R, width)
    if (counts == slots).all():
        return values.reshape(len(counts), slots, width)
    out = np.zeros((len(counts), slots, width), values.dtype)
    out[np.arange(slots)[None, :] < counts[:, None]] = values  # row-major order matches the end-to-end layout
    return out


class TeranEncoder:
    """One TERAN per actor: ``__call__`` encodes a prepared batch's valid rows of either kind.

    Args:
        model: the checkpoint to load (once, in the constructor).
        dtype: stored embedding dtype, "float16" or "float32".
        precision: autocast dtype: "float32" (none), "float16" or "bfloat16".
        device: "cpu" or "cuda".
        threads: torch intra-op threads; 0 keeps what Ray set (OMP_NUM_THREADS = the actor's CPUs).
    """

    def __init__(self, model: ModelSpec, *, dtype: str = "float16", precision: str = "float32",
                 device: str = "cpu", threads: int = 0):
        if threads:
            torch.set_num_threads(threads)
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"encoder on {socket.gethostname()}: encode.device is cuda (num_gpus > 0) but torch sees no "
                               "CUDA device here; check the node's driver and torch build, or set encode.device: cpu")
        self.device = torch.device(device)
        self.model = model.load().to(self.device).eval()
        self.dtype = dtype
        self.precision = precision
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        head = self.model.global_head
        self.empty = embedding_schema(self.model.config.embed_size, dtype, head and head.width).empty_table()

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Prepared rows (``teran_core.encode.read.prepared_schema``) -> :data:`ENCODED_COLUMNS` rows.

        Rejects and shard errors keep their kind, shard, row, id and reason, with null embeddings.
        """
        is_valid = batch.column("reason").is_null()
        outputs = [self._encode_kind(batch.filter(pc.and_(is_valid, pc.equal(batch.column("kind"), kind))), kind)
                   for kind in ("images", "captions")]
        outputs.append(batch.filter(pc.invert(is_valid)).select(PASSED))
        return pa.concat_tables(outputs, promote_options="default")

    def _encode_kind(self, valid: pa.Table, kind: str) -> pa.Table:
        start = time.perf_counter()
        if valid.num_rows:
            with torch.inference_mode(), self._autocast():
                encoded = self.encode_images(valid) if kind == "images" else self.encode_captions(valid)
                tokens = encoded.tokens.to(getattr(torch, self.dtype)).cpu().numpy()  # (B, L, D)
                globals_ = None if encoded.globals is None else encoded.globals.float().cpu().numpy()  # (B, G)
            table = to_table(valid.column("id").to_pylist(), tokens, encoded.lengths.cpu().numpy(), self.dtype, globals_)
        else:
            table = self.empty
        seconds = time.perf_counter() - start
        for name in ("kind", "shard", "row", "reason"):
            table = table.append_column(name, valid.column(name))
        table = table.append_column("encoder", pa.array([self.name] * valid.num_rows, pa.string()))
        return table.append_column("encode_s", pa.array(np.full(valid.num_rows, seconds / max(valid.num_rows, 1))))

    def encode_images(self, valid: pa.Table):
        """``model.encode_images`` over image rows (n_regions, features, boxes) -> TokenSet (B, R + 1, D)."""
        features = as_array(valid.column("features"))
        slots = int(pc.max(valid.column("n_regions")).as_py())
        padded = _padded(features, features.type.value_type.list_size, slots)  # (B, R, F)
        boxes = _padded(valid.column("boxes"), 4, slots)  # (B, R, 4), zeros where the dataset has none
        n_regions = valid.column("n_regions").to_numpy().astype(np.int64)  # (B,)
        return self.model.encode_images(self._tensor(padded), self._tensor(boxes), self._tensor(n_regions))

    def encode_captions(self, valid: pa.Table):
        """``model.encode_captions`` over caption rows (unpadded input_ids) -> TokenSet (B, T, D)."""
        ids = as_array(valid.column("input_ids"))
        lengths = pc.list_value_length(ids).to_numpy().astype(np.int64)  # (B,) incl. [CLS]/[SEP]
        padded = np.zeros((len(lengths), int(lengths.max())), np.int64)  # (B, T), 0 = [PAD]
        padded[np.arange(padded.shape[1])[None, :] < lengths[:, None]] = ids.flatten().to_numpy()
        return self.model.encode_captions(self._tensor(padded), self._tensor(lengths))

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        with warnings.catch_warnings():  # arrow's zero-copy views are read-only; the tensor is only read
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.from_numpy(array).to(self.device, non_blocking=True)

    def _autocast(self):
        if self.precision == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=getattr(torch, self.precision))
