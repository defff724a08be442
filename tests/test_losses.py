"""The VSE++ hinge and TeranLoss against direct computations."""

import pytest
import torch
import torch.nn.functional as F

from teran_core import TeranConfig, TokenSet, alignment_scores
from teran_core.losses import TeranLoss, hinge_loss


def hinge_by_loops(S: torch.Tensor, margin: float, max_violation: bool) -> float:
    """For each image i: its captions j != i against caption i; for each caption i: images j != i against image i."""
    B, total = S.shape[0], 0.0
    for i in range(B):
        for_image = [max(0.0, margin + S[i, j].item() - S[i, i].item()) for j in range(B) if j != i]
        for_caption = [max(0.0, margin + S[j, i].item() - S[i, i].item()) for j in range(B) if j != i]
        total += (max(for_image) + max(for_caption)) if max_violation else (sum(for_image) + sum(for_caption))
    return total


def test_hinge_by_hand():
    S = torch.tensor([[0.9, 0.8, 0.1], [0.3, 0.5, 0.6], [0.2, 0.7, 0.4]])
    # image rows:     0: 0.2+0.8-0.9=0.1, 0.2+0.1-0.9<0   1: 0.2+0.3-0.5=0.0, 0.2+0.6-0.5=0.3   2: 0.2+0.2-0.4=0, 0.2+0.7-0.4=0.5
    # caption columns: 0: 0.2+0.3-0.9<0, 0.2+0.2-0.9<0   1: 0.2+0.8-0.5=0.5, 0.2+0.7-0.5=0.4   2: 0.2+0.1-0.4<0, 0.2+0.6-0.4=0.4
    assert hinge_loss(S, 0.2, max_violation=True).item() == pytest.approx(0.1 + 0.3 + 0.5 + 0 + 0.5 + 0.4)
    assert hinge_loss(S, 0.2, max_violation=False).item() == pytest.approx(0.1 + 0.3 + 0.5 + 0 + 0.9 + 0.4)


@pytest.mark.parametrize("max_violation", [True, False])
def test_hinge_matches_the_loops(max_violation):
    S = torch.randn(6, 6)
    assert hinge_loss(S, 0.2, max_violation).item() == pytest.approx(hinge_by_loops(S, 0.2, max_violation), rel=1e-6)


def test_hinge_refuses_non_square_scores():
    with pytest.raises(ValueError, match=r"got scores \(2, 3\)"):
        hinge_loss(torch.zeros(2, 3))


def batch(size=5, dim=8):
    images = TokenSet(F.normalize(torch.randn(size, 6, dim), dim=2), torch.tensor([6, 4, 6, 2, 5][:size]))
    captions = TokenSet(F.normalize(torch.randn(size, 9, dim), dim=2), torch.tensor([9, 4, 7, 5, 8][:size]))
    return images, captions


@pytest.mark.parametrize("mode", ["MrSw", "MwSr", "symm"])
def test_teran_loss_is_the_weighted_sum_of_both_hinges(mode):
    config = TeranConfig(alignment_mode=mode, alignment_weight=0.5, matching_weight=2.0, max_violation=False, margin=0.3)
    images, captions = batch()
    terms = TeranLoss(config)(images, captions)
    alignment = hinge_by_loops(alignment_scores(images, captions, mode, padding="masked"), 0.3, False)
    matching = hinge_by_loops(images.tokens[:, 0] @ captions.tokens[:, 0].T, 0.3, False)
    assert terms["alignment"].item() == pytest.approx(alignment, rel=1e-5)
    assert terms["matching"].item() == pytest.approx(matching, rel=1e-5)
    assert terms["total"].item() == pytest.approx(0.5 * alignment + 2.0 * matching, rel=1e-5)


def test_the_reference_default_computes_only_the_alignment_term_and_has_gradients():
    images, captions = batch()
    images.tokens.requires_grad_(True)
    terms = TeranLoss(TeranConfig())(images, captions)
    assert sorted(terms) == ["alignment", "total"]
    terms["total"].backward()
    assert torch.isfinite(images.tokens.grad).all() and images.tokens.grad.abs().sum() > 0


def test_unpaired_batches_are_refused():
    images, captions = batch()
    with pytest.raises(ValueError, match="5 images and 4 captions"):
        TeranLoss(TeranConfig())(images, captions[:4])
