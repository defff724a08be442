"""Compressed embedding shards: centroid ids and packed residuals in place of float tokens (docs/formats.md).

| column    | arrow type                   | meaning                                               |
| --------- | ---------------------------- | ----------------------------------------------------- |
| id        | string                       | as in an fp16 shard                                   |
| length    | int32                        | L, slot 0 included                                    |
| global    | fixed_size_list<float16, G>  | slot 0 (G = D) or a prototype head's vector, kept exact |
| codes     | list<int32>                  | (L - 1,) centroid id of slots 1..L-1                  |
| residuals | binary                       | (L - 1) * D * nbits / 8 bytes, slot by slot            |

The codec lives once per embedding set, under ``<emb>/codec/``: ``centroids.npy`` (and, for the
``product`` residual, ``product.npz``: rotation and codebooks) first, then ``codec.json`` (bucket
edges, cutoffs, weights and the sha256 of each array file) written last, so a ``codec.json`` always
describes arrays already on storage.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pyarrow as pa

from teran_core.compress.codec import ProductResidual, ResidualCodec
from teran_core.embedding_set import embedding_schema
from teran_core.storage import Location

__all__ = ["COMPRESSED_FORMAT_VERSION", "CODEC_DIR", "compressed_schema", "compress_table", "decompress_table",
           "write_codec", "read_codec", "codec_digest", "codec_residual"]

COMPRESSED_FORMAT_VERSION = 2  # embedding manifests of compressed sets; fp16 sets stay at version 1
CODEC_DIR = "codec"


def compressed_schema(dim: int, global_dim: int | None = None) -> pa.Schema:
    """The arrow schema of a compressed embedding shard (global vectors ``global_dim`` wide, default ``dim``)."""
    return pa.schema([("id", pa.string()), ("length", pa.int32()), ("global", pa.list_(pa.float16(), global_dim or dim)),
                      ("codes", pa.list_(pa.int32())), ("residuals", pa.binary())])


def _flat_tokens(table: pa.Table) -> tuple[np.ndarray, np.ndarray, int]:
    """(every slot's vector (sum L, D) float32, lengths (N,), D) of an embedding table."""
    lengths = table.column("length").to_numpy().astype(np.int64)
    tokens = table.column("tokens").combine_chunks()
    dim = tokens.type.value_type.list_size
    return tokens.flatten().flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, dim), lengths, dim


def compress_table(table: pa.Table, codec: ResidualCodec) -> pa.Table:
    """An embedding table (fp16 or fp32 tokens) as a compressed one; slot 0 stays in ``global``.

    Example:
        >>> from teran_core.embedding_set import to_table
        >>> codec = ResidualCodec(np.eye(8, dtype=np.float32), 1, np.array([-0.1, 0.0, 0.1]))
        >>> t = compress_table(to_table(["a"], np.eye(8, dtype=np.float32)[None, :3], np.array([3])), codec)
        >>> t.column("codes").to_pylist(), len(t.column("residuals")[0].as_py())
        ([[1, 2]], 2)
    """
    flat, lengths, dim = _flat_tokens(table)
    if dim != codec.dim:
        raise ValueError(f"tokens of size {dim} for a codec of size {codec.dim}")
    starts = np.cumsum(lengths) - lengths
    content = np.ones(len(flat), bool)
    content[starts[lengths > 0]] = False  # slot 0 of each item
    codes, packed = codec.encode(flat[content])  # (T,), (T, bytes)
    per_item = np.clip(lengths - 1, 0, None)
    offsets = np.concatenate([[0], np.cumsum(per_item)]).astype(np.int32)
    width = packed.shape[1]
    residuals = pa.Array.from_buffers(pa.binary(), len(lengths), [None, pa.py_buffer((offsets * width).astype(np.int32)),
                                                                  pa.py_buffer(packed.tobytes())])
    global_dim = table.schema.field("global").type.list_size
    return pa.Table.from_arrays(
        [table.column("id"), table.column("length"), table.column("global").cast(pa.list_(pa.float16(), global_dim)),
         pa.ListArray.from_arrays(pa.array(offsets), pa.array(codes, pa.int32())), residuals],
        schema=compressed_schema(dim, global_dim))


def decompress_table(table: pa.Table, codec: ResidualCodec) -> pa.Table:
    """A compressed table as an embedding table with float32 tokens (slot 0 = the exact ``global``, or zeros
    when ``global`` is a prototype head's wider vector: no alignment mode reads slot 0)."""
    dim = codec.dim
    lengths = table.column("length").to_numpy().astype(np.int64)
    codes = table.column("codes").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    residuals = table.column("residuals").combine_chunks()
    data = np.frombuffer(residuals.buffers()[2], np.uint8) if residuals.buffers()[2] is not None else np.zeros(0, np.uint8)
    first = residuals.offset
    offsets = np.frombuffer(residuals.buffers()[1], np.int32)[first:first + len(residuals) + 1]
    packed = data[offsets[0]:offsets[-1]].reshape(len(codes), codec.residual_bytes)
    tokens = np.empty((int(lengths.sum()), dim), np.float32)
    starts = np.cumsum(lengths) - lengths
    content = np.ones(len(tokens), bool)
    content[starts[lengths > 0]] = False
    tokens[content] = codec.decompress(codes, packed)
    global_dim = table.schema.field("global").type.list_size
    globals_ = table.column("global").combine_chunks().flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    tokens[starts[lengths > 0]] = globals_.reshape(-1, global_dim)[lengths > 0] if global_dim == dim else 0.0
    vec = pa.list_(pa.float32(), dim)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(tokens.reshape(-1), pa.float32()), dim)
    token_lists = pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)), vectors,
                                           type=pa.list_(vec))
    return pa.Table.from_arrays([table.column("id"), table.column("length"), table.column("global").cast(pa.list_(pa.float32(), global_dim)),
                                 token_lists], schema=embedding_schema(dim, "float32", global_dim))


def codec_residual(entry: dict) -> str:
    """The residual of a codec.json or manifest codec entry; entries written before the product residual have no key: buckets."""
    return entry.get("residual", "buckets")


def codec_digest(centroids: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(centroids, np.float32).tobytes()).hexdigest()


def _product_bytes(product: ProductResidual) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, rotation=product.rotation.astype(np.float32), codebooks=product.codebooks.astype(np.float32))
    return buffer.getvalue()


def write_codec(root: Location, codec: ResidualCodec, extra: dict | None = None) -> dict:
    """Writes ``<emb>/codec/centroids.npy`` (and ``product.npz``) then ``codec.json`` (last); returns the codec.json content."""
    buffer = io.BytesIO()
    np.save(buffer, codec.centroids.astype(np.float32), allow_pickle=False)
    root.join(CODEC_DIR, "centroids.npy").write_bytes(buffer.getvalue())
    entry = {**codec.to_manifest(), "centroids": f"{CODEC_DIR}/centroids.npy", "centroids_sha256": codec_digest(codec.centroids)}
    if codec.product is not None:
        data = _product_bytes(codec.product)
        root.join(CODEC_DIR, "product.npz").write_bytes(data)
        entry.update(product=f"{CODEC_DIR}/product.npz", product_sha256=hashlib.sha256(data).hexdigest())
    entry.update(extra or {})
    root.join(CODEC_DIR, "codec.json").write_text(json.dumps(entry, indent=1) + "\n")
    return entry


def read_codec(root: Location, entry: dict | None = None) -> ResidualCodec:
    """The codec of the embedding set at ``root`` (``entry``: a manifest's codec entry to check against).

    Raises:
        FileNotFoundError: no codec.json (the compress job has not trained one yet).
        ValueError: the centroids on storage differ from what the manifest recorded.
    """
    if entry is None:
        where = root.join(CODEC_DIR, "codec.json")
        if not where.exists():
            raise FileNotFoundError(f"{where.uri} does not exist: no codec was trained for this embedding set")
        entry = json.loads(where.read_text())
    centroids = np.load(io.BytesIO(root.join(entry["centroids"]).read_bytes()), allow_pickle=False)
    if codec_digest(centroids) != entry["centroids_sha256"]:
        raise ValueError(f"{root.join(entry['centroids']).uri} does not match the sha256 its manifest records: "
                         f"the centroids were replaced; compress the embedding set again")
    product = None
    if codec_residual(entry) == "product":
        data = root.join(entry["product"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["product_sha256"]:
            raise ValueError(f"{root.join(entry['product']).uri} does not match the sha256 its manifest records: "
                             f"the codebooks were replaced; compress the embedding set again")
        arrays = np.load(io.BytesIO(data), allow_pickle=False)
        product = ProductResidual(arrays["rotation"], arrays["codebooks"])
    return ResidualCodec(centroids, int(entry["nbits"]), np.asarray(entry["edges"], np.float64), product)
