"""teran datasets: sharded parquet on a local disk or S3, their manifest, validation and batching.

The formats are documented in docs/formats.md. Converters live in ``teran_core.data.convert`` and
the synthetic dataset in ``teran_core.data.synth``; the Ray jobs that run them are ``jobs/convert.py``
and ``jobs/synth.py``.
"""

from teran_core.data.check import DatasetCheck, check_dataset
from teran_core.data.collate import CaptionCollator, collate_images
from teran_core.data.errors import DataError, Reject
from teran_core.data.manifest import DatasetManifest, ShardInfo
from teran_core.data.readers import iter_shard_batches, read_shard
from teran_core.data.splits import load_split
from teran_core.data.validate import validate_captions, validate_images

__all__ = [
    "CaptionCollator", "DataError", "DatasetCheck", "DatasetManifest", "Reject", "ShardInfo", "check_dataset",
    "collate_images", "iter_shard_batches", "load_split", "read_shard", "validate_captions", "validate_images",
]
