"""utils.distill: the Hinton loss by hand, unlabelled rows, packing, and a student that learns its teacher."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import utils
from utils import distill


def _batch(seed=0, n=12, c=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g), torch.randn(n, c, generator=g) * 3, torch.randint(0, c, (n,), generator=g)


def test_pack_targets_layout_and_errors():
    z = torch.randn(3, 4)
    t = distill.pack_targets(torch.tensor([0, -1, 3]), z)
    assert t.shape == (3, 5) and t[:, 0].tolist() == [0, -1, 3] and torch.equal(t[:, 1:], z)
    with pytest.raises(ValueError, match="from 0 to 3"):
        distill.pack_targets(torch.tensor([0, 4, 1]), z)
    with pytest.raises(ValueError, match="one per image"):
        distill.pack_targets(torch.tensor([0, 1]), z)


def test_the_loss_is_the_hinton_mix_by_hand():
    s, t, y = _batch()
    T, a = 3.0, 0.7
    kl = (F.softmax(t / T, 1) * (F.log_softmax(t / T, 1) - F.log_softmax(s / T, 1))).sum(1).mean()
    want = a * T * T * kl + (1 - a) * F.cross_entropy(s, y)
    got = distill.DistillationLoss(T, a)(s, distill.pack_targets(y, t))
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_alpha_zero_is_cross_entropy_and_a_perfect_student_pays_nothing_for_the_teacher():
    s, t, y = _batch()
    assert distill.DistillationLoss(4, 0)(s, distill.pack_targets(y, t)).item() == pytest.approx(F.cross_entropy(s, y).item())
    assert distill.DistillationLoss(4, 1)(t, distill.pack_targets(y, t)).item() == pytest.approx(0, abs=1e-6)


def test_unlabelled_rows_only_carry_the_teacher_term():
    s, t, y = _batch()
    y_part = y.clone()
    y_part[6:] = distill.UNLABELLED
    loss = distill.DistillationLoss(2, 0.5)(s, distill.pack_targets(y_part, t))
    soft = distill.DistillationLoss(2, 1.0)(s, distill.pack_targets(y_part, t))
    assert loss.item() == pytest.approx(0.5 * soft.item() + 0.5 * F.cross_entropy(s[:6], y[:6]).item(), rel=1e-5)
    none = torch.full_like(y, distill.UNLABELLED)
    all_soft = distill.DistillationLoss(2, 0.5)(s.requires_grad_(), distill.pack_targets(none, t))
    assert torch.isfinite(all_soft)
    all_soft.backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


def test_wrong_targets_and_settings_are_refused():
    s, t, y = _batch()
    with pytest.raises(ValueError, match="pack_targets"):
        distill.DistillationLoss()(s, y)
    with pytest.raises(ValueError, match="alpha"):
        distill.DistillationLoss(4, 1.5)
    with pytest.raises(ValueError, match="temperature"):
        distill.DistillationLoss(0, 0.5)


def test_fit_trains_a_student_towards_its_teacher_without_labels():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    teacher = nn.Linear(8, 3)
    with torch.no_grad():
        z = teacher(x)
    student = nn.Linear(8, 3)
    unlabelled = torch.full((256,), distill.UNLABELLED)
    targets = distill.pack_targets(unlabelled, z)
    loss_fn = distill.DistillationLoss(2.0, 1.0)
    before = loss_fn(student(x), targets).item()
    loader = distill.distill_loader(x, unlabelled, z, 32, seed=0, num_workers=0)
    utils.fit(student, loader, epochs=30,
              optimizer=torch.optim.Adam(student.parameters(), lr=0.05), loss_fn=loss_fn, device=torch.device("cpu"), progress=False)
    with torch.no_grad():
        after = loss_fn(student(x), targets).item()
        agree = (student(x).argmax(1) == z.argmax(1)).float().mean().item()
    assert after < 0.1 * before and agree > 0.95
