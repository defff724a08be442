"""The residual codec: a token is its nearest centroid's id plus ``nbits`` bits per dimension of residual.

Two ways to spend the D*nbits/8 residual bytes (docs/engine.md, "Residual codec"):

- ``buckets``, ColBERTv2's scheme: residuals ``x - C[code]`` of a held-out sample, pooled over
  dimensions, give 2^nbits buckets between their quantiles; a residual value is stored as its bucket
  number and decoded as the bucket's midpoint, so a value inside the held-out range (its 1%..99%
  quantiles) comes back within half its bucket's width. Bits are packed most significant first.
- ``product``: the residual is rotated (OPQ) and cut into D*nbits/8 sub-vectors, each stored as the
  byte of its nearest of 256 codewords (product quantisation, as FAISS's IVF-PQ stores residuals). On
  the 100K-image set's tokens at 2 bits it leaves 0.12 of the buckets' squared error (benchmarks/codec_error.py).

At D = 128: 4 B of centroid id + 16 B (1 bit) or 32 B (2 bits), against 256 B of fp16.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

__all__ = ["TAIL", "ProductResidual", "ResidualCodec", "fit_codec", "fit_product_residual", "pack_bits", "unpack_bits"]

TAIL = 0.01  # the outer edges are the 1% and 99% quantiles: min and max would stretch the outer buckets over rare values
# token x centroid scores computed at once: 4,096 tokens at 16,384 centroids. Blocks of 65,536 tokens (4 GiB) made
# every compress task hold 5.5 GiB and assigned 3.4x slower than this, memory-bound (docs/engine.md)
SCORE_BLOCK_BYTES = 256 * 2**20


def pack_bits(buckets: np.ndarray, nbits: int) -> np.ndarray:
    """(T, D) bucket numbers < 2^nbits -> (T, D*nbits/8) uint8, most significant bit first.

    Example:
        >>> pack_bits(np.array([[3, 0, 1, 2]]), 2).tolist()
        [[198]]
    """
    bits = (buckets[..., None].astype(np.uint8) >> np.arange(nbits - 1, -1, -1, dtype=np.uint8)) & 1  # (T, D, nbits)
    return np.packbits(bits.reshape(len(buckets), -1), axis=1)


def unpack_bits(packed: np.ndarray, dim: int, nbits: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: (T, D*nbits/8) uint8 -> (T, D) bucket numbers.

    Example:
        >>> unpack_bits(np.array([[198]], np.uint8), 4, 2).tolist()
        [[3, 0, 1, 2]]
    """
    bits = np.unpackbits(packed, axis=1, count=dim * nbits).reshape(len(packed), dim, nbits)
    return (bits << np.arange(nbits - 1, -1, -1, dtype=np.uint8)).sum(axis=2, dtype=np.uint8)


@dataclasses.dataclass
class ProductResidual:
    """Residuals as one byte per sub-vector after a rotation: OPQ + PQ with up to 256 codewords per sub-space.

    Attributes:
        rotation: (D, D) orthonormal; a residual r is quantised as ``r @ rotation.T`` and decoded back by ``@ rotation``.
        codebooks: (M, K, D / M) float32 codewords of each sub-space, K = 256 (fewer for a held-out sample under 256 tokens).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> pq = ProductResidual(np.eye(4, dtype=np.float32), rng.normal(size=(2, 256, 2)).astype(np.float32))
        >>> r = pq.codebooks[[0, 1], [7, 9]].reshape(1, 4)  # codeword 7 of sub-space 0, then codeword 9 of sub-space 1
        >>> pq.encode(r).tolist(), bool(np.allclose(pq.decode(pq.encode(r)), r))
        ([[7, 9]], True)
    """

    rotation: np.ndarray
    codebooks: np.ndarray

    def __post_init__(self):
        m, k, sub = self.codebooks.shape
        if not 1 <= k <= 256 or self.rotation.shape != (m * sub, m * sub):
            raise ValueError(f"product residual: codebooks {self.codebooks.shape} and rotation {self.rotation.shape} "
                             f"are not (M, K <= 256, D/M) and (D, D)")

    @property
    def code_bytes(self) -> int:
        return int(self.codebooks.shape[0])

    def encode(self, residuals: np.ndarray, block: int = 4096) -> np.ndarray:
        """(T, D) residuals -> (T, M) uint8: each rotated sub-vector's nearest codeword."""
        m, _, sub = self.codebooks.shape
        codes = np.empty((len(residuals), m), np.uint8)
        doubled = 2 * self.codebooks.transpose(0, 2, 1)  # (M, D/M, K)
        norms = (self.codebooks ** 2).sum(2)  # (M, K)
        for start in range(0, len(residuals), block):
            rotated = (residuals[start:start + block] @ self.rotation.T).reshape(-1, m, sub)  # (t, M, D/M)
            for space in range(m):  # nearest codeword: the largest 2 x.c - |c|^2
                scores = rotated[:, space] @ doubled[space] - norms[space]  # (t, K)
                codes[start:start + block, space] = np.argmax(scores, axis=1)
        return codes

    @functools.cached_property
    def _codewords(self) -> tuple[np.ndarray, np.ndarray]:
        """(every codeword (M * K, D/M), each sub-space's first row (M,)): one flat gather decodes a token."""
        m, k, sub = self.codebooks.shape
        return np.ascontiguousarray(self.codebooks.reshape(m * k, sub), np.float32), np.arange(m, dtype=np.intp) * k

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(T, M) uint8 -> (T, D) float32 residuals."""
        table, first = self._codewords
        rotated = table[codes.astype(np.intp) + first]  # (T, M, D/M)
        return rotated.reshape(len(codes), -1) @ self.rotation


def fit_product_residual(residuals: np.ndarray, code_bytes: int, seed: int = 0) -> ProductResidual:
    """OPQ rotation and PQ codebooks (FAISS) trained on held-out residuals: 256 codewords per sub-space, or the largest
    power of two the sample holds (39 x 256 residuals avoid FAISS's warning).

    Example:
        >>> residuals = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)
        >>> fit_product_residual(residuals, code_bytes=2).codebooks.shape  # 100 residuals: 64 codewords per sub-space
        (2, 64, 4)
    """
    import faiss

    residuals = np.ascontiguousarray(residuals, np.float32)
    if len(residuals) < 2:
        raise ValueError(f"the product residual needs at least 2 held-out tokens, got {len(residuals)}")
    dim, bits = residuals.shape[1], min(8, int(np.log2(len(residuals))))
    opq = faiss.OPQMatrix(dim, code_bytes)
    opq.pq = faiss.ProductQuantizer(dim, code_bytes, bits)
    opq.pq.cp.seed = seed
    opq.train(residuals)
    rotation = faiss.vector_to_array(opq.A).reshape(dim, dim)
    pq = faiss.ProductQuantizer(dim, code_bytes, bits)
    pq.cp.seed = seed
    pq.train(np.ascontiguousarray(residuals @ rotation.T))
    return ProductResidual(rotation.astype(np.float32), faiss.vector_to_array(pq.centroids).reshape(code_bytes, 2**bits, -1))


@dataclasses.dataclass
class ResidualCodec:
    """Centroids plus the residual codec (buckets, or product codes); what a compressed embedding set's manifest records.

    Attributes:
        centroids: (K, D) float32 unit-norm centroids shared by both sides.
        nbits: residual bits per dimension, 1 or 2.
        edges: (2^nbits + 1,) bucket edges, quantiles TAIL, 1/B, ..., (B-1)/B, 1 - TAIL of held-out
            residuals; the inner ones are the cutoffs. A value beyond the outer edges decodes to its
            outer bucket's midpoint.
        product: when set, the residual bytes are its codes instead of packed bucket numbers.
    """

    centroids: np.ndarray
    nbits: int
    edges: np.ndarray
    product: ProductResidual | None = None

    def __post_init__(self):
        if self.nbits not in (1, 2):
            raise ValueError(f"residual codec nbits {self.nbits}: expected 1 or 2")
        if self.centroids.shape[1] * self.nbits % 8:
            raise ValueError(f"residual codec: D={self.centroids.shape[1]} x {self.nbits} bits is not a whole number of bytes")
        if self.product is not None and self.product.codebooks.shape[0] != self.residual_bytes:
            raise ValueError(f"residual codec: {self.product.codebooks.shape[0]} product sub-spaces for {self.residual_bytes} residual bytes")

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def cutoffs(self) -> np.ndarray:
        """(B - 1,) values that separate the buckets."""
        return self.edges[1:-1]

    @property
    def weights(self) -> np.ndarray:
        """(B,) the value each bucket decodes to: its midpoint."""
        return (self.edges[:-1] + self.edges[1:]) / 2

    @property
    def residual(self) -> str:
        """How the residual bytes are spent: ``buckets`` or ``product``."""
        return "buckets" if self.product is None else "product"

    @property
    def residual_bytes(self) -> int:
        return self.dim * self.nbits // 8

    @property
    def bytes_per_token(self) -> int:
        """Residual bytes plus a 4-byte centroid id."""
        return self.residual_bytes + 4

    def assign(self, vectors: np.ndarray, block_bytes: int = SCORE_BLOCK_BYTES) -> np.ndarray:
        """(T,) int32 id of each vector's nearest centroid by inner product, scored ``block_bytes`` of scores at a time."""
        codes = np.empty(len(vectors), np.int32)
        batch = max(1, block_bytes // (4 * len(self.centroids)))
        for start in range(0, len(vectors), batch):
            codes[start:start + batch] = np.argmax(vectors[start:start + batch] @ self.centroids.T, axis=1)
        return codes

    def encode(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T, D) float vectors -> (codes (T,) int32, packed residuals (T, D*nbits/8) uint8).

        Example:
            >>> codec = ResidualCodec(np.eye(8, dtype=np.float32), 1, np.array([-0.1, 0.0, 0.1]))
            >>> codes, packed = codec.encode(np.eye(8, dtype=np.float32)[[2]])
            >>> codes.tolist(), packed.shape
            ([2], (1, 1))
        """
        vectors = np.asarray(vectors, np.float32)
        codes = self.assign(vectors)
        residuals = vectors - self.centroids[codes]  # (T, D)
        if self.product is not None:
            return codes, self.product.encode(residuals)
        return codes, pack_bits(np.searchsorted(self.cutoffs, residuals, side="right"), self.nbits)

    @functools.cached_property
    def byte_values(self) -> np.ndarray:
        """(256, 8 / nbits) float32: the residual values one packed byte decodes to (ColBERT's lookup table)."""
        every_byte = np.arange(256, dtype=np.uint8)[:, None]  # (256, 1)
        return self.weights.astype(np.float32)[unpack_bits(every_byte, 8 // self.nbits, self.nbits)]

    def decode(self, codes: np.ndarray, packed: np.ndarray) -> np.ndarray:
        """(T, D) float32 centroid + decoded residual (bucket midpoints or codewords), as stored (not renormalised).

        Example:
            >>> codec = ResidualCodec(np.zeros((1, 4), np.float32), 2, np.array([-3.0, -1.0, 0.0, 1.0, 3.0]))
            >>> codec.decode(np.array([0]), pack_bits(np.array([[3, 0, 1, 2]]), 2)).tolist()
            [[2.0, -2.0, -0.5, 0.5]]
        """
        if self.product is not None:
            return self.centroids[codes] + self.product.decode(packed)
        residuals = self.byte_values[packed].reshape(len(packed), self.dim)  # one lookup a byte, not a shift a bit
        return self.centroids[codes] + residuals

    def decompress(self, codes: np.ndarray, packed: np.ndarray) -> np.ndarray:
        """(T, D) float32 decoded tokens rescaled to unit norm, as every token store hands them out.

        Example:
            >>> codec = ResidualCodec(np.eye(8, dtype=np.float32), 2, np.array([-0.2, -0.1, 0.0, 0.1, 0.2]))
            >>> x = codec.decompress(*codec.encode(np.eye(8, dtype=np.float32)[[5]]))
            >>> int(np.argmax(x)), round(float(np.linalg.norm(x)), 4)
            (5, 1.0)
        """
        decoded = self.decode(codes, packed)
        return decoded / np.maximum(np.linalg.norm(decoded, axis=1, keepdims=True), 1e-12)

    def to_manifest(self) -> dict:
        """The manifest's ``codec`` entry without the centroids (they are a file of their own)."""
        return {"name": "residual", "residual": self.residual, "nbits": self.nbits, "n_centroids": int(len(self.centroids)), "dim": self.dim,
                "edges": [float(e) for e in self.edges], "cutoffs": [float(c) for c in self.cutoffs],
                "weights": [float(w) for w in self.weights]}


def fit_codec(centroids: np.ndarray, heldout: np.ndarray, nbits: int, residual: str = "buckets") -> ResidualCodec:
    """Bucket edges (and, for ``product``, the rotation and codebooks) from the residuals of a held-out sample
    (not the one k-means saw).

    Args:
        centroids: (K, D) unit-norm centroids.
        heldout: (n, D) unit-norm token vectors.
        nbits: 1 or 2.
        residual: ``buckets`` (ColBERTv2's) or ``product`` (OPQ + PQ, same bytes).

    Example:
        >>> x = np.random.default_rng(0).normal(size=(500, 8)).astype(np.float32)
        >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
        >>> codec = fit_codec(x[:4], x[100:], 2)
        >>> len(codec.cutoffs), len(codec.weights), codec.bytes_per_token
        (3, 4, 6)
    """
    if residual not in ("buckets", "product"):
        raise ValueError(f"residual codec: residual {residual!r}, expected 'buckets' or 'product'")
    codec = ResidualCodec(np.ascontiguousarray(centroids, np.float32), nbits, np.zeros(2**nbits + 1))
    heldout = np.asarray(heldout, np.float32)
    residuals = heldout - codec.centroids[codec.assign(heldout)]  # (n, D)
    levels = np.linspace(0, 1, 2**nbits + 1)
    levels[0], levels[-1] = TAIL, 1 - TAIL
    edges = np.quantile(residuals.reshape(-1), levels).astype(np.float64)
    product = fit_product_residual(residuals, codec.residual_bytes) if residual == "product" else None
    return ResidualCodec(codec.centroids, nbits, edges, product)
