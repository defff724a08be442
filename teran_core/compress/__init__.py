"""The late-interaction token engine's store: shared centroids and residual-compressed tokens (docs/engine.md)."""

from teran_core.compress.centroids import centroid_count, train_centroids
from teran_core.compress.codec import CODECS, ResidualCodec, fit_codec

__all__ = ["CODECS", "ResidualCodec", "centroid_count", "fit_codec", "train_centroids"]
