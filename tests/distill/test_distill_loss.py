"""The ListNet distillation loss, hard-negative mining and the student-teacher agreement, without Ray."""

import math

import pytest
import torch
import torch.nn.functional as F

from teran_core.alignment import TokenSet
from teran_core.distill import DistillLossConfig, agreement, hardest_items, listnet_loss, spearman, topk_overlap
from teran_core.distill.loop import HeadPair, TokenPool, distill_step
from teran_core.model.config import TeranConfig
from teran_core.model.global_head import GlobalHeadConfig, build_global_head

# teacher probabilities by row: [.5 .25 .25], [.25 .25 .5], [.25 .25 .5]; by column: [.5 .25 .25], [1/3 1/3 1/3], [.2 .4 .4]
TEACHER = torch.log(torch.tensor([[2.0, 1.0, 1.0], [1.0, 1.0, 2.0], [1.0, 1.0, 2.0]]))
# student probabilities (scale 6), by row and by column alike: [.5 .25 .25], [.25 .5 .25], [.25 .25 .5]
STUDENT = torch.log(torch.tensor([[2.0, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 1.0, 2.0]])) / 6
H, Q = math.log(2), math.log(4)  # -log .5, -log .25
ROWS = [0.5 * H + 0.5 * Q, 0.25 * Q + 0.25 * H + 0.5 * Q, 0.5 * Q + 0.5 * H]  # image -> captions lists
COLUMNS = [0.5 * H + 0.5 * Q, (Q + H + Q) / 3, 0.2 * Q + 0.4 * Q + 0.4 * H]  # caption -> images lists


def test_listnet_matches_the_hand_computed_3x3_case_in_both_directions():
    loss = listnet_loss(STUDENT, TEACHER, DistillLossConfig())
    assert float(loss) == pytest.approx(sum(ROWS) / 3 + sum(COLUMNS) / 3, abs=1e-5)
    # transposed, rows and columns swap roles: the same two sums
    assert float(listnet_loss(STUDENT.T, TEACHER.T, DistillLossConfig())) == pytest.approx(float(loss), abs=1e-6)
    # the third row and column as hard negatives only: they lengthen the lists but ask nothing
    hard = listnet_loss(STUDENT, TEACHER, DistillLossConfig(), queries=2)
    assert float(hard) == pytest.approx(sum(ROWS[:2]) / 2 + sum(COLUMNS[:2]) / 2, abs=1e-5)


def test_listnet_temperature_and_scale_and_teacher_gets_no_gradient():
    teacher, student = (TEACHER * 2).requires_grad_(), (STUDENT / 2).requires_grad_()
    cfg = DistillLossConfig(teacher_temperature=2.0, student_scale=12.0)
    loss = listnet_loss(student, teacher, cfg)
    assert float(loss.detach()) == pytest.approx(sum(ROWS) / 3 + sum(COLUMNS) / 3, abs=1e-5)
    loss.backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="queries 4 outside 1..3"):
        listnet_loss(STUDENT, TEACHER, cfg, queries=4)


def test_hardest_items_takes_each_querys_best_outside_the_batch():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.7], [0.8, 0.2, 0.3, 0.0]])
    assert hardest_items(scores, 2).tolist() == [0, 1, 2, 3]
    assert hardest_items(scores, 1, exclude=torch.tensor([True, True, False, False])).tolist() == [2, 3]
    assert hardest_items(scores, 1, exclude=torch.ones(4, dtype=torch.bool)).tolist() == []


def test_agreement_metrics():
    teacher = torch.tensor([[4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    assert topk_overlap(teacher * 2, teacher, k=2) == 1.0
    assert topk_overlap(-teacher, teacher, k=2) == 0.0
    assert spearman(-teacher, teacher) == pytest.approx(-1.0)
    both = agreement(teacher.flip(1), teacher, k=2)  # rows reversed: no top-2 agrees; columns have 2 items, top-2 is all
    assert both["top2_overlap"] == pytest.approx((0.0 + 1.0) / 2)
    assert both["spearman"] == pytest.approx((-1.0 + -1.0) / 2)


def _token_sets(generator, concepts, n, length):
    """Items whose tokens are noisy copies of a few shared concepts: the teacher's ranking has structure to learn."""
    picks = torch.randint(0, len(concepts), (n, length), generator=generator) % 3 + 3 * torch.randint(
        0, len(concepts) // 3, (n, 1), generator=generator)  # each item draws from one group of 3 concepts
    noise = 0.5 * torch.randn(n, length, concepts.shape[1], generator=generator)
    lengths = torch.full((n,), length)
    return TokenSet(F.normalize(concepts[picks] + noise, dim=2), lengths)


@pytest.mark.parametrize("hard_negatives", [0, 4])
def test_the_students_top10_overlap_with_the_teacher_rises_over_the_steps(hard_negatives):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    dim, teacher_config = 16, TeranConfig()  # MrSw, as the demo's TERAN
    concepts = F.normalize(torch.randn(12, dim, generator=gen), dim=1)
    train_images, train_captions = _token_sets(gen, concepts, 256, 8), _token_sets(gen, concepts, 256, 10)
    dev_images, dev_captions = _token_sets(gen, concepts, 64, 8), _token_sets(gen, concepts, 64, 10)
    from teran_core.distill import teacher_scores

    dev_teacher = teacher_scores(dev_images, dev_captions, teacher_config)
    head = build_global_head(GlobalHeadConfig(layers=1, heads=2, dropout=0.0), embed_size=dim)
    pair, optimizer = HeadPair(head), torch.optim.Adam(head.parameters(), lr=3e-3)
    # a sharp teacher: these synthetic sums spread less than a trained TERAN's
    loss_config = DistillLossConfig(teacher_temperature=0.2, hard_negatives=hard_negatives, pool_batches=4)
    pool = TokenPool(loss_config.pool_batches)

    def overlap():
        with torch.no_grad():
            head.eval()
            student = head(dev_images) @ head(dev_captions).T
            head.train()
        return agreement(student, dev_teacher)["top10_overlap"]

    curve = [overlap()]
    for _ in range(6):
        for start in range(0, 256, 32):
            rows = torch.arange(start, start + 32)
            ids = ([f"i{r}" for r in rows.tolist()], [f"c{r}" for r in rows.tolist()])
            terms = distill_step(pair, teacher_config, train_images[rows], train_captions[rows], optimizer, 3e-3, 2.0,
                                 loss_config, pool, ids)
            assert terms["list_length"] >= 32 + (hard_negatives > 0 and start > 0)  # hard negatives once the pool fills
        curve.append(overlap())
    assert curve[-1] > curve[0] + 0.05 and curve[-1] > curve[3], curve  # chance is about 0.2


def test_distilling_moves_the_prototypes_and_their_temperature_and_lowers_the_loss():
    gen = torch.Generator().manual_seed(1)
    concepts = F.normalize(torch.randn(12, 16, generator=gen), dim=1)
    images, captions = _token_sets(gen, concepts, 32, 8), _token_sets(gen, concepts, 32, 10)
    head = build_global_head(GlobalHeadConfig(kind="prototypes", prototypes=24), embed_size=16)
    start = {name: p.detach().clone() for name, p in head.named_parameters()}
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    config = DistillLossConfig(teacher_temperature=0.2, student_scale=30.0)
    losses = [distill_step(HeadPair(head), TeranConfig(), images, captions, optimizer, 1e-2, 2.0, config)["loss"] for _ in range(40)]
    assert losses[-1] < losses[0] - 0.1, losses
    assert {name for name, p in head.named_parameters() if not torch.equal(p, start[name])} == {"prototypes", "log_temperature"}
