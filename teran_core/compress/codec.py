"""The residual codec: a token is its nearest centroid's id plus ``nbits`` bits per dimension of residual.

ColBERTv2's scheme (docs/engine.md, "Residual codec"): residuals ``x - C[code]`` of a held-out
sample, pooled over dimensions, give 2^nbits buckets between their quantiles; a residual value is
stored as its bucket number and decoded as the bucket's midpoint, so a value inside the held-out
range (its 1%..99% quantiles) comes back within half its bucket's width. Bits are packed most significant first, D*nbits/8
bytes a token. At D = 128: 4 B of centroid id + 16 B (1 bit) or 32 B (2 bits), against 256 B of fp16.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

__all__ = ["TAIL", "ResidualCodec", "fit_codec", "pack_bits", "unpack_bits"]

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
class ResidualCodec:
    """Centroids plus residual buckets; what a compressed embedding set's manifest records.

    Attributes:
        centroids: (K, D) float32 unit-norm centroids shared by both sides.
        nbits: residual bits per dimension, 1 or 2.
        edges: (2^nbits + 1,) bucket edges, quantiles TAIL, 1/B, ..., (B-1)/B, 1 - TAIL of held-out
            residuals; the inner ones are the cutoffs. A value beyond the outer edges decodes to its
            outer bucket's midpoint.
    """

    centroids: np.ndarray
    nbits: int
    edges: np.ndarray

    def __post_init__(self):
        if self.nbits not in (1, 2):
            raise ValueError(f"residual codec nbits {self.nbits}: expected 1 or 2")
        if self.centroids.shape[1] * self.nbits % 8:
            raise ValueError(f"residual codec: D={self.centroids.shape[1]} x {self.nbits} bits is not a whole number of bytes")

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
    def bytes_per_token(self) -> int:
        """Packed residual bytes plus a 4-byte centroid id."""
        return self.dim * self.nbits // 8 + 4

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
        buckets = np.searchsorted(self.cutoffs, vectors - self.centroids[codes], side="right")  # (T, D)
        return codes, pack_bits(buckets, self.nbits)

    @functools.cached_property
    def byte_values(self) -> np.ndarray:
        """(256, 8 / nbits) float32: the residual values one packed byte decodes to (ColBERT's lookup table)."""
        every_byte = np.arange(256, dtype=np.uint8)[:, None]  # (256, 1)
        return self.weights.astype(np.float32)[unpack_bits(every_byte, 8 // self.nbits, self.nbits)]

    def decode(self, codes: np.ndarray, packed: np.ndarray) -> np.ndarray:
        """(T, D) float32 centroid + bucket midpoints, as stored (not renormalised).

        Example:
            >>> codec = ResidualCodec(np.zeros((1, 4), np.float32), 2, np.array([-3.0, -1.0, 0.0, 1.0, 3.0]))
            >>> codec.decode(np.array([0]), pack_bits(np.array([[3, 0, 1, 2]]), 2)).tolist()
            [[2.0, -2.0, -0.5, 0.5]]
        """
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
        return {"name": "residual", "nbits": self.nbits, "n_centroids": int(len(self.centroids)), "dim": self.dim,
                "edges": [float(e) for e in self.edges], "cutoffs": [float(c) for c in self.cutoffs],
                "weights": [float(w) for w in self.weights]}


def fit_codec(centroids: np.ndarray, heldout: np.ndarray, nbits: int) -> ResidualCodec:
    """Bucket edges from the residuals of a held-out sample (not the one k-means saw).

    Args:
        centroids: (K, D) unit-norm centroids.
        heldout: (n, D) unit-norm token vectors.
        nbits: 1 or 2.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(500, 8)).astype(np.float32)
        >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
        >>> codec = fit_codec(x[:4], x[100:], 2)
        >>> len(codec.cutoffs), len(codec.weights), codec.bytes_per_token
        (3, 4, 6)
    """
    codec = ResidualCodec(np.ascontiguousarray(centroids, np.float32), nbits, np.zeros(2**nbits + 1))
    heldout = np.asarray(heldout, np.float32)
    residuals = heldout - codec.centroids[codec.assign(heldout)]  # (n, D)
    levels = np.linspace(0, 1, 2**nbits + 1)
    levels[0], levels[-1] = TAIL, 1 - TAIL
    return ResidualCodec(codec.centroids, nbits, np.quantile(residuals.reshape(-1), levels).astype(np.float64))
