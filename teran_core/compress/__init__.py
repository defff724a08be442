"""The late-interaction token engine's store: shared centroids and residual-compressed tokens (docs/engine.md)."""

from teran_core.compress.centroids import centroid_count, train_centroids
from teran_core.compress.codec import ResidualCodec, fit_codec

__all__ = ["ResidualCodec", "centroid_count", "fit_codec", "train_centroids"]
