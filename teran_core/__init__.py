"""teran: TERAN image-text retrieval as a library; importable without Ray.

The public names are re-exported here; the Ray jobs that use them live in ``jobs/``.
"""

from teran_core.alignment import TokenSet, alignment_scores
from teran_core.checkpoint import load_checkpoint, load_reference_checkpoint, save_checkpoint
from teran_core.config import ConfigError, load_config
from teran_core.model import TERAN, TeranConfig
from teran_core.storage import Location, StorageConfig, resolve

__all__ = [
    "ConfigError", "Location", "StorageConfig", "load_config", "resolve",
    "TERAN", "TeranConfig", "TokenSet", "alignment_scores",
    "load_reference_checkpoint", "save_checkpoint", "load_checkpoint",
]
