"""Distilling TERAN's alignment into a global head (ALADIN-style, docs/distill.md).

``jobs/distill.py`` wires these into Ray Train; nothing here imports Ray.
"""

from teran_core.distill.agreement import agreement, spearman, topk_overlap
from teran_core.distill.loop import DevAgreement, FrozenTokens, TokenPool, distill_step
from teran_core.distill.loss import DistillLossConfig, hardest_items, listnet_loss, teacher_scores

__all__ = ["DevAgreement", "DistillLossConfig", "FrozenTokens", "TokenPool", "agreement",
           "distill_step", "hardest_items", "listnet_loss", "spearman", "teacher_scores", "topk_overlap"]
