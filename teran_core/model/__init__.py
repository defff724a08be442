"""TERAN's encoders, ported from the reference implementation (models/teran.py, text.py, visual.py)."""

from teran_core.model.config import TeranConfig, load_reference_config, teran_coco_mrsw
from teran_core.model.teran import TERAN

__all__ = ["TERAN", "TeranConfig", "load_reference_config", "teran_coco_mrsw"]
