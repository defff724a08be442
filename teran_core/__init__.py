"""teran: TERAN image-text retrieval as a library; importable without Ray.

The public names are re-exported here; the Ray jobs that use them live in ``jobs/``.
"""

from teran_core.config import ConfigError, load_config
from teran_core.storage import Location, StorageConfig, resolve

__all__ = ["ConfigError", "Location", "StorageConfig", "load_config", "resolve"]
