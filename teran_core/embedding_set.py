"""Embedding sets: the shards the encode job writes and the index and evaluation read, and reading them back.

One parquet row per item. Shape notation: D embedding size, L the item's true number of token
slots (slot 0 = the global slot; images: regions + 1, captions: word pieces incl. [CLS]/[SEP]).

| column   | arrow type                           | meaning                                   |
| -------- | ------------------------------------ | ----------------------------------------- |
| id       | string                               | the source's image_id or caption_id       |
| length   | int32                                | L                                         |
| global   | fixed_size_list<float16|float32, G>  | tokens[0] (G = D), or a prototype head's vector (G = K) |
| tokens   | list<fixed_size_list<float16|float32, D>> | (L, D), L2-normalised, slot 0 included |

The manifest's ``global_dim`` is G (sets written before it have G = D). A global column as wide as the
tokens always equals slot 0; a wider (or narrower) one holds the distilled prototype head's vectors
(docs/distill.md), and slot 0 then keeps TERAN's own token 0.

An embedding set side (``<emb>/images`` or ``<emb>/captions``) holds such shards and a manifest.
The manifest is written last, so it is read first: no manifest means an unfinished or foreign
folder. Items are numbered 0..N-1 in manifest shard order; that item index is what the FAISS
indexes store and what :meth:`EmbeddingSet.fetch` takes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from teran_core.storage import Location, StorageConfig, resolve

__all__ = ["EMBEDDINGS_FORMAT_VERSION", "EmbeddingBatch", "embedding_schema", "to_table", "from_table", "EmbeddingSet", "InMemoryTokens",
           "ShardInfo", "ROW_GROUP_ITEMS", "global_vectors", "EmbeddingSideWriter", "open_embedding_pair", "write_embedding_side"]

KINDS = ("images", "captions")
EMBEDDINGS_FORMAT_VERSION = 1
_ARROW_DTYPES = {"float16": pa.float16(), "float32": pa.float32()}
# items per parquet row group of an embedding shard: the unit EmbeddingSet.fetch reads and decodes, so a stage-two
# candidate read from storage costs one small group rather than its whole shard (about 0.6 MB of fp16 at D = 128)
ROW_GROUP_ITEMS = 128


def embedding_schema(dim: int, dtype: str = "float16", global_dim: int | None = None) -> pa.Schema:
    """The arrow schema of an embedding shard with ``dim``-wide tokens and ``global_dim``-wide (default
    ``dim``) global vectors, stored as ``dtype``."""
    if dtype not in _ARROW_DTYPES:
        raise ValueError(f"embedding dtype {dtype!r} is not supported; expected one of {sorted(_ARROW_DTYPES)}")
    vec = pa.list_(_ARROW_DTYPES[dtype], dim)
    return pa.schema([("id", pa.string()), ("length", pa.int32()), ("global", pa.list_(_ARROW_DTYPES[dtype], global_dim or dim)),
                      ("tokens", pa.list_(vec))])


@dataclasses.dataclass
class EmbeddingBatch:
    """Token sets of N items, padded to the longest one (padding slots are zeros)."""

    ids: list[str]
    tokens: np.ndarray  # (N, Lmax, D)
    lengths: np.ndarray  # (N,) int, slot 0 included
    globals: np.ndarray | None = None  # (N, G) the global column, when it was read

    @property
    def global_vectors(self) -> np.ndarray:
        return self.tokens[:, 0] if self.globals is None else self.globals  # (N, D) or (N, G)

    def __len__(self) -> int:
        return len(self.ids)


def to_table(ids: list[str], tokens: np.ndarray, lengths: np.ndarray, dtype: str = "float16",
             globals_: np.ndarray | None = None) -> pa.Table:
    """Builds an embedding shard table from padded token sets.

    Args:
        ids: N item ids.
        tokens: (N, Lmax, D) L2-normalised tokens; slots at or past an item's length are ignored.
        lengths: (N,) true lengths, slot 0 included.
        dtype: storage dtype, "float16" (default) or "float32".
        globals_: (N, G) global vectors of a width G other than D (a prototype head's); default: slot 0.

    Example:
        >>> t = to_table(["a"], np.ones((1, 3, 2), np.float32), np.array([2]))
        >>> t.column("length").to_pylist(), t.column("tokens").to_pylist()
        ([2], [[[1.0, 1.0], [1.0, 1.0]]])
    """
    n, _, dim = tokens.shape
    if len(ids) != n or lengths.shape != (n,):
        raise ValueError(f"to_table: {len(ids)} ids, tokens {tokens.shape} and lengths {lengths.shape} disagree on N")
    lengths = lengths.astype(np.int32)
    np_dtype = np.dtype(dtype)
    valid = np.arange(tokens.shape[1])[None, :] < lengths[:, None]  # (N, Lmax)
    flat = tokens[valid].astype(np_dtype, copy=False).reshape(-1)  # (sum L * D,)
    vec_type = pa.list_(_ARROW_DTYPES[dtype], dim)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=_ARROW_DTYPES[dtype]), dim)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    token_lists = pa.ListArray.from_arrays(pa.array(offsets), vectors, type=pa.list_(vec_type))
    globals_ = tokens[:, 0] if globals_ is None else globals_  # (N, G)
    if globals_.shape[0] != n:
        raise ValueError(f"to_table: {len(ids)} ids but global vectors {globals_.shape}")
    global_dim = globals_.shape[1]
    global_ = pa.FixedSizeListArray.from_arrays(pa.array(globals_.astype(np_dtype).reshape(-1), type=_ARROW_DTYPES[dtype]), global_dim)
    return pa.Table.from_arrays(
        [pa.array(ids, pa.string()), pa.array(lengths), global_, token_lists],
        schema=embedding_schema(dim, dtype, global_dim),
    )


def from_table(table: pa.Table, dtype: type = np.float32) -> EmbeddingBatch:
    """Reads an embedding shard table (or a slice of one) back into padded arrays.

    Example:
        >>> b = from_table(to_table(["a", "b"], np.ones((2, 3, 2), np.float32), np.array([1, 3])))
        >>> b.tokens.shape, b.lengths.tolist(), b.tokens[0, 1].tolist()
        ((2, 3, 2), [1, 3], [0.0, 0.0])
    """
    lengths = table.column("length").to_numpy().astype(np.int64)
    tokens_col = table.column("tokens").combine_chunks()
    dim = tokens_col.type.value_type.list_size
    flat = tokens_col.flatten().flatten().to_numpy(zero_copy_only=False).astype(dtype).reshape(-1, dim)
    n, lmax = len(lengths), int(lengths.max()) if len(lengths) else 0
    out = np.zeros((n, lmax, dim), dtype)
    valid = np.arange(lmax)[None, :] < lengths[:, None]
    out[valid] = flat
    globals_ = None  # a global column as wide as the tokens is their slot 0 (written so); a wider one is read
    if "global" in table.column_names and table.schema.field("global").type.list_size != dim:
        globals_ = global_vectors(table).astype(dtype)
    return EmbeddingBatch(ids=table.column("id").to_pylist(), tokens=out, lengths=lengths, globals=globals_)




@dataclasses.dataclass(frozen=True)
class ShardInfo:
    name: str  # file name, e.g. "images-00003.parquet"
    rows: int
    offset: int  # item index of the shard's first row


def _manifest_problems(manifest: dict, kind: str | None) -> list[str]:
    from teran_core.compress.store import COMPRESSED_FORMAT_VERSION

    problems = []
    version = manifest.get("format_version")
    if version not in (EMBEDDINGS_FORMAT_VERSION, COMPRESSED_FORMAT_VERSION):
        problems.append(f"format_version: got {version!r}, expected {EMBEDDINGS_FORMAT_VERSION} (fp16) "
                        f"or {COMPRESSED_FORMAT_VERSION} (compressed)")
    elif (version == COMPRESSED_FORMAT_VERSION) != isinstance(manifest.get("codec"), dict):
        problems.append(f"codec: format_version {version} {'needs' if version == COMPRESSED_FORMAT_VERSION else 'has no'} "
                        f"a codec entry")
    if manifest.get("kind") not in KINDS or (kind and manifest.get("kind") != kind):
        problems.append(f"kind: got {manifest.get('kind')!r}, expected {kind or ' or '.join(KINDS)!r}")
    for key in ("dim", "global_dim") if "global_dim" in manifest else ("dim",):
        if not isinstance(manifest.get(key), int) or manifest[key] < 1:
            problems.append(f"{key}: got {manifest.get(key)!r}, expected a positive integer")
    shards = manifest.get("shards")
    if not isinstance(shards, list) or not all(isinstance(s, dict) and {"name", "rows"} <= set(s) for s in shards):
        problems.append("shards: expected a list of {name, rows, ...} entries")
    return problems


class EmbeddingSet:
    """One side of an embedding set, opened through its manifest.

    Example:
        >>> import tempfile
        >>> side = resolve(tempfile.mkdtemp()).join("images")
        >>> _ = write_embedding_side(side, "images", [(["a", "b"], np.ones((2, 3, 4), np.float32) / 2, np.array([3, 2]))])
        >>> emb = EmbeddingSet.open(side)
        >>> len(emb), emb.fetch([1]).ids, emb.fetch([1]).tokens.shape
        (2, ['b'], (1, 2, 4))
    """

    def __init__(self, location: Location, manifest: dict):
        self.location = location
        self.manifest = manifest
        offsets = np.concatenate([[0], np.cumsum([int(s["rows"]) for s in manifest["shards"]])])
        self.shards = [ShardInfo(s["name"], int(s["rows"]), int(o)) for s, o in zip(manifest["shards"], offsets)]
        self._offsets = offsets  # (n_shards + 1,)
        self._codec = None

    @property
    def compressed(self) -> bool:
        """Whether tokens are stored as centroid ids plus residuals (docs/formats.md, compressed shards)."""
        return "codec" in self.manifest

    @property
    def codec(self):
        """The :class:`~teran_core.compress.codec.ResidualCodec` of a compressed set (read once), else None."""
        if self.compressed and self._codec is None:
            from teran_core.compress.store import read_codec

            self._codec = read_codec(self.location.parent(), self.manifest["codec"])
        return self._codec

    def __getstate__(self):
        return {**self.__dict__, "_codec": None}  # Ray tasks read the centroids themselves, not through the driver

    @classmethod
    def open(cls, location: Location | str, storage: StorageConfig | None = None, kind: str | None = None) -> "EmbeddingSet":
        """Opens a side folder after checking its manifest and that every listed shard exists.

        Args:
            location: the side folder (``<emb>/images`` or ``<emb>/captions``), a Location or URI.
            storage: object-store settings when ``location`` is a URI.
            kind: "images" or "captions" to insist on; None accepts either.

        Raises:
            FileNotFoundError: no manifest.json (the encode job has not finished) or a listed shard is missing.
            ValueError: the manifest does not describe an embedding set of the expected kind.
        """
        loc = resolve(location, storage) if isinstance(location, str) else location
        manifest_loc = loc.join("manifest.json")
        if not manifest_loc.exists():
            found = len(loc.list(".parquet"))
            raise FileNotFoundError(
                f"{manifest_loc.uri} does not exist ({found} shard file(s) found in the folder): the encode job writes "
                f"the manifest last, so the embedding set is unfinished or {loc.uri} is not an embedding set side; "
                f"rerun or resume the encode job, and point at <emb>/images or <emb>/captions"
            )
        manifest = json.loads(manifest_loc.read_text())
        problems = _manifest_problems(manifest, kind)
        if problems:
            raise ValueError(f"{manifest_loc.uri} is not a usable embedding manifest: " + "; ".join(problems))
        missing = sorted({s["name"] for s in manifest["shards"]} - set(loc.list(".parquet")))
        if missing:
            raise FileNotFoundError(f"{loc.uri}: shard(s) {missing[:5]} listed in manifest.json are missing")
        return cls(loc, manifest)

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def global_dim(self) -> int:
        """G, the width of the ``global`` column: D unless a prototype head wrote it (manifests before it: D)."""
        return int(self.manifest.get("global_dim", self.dim))

    def __len__(self) -> int:
        return int(self._offsets[-1])

    @contextlib.contextmanager
    def _parquet(self, shard: ShardInfo) -> Iterator[pq.ParquetFile]:
        """The shard's parquet file, after checking its row count against the manifest."""
        fs = self.location.pyarrow_filesystem()
        with fs.open_input_file(self.location.join(shard.name).path) as f:
            parquet = pq.ParquetFile(f)
            if parquet.metadata.num_rows != shard.rows:
                raise ValueError(
                    f"{self.location.join(shard.name).uri} has {parquet.metadata.num_rows} rows but manifest.json "
                    f"says {shard.rows}; the shard was replaced after the manifest was written: rerun the encode job"
                )
            yield parquet

    def read_shard(self, shard: ShardInfo, columns: Sequence[str] | None = None) -> pa.Table:
        """One whole shard (``columns`` limits what is read); compressed tokens come back decoded."""
        with self._parquet(shard) as parquet:
            if not self.compressed or (columns is not None and "tokens" not in columns):
                return parquet.read(columns=columns)
            table = self._decoded(parquet.read())
        return table if columns is None else table.select(list(columns))

    def read_codes(self, shard: ShardInfo) -> pa.Table:
        """A compressed shard's ``length`` and ``codes`` columns (centroid ids of slots 1..L-1)."""
        if not self.compressed:
            raise ValueError(f"{self.location.uri} stores fp16 tokens, not centroid codes; run 'teran compress' on it")
        return self.read_shard(shard, ["length", "codes"])

    def _decoded(self, table: pa.Table) -> pa.Table:
        from teran_core.compress.store import decompress_table

        return decompress_table(table, self.codec) if self.compressed else table

    def iter_shards(self, columns: Sequence[str] | None = None) -> Iterator[tuple[ShardInfo, pa.Table]]:
        """Yields ``(shard, table)`` in item order; ``columns`` limits what is read (e.g. ["global"])."""
        for shard in self.shards:
            yield shard, self.read_shard(shard, columns)

    def read_globals(self) -> np.ndarray:
        """(N, D) float32 global vectors of every item, in item order."""
        parts = [global_vectors(t) for _, t in self.iter_shards(["global"])]
        return np.concatenate(parts) if parts else np.zeros((0, self.global_dim), np.float32)

    def read_ids(self) -> list[str]:
        return [i for _, t in self.iter_shards(["id"]) for i in t.column("id").to_pylist()]

    def stored_bytes(self) -> int:
        """Bytes of this side's shard files (one folder listing): about what :meth:`load` holds in RAM."""
        sizes = self.location.file_sizes(".parquet")
        return sum(sizes[shard.name] for shard in self.shards)

    def load(self) -> "InMemoryTokens":
        """Every shard in RAM as stored, for collections that fit: fp16 tokens, or centroid ids and packed
        residuals (about 1/6 of fp16); its ``fetch`` decodes only the items asked for.

        Example:
            >>> import tempfile
            >>> side = resolve(tempfile.mkdtemp()).join("images")
            >>> _ = write_embedding_side(side, "images", [(["a", "b"], np.ones((2, 3, 4), np.float32) / 2, np.array([3, 2]))])
            >>> resident = EmbeddingSet.open(side).load()
            >>> resident.fetch([1, 0]).ids, resident.fetch([1]).tokens.shape
            (['b', 'a'], (1, 2, 4))
        """
        tables = []
        for shard in self.shards:
            with self._parquet(shard) as parquet:
                tables.append(parquet.read().combine_chunks())
        return InMemoryTokens(self, tables)

    def fetch(self, indices: Sequence[int]) -> EmbeddingBatch:
        """Token sets of the given items, in the order given, reading each shard once.

        Only the row groups holding requested rows are read, so a candidate list costs one
        read per shard it touches, never one read per item.

        Raises:
            IndexError: an index outside 0..N-1.
        """
        return from_table(self.fetch_table(indices))

    def fetch_table(self, indices: Sequence[int]) -> pa.Table:
        """The embedding rows of the given items as one table, in the order given (see :meth:`fetch`)."""
        return self.gather(indices, self._take_rows)

    def gather(self, indices: Sequence[int], take_rows: Callable[[ShardInfo, np.ndarray], pa.Table]) -> pa.Table:
        """The rows of ``indices`` in the order given, decoded, with ``take_rows(shard, rows)`` called once per
        shard touched (rows: positions inside that shard, as stored)."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"item index out of range 0..{len(self) - 1} in {self.location.uri}")
        shard_of = np.searchsorted(self._offsets, indices, side="right") - 1  # (n,)
        parts, order = [], []
        for s in np.unique(shard_of):
            positions = np.flatnonzero(shard_of == s)
            parts.append(take_rows(self.shards[s], indices[positions] - self._offsets[s]))
            order.append(positions)
        if not parts:
            return embedding_schema(self.dim, self.manifest.get("dtype", "float16"), self.global_dim).empty_table()
        return self._decoded(pa.concat_tables(parts).take(np.argsort(np.concatenate(order))))

    def _take_rows(self, shard: ShardInfo, rows: np.ndarray) -> pa.Table:
        with self._parquet(shard) as parquet:
            meta = parquet.metadata
            group_ends = np.cumsum([meta.row_group(g).num_rows for g in range(meta.num_row_groups)])  # (G,)
            group_starts = group_ends - [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
            group_of = np.searchsorted(group_ends, rows, side="right")  # (n,)
            groups = np.unique(group_of)
            table = parquet.read_row_groups(groups.tolist())
        sizes = group_ends[groups] - group_starts[groups]
        table_start = np.cumsum(sizes) - sizes  # where each read group begins in ``table``
        return table.take(table_start[np.searchsorted(groups, group_of)] + rows - group_starts[group_of])


class InMemoryTokens:
    """An embedding set's shards held in RAM as stored, with the same ``fetch`` as :class:`EmbeddingSet`
    (see :meth:`EmbeddingSet.load`): a compressed set stays compressed and only fetched items are decoded."""

    def __init__(self, emb: EmbeddingSet, tables: list[pa.Table]):
        self.emb = emb
        self.tables = dict(zip((s.name for s in emb.shards), tables))

    def __len__(self) -> int:
        return len(self.emb)

    @property
    def nbytes(self) -> int:
        """Bytes held (arrow buffers)."""
        return sum(t.nbytes for t in self.tables.values())

    def fetch(self, indices: Sequence[int]) -> EmbeddingBatch:
        return from_table(self.fetch_table(indices))

    def fetch_table(self, indices: Sequence[int]) -> pa.Table:
        return self.emb.gather(indices, lambda shard, rows: self.tables[shard.name].take(rows))


def global_vectors(table: pa.Table) -> np.ndarray:
    """(N, D) float32 from an embedding table's ``global`` column."""
    column = table.column("global").combine_chunks()
    dim = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, dim)


class EmbeddingSideWriter:
    """Writes a side in the embedding-set layout shard by shard: shard, completion marker; manifest last.

    For embeddings made outside the encode job (synthetic benchmarks, tests, imports); the encode
    job writes the same layout. Shards are named ``<kind>-00000.parquet``, ...

    Args:
        location: the side folder, ``<emb>/images`` or ``<emb>/captions``.
        kind: "images" or "captions".
        dtype: storage dtype, "float16" or "float32".
        model: what produced the embeddings (recorded in the manifest).
        row_group_rows: parquet row group size: the unit :meth:`EmbeddingSet.fetch` reads.
    """

    def __init__(self, location: Location, kind: str, *, dtype: str = "float16", model: dict | None = None,
                 row_group_rows: int = ROW_GROUP_ITEMS):
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r}: expected one of {KINDS}")
        self.location, self.kind, self.dtype, self.model, self.row_group_rows = location, kind, dtype, model or {}, row_group_rows
        self.entries: list[dict] = []
        self.dim: int | None = None
        self.global_dim: int | None = None

    def add(self, ids: list[str], tokens: np.ndarray, lengths: np.ndarray, globals_: np.ndarray | None = None) -> None:
        """Writes the next shard: ids (N,), tokens (N, L, D) L2-normalised, lengths (N,), and (N, G) global
        vectors when they are not slot 0."""
        name, self.dim = f"{self.kind}-{len(self.entries):05d}.parquet", tokens.shape[2]
        self.global_dim = self.dim if globals_ is None else globals_.shape[1]
        buffer = pa.BufferOutputStream()
        table = to_table(list(ids), tokens, np.asarray(lengths), self.dtype, globals_)
        pq.write_table(table, buffer, row_group_size=self.row_group_rows,
                       use_dictionary=False, write_statistics=["id", "length"])  # vectors: no dictionary or min/max
        data = buffer.getvalue().to_pybytes()
        self.location.join(name).write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        self.location.join("_done", name.replace(".parquet", ".json")).write_text(
            json.dumps({"rows": len(ids), "sha256": digest, "source": name, "source_sha256": None})
        )
        self.entries.append({"name": name, "rows": len(ids), "sha256": digest, "source": name})

    def finish(self) -> dict:
        """Writes manifest.json (after every shard) and returns it."""
        manifest = {"format_version": EMBEDDINGS_FORMAT_VERSION, "kind": self.kind, "dim": self.dim,
                    "global_dim": self.global_dim, "dtype": self.dtype, "model": self.model, "shards": self.entries, "rejected": 0}
        self.location.join("manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        return manifest


def write_embedding_side(location: Location, kind: str, shards: Iterable[tuple[list[str], np.ndarray, np.ndarray]],
                         **options) -> dict:
    """Writes a whole side from ``(ids, tokens, lengths)`` per shard; returns the manifest.

    ``options`` are those of :class:`EmbeddingSideWriter` (dtype, model, row_group_rows).
    """
    writer = EmbeddingSideWriter(location, kind, **options)
    for ids, tokens, lengths in shards:
        writer.add(ids, tokens, lengths)
    return writer.finish()


def open_embedding_pair(root: Location | str, storage: StorageConfig | None = None) -> tuple[EmbeddingSet, EmbeddingSet]:
    """The images and captions sides of an embedding set root ``<emb>``."""
    loc = resolve(root, storage) if isinstance(root, str) else root
    return EmbeddingSet.open(loc.join("images"), kind="images"), EmbeddingSet.open(loc.join("captions"), kind="captions")
