"""The encode job's library: plan shards, encode batches, write shards exactly once, resume, report.

``jobs/encode.py`` wires these into Ray Data; everything here runs without Ray.
"""

from teran_core.encode.encoders import TeranEncoder
from teran_core.encode.finalize import ExactlyOnceError
from teran_core.encode.identity import OutputConflict
from teran_core.encode.model_spec import ModelSpec
from teran_core.encode.parts import write_parts
from teran_core.encode.read import read_shards
from teran_core.encode.run import run_encode
from teran_core.encode.stages import Stages

__all__ = [
    "ExactlyOnceError", "ModelSpec", "OutputConflict", "Stages", "TeranEncoder",
    "read_shards", "run_encode", "write_parts",
]
