"""Tests for utils.schedules: per-depth LR groups, warm-up + cosine, the LR finder, gradual unfreezing."""
import math

import pytest
import torch

from utils import schedules as S
from utils.freeze import backbone_blocks, count_parameters, unfreeze_last
from utils.smallcnn import SmallCNN


def tiny(num_classes=3):
    torch.manual_seed(0)
    return SmallCNN(num_classes=num_classes, widths=(4, 8, 8), input_size=8)


def toy_loader(n=24, batch=8, num_classes=3):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, num_classes, (n,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch)


def test_groups_cover_every_parameter_once_with_decaying_lrs():
    model = tiny()
    groups = S.param_groups_by_depth(model, 1e-2, backbone_mult=0.1, decay=0.5)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    lrs = {g["name"]: g["lr"] for g in groups}
    names = [n for n, _ in backbone_blocks(model)]
    assert lrs["classifier"] == pytest.approx(1e-2)
    assert lrs[names[-1]] == pytest.approx(1e-3)
    assert lrs[names[-2]] == pytest.approx(5e-4)
    assert lrs[names[0]] == pytest.approx(1e-3 * 0.5 ** (len(names) - 1))
    assert [g["name"] for g in groups][-1] == "classifier"  # input → output order


def test_defaults_give_one_global_lr():
    groups = S.param_groups_by_depth(tiny(), 3e-4)
    assert {g["lr"] for g in groups} == {3e-4}


def test_frozen_parameters_are_left_out():
    model = tiny()
    unfreeze_last(model, 1)
    groups = S.param_groups_by_depth(model, 1e-3, decay=0.5)
    assert sum(p.numel() for g in groups for p in g["params"]) == count_parameters(model).trainable
    assert len(groups) == 2  # head + last block


@pytest.mark.parametrize("kwargs", [{"head_lr": 0}, {"head_lr": -1e-3}, {"head_lr": float("nan")},
                                    {"head_lr": 1e-3, "decay": 0}, {"head_lr": 1e-3, "decay": 1.5},
                                    {"head_lr": 1e-3, "backbone_mult": 2.0}, {"head_lr": "1e-3"}])
def test_bad_group_arguments(kwargs):
    with pytest.raises(ValueError):
        S.param_groups_by_depth(tiny(), **kwargs)


def test_all_frozen_is_an_error():
    model = tiny()
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="frozen"):
        S.param_groups_by_depth(model, 1e-3)


def test_discriminative_optimizer_and_group_lrs():
    opt = S.discriminative_optimizer(tiny(), 1e-2, backbone_mult=0.1)
    lrs = S.group_lrs(opt)
    assert lrs["classifier"] == pytest.approx(1e-2)
    assert max(v for k, v in lrs.items() if k != "classifier") == pytest.approx(1e-3)
    assert opt.defaults["weight_decay"] == 0.01


def test_warmup_cosine_shape_keeps_ratios():
    opt = S.discriminative_optimizer(tiny(), 1e-2, backbone_mult=0.1)
    sched = S.warmup_cosine(opt, warmup_steps=4, total_steps=20)
    head, top = [], []
    for _ in range(20):
        lrs = S.group_lrs(opt)
        head.append(lrs["classifier"])
        top.append(lrs["features.2"])
        opt.step()
        sched.step()
    peak = head.index(max(head))
    assert peak == 4 and head[peak] == pytest.approx(1e-2)
    assert all(a < b for a, b in zip(head[:4], head[1:5]))  # rising warm-up
    assert all(a >= b for a, b in zip(head[4:], head[5:]))  # then never rising
    assert head[-1] < 0.05 * head[peak]
    assert all(h / t == pytest.approx(10) for h, t in zip(head, top))


@pytest.mark.parametrize("w,t", [(10, 5), (-1, 5), (0, 0), (1.5, 10)])
def test_warmup_cosine_bad_steps(w, t):
    with pytest.raises(ValueError):
        S.warmup_cosine(S.discriminative_optimizer(tiny(), 1e-3), w, t)


def test_lr_find_restores_weights_and_suggests_within_range():
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = S.lr_find(model, toy_loader(), start_lr=1e-5, end_lr=10, num_steps=12, device=torch.device("cpu"))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert 2 <= len(res.lrs) == len(res.losses) <= 12
    assert all(a < b for a, b in zip(res.lrs, res.lrs[1:]))
    assert res.lrs[0] == pytest.approx(1e-5)
    assert res.lrs[0] / 10 <= res.suggestion <= res.lrs[-1] / 10
    assert all(math.isfinite(v) for v in res.losses[:-1])


def test_lr_find_cycles_a_short_loader():
    res = S.lr_find(tiny(), toy_loader(n=8), num_steps=5, end_lr=1e-2, device=torch.device("cpu"))
    assert len(res.lrs) == 5


@pytest.mark.parametrize("kwargs", [{"start_lr": 0}, {"start_lr": 1e-2, "end_lr": 1e-3}, {"num_steps": 1}, {"smooth": 1.0}])
def test_lr_find_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        S.lr_find(tiny(), toy_loader(), device=torch.device("cpu"), **kwargs)


def test_lr_find_empty_loader():
    with pytest.raises(ValueError, match="empty"):
        S.lr_find(tiny(), [], device=torch.device("cpu"))


def test_plot_lr_find_marks_suggestion():
    import matplotlib

    matplotlib.use("Agg")
    ax = S.plot_lr_find(S.LRFinderResult([1e-4, 1e-3, 1e-2], [2.0, 1.5, 3.0], 1e-4))
    assert ax.get_xscale() == "log"
    assert len(ax.lines) == 2


def test_check_unfreeze_stages():
    model = tiny()
    assert S.check_unfreeze_stages(model, (0, 1, 3)) == [0, 1, 3]
    for bad in ([], [0, 5], [2, 1], [0.5], [-1]):
        with pytest.raises(ValueError):
            S.check_unfreeze_stages(model, bad)


def test_gradual_unfreeze_opens_blocks_stage_by_stage():
    model = tiny()
    w0 = backbone_blocks(model)[0][1][0].weight.detach().clone()
    hist = S.gradual_unfreeze(model, toy_loader(), toy_loader(), stages=[0, 1, 3], head_lr=1e-2,
                              device=torch.device("cpu"), progress=False)
    assert hist["epoch"] == [1, 2, 3] and hist.label == "gradual unfreezing"
    assert all(p.requires_grad for p in model.parameters())
    assert not torch.equal(w0, backbone_blocks(model)[0][1][0].weight)  # the first block trained in the last stage


def test_gradual_unfreeze_first_stage_leaves_backbone_alone():
    model = tiny()
    w0 = backbone_blocks(model)[-1][1][0].weight.detach().clone()
    S.gradual_unfreeze(model, toy_loader(), stages=[0], device=torch.device("cpu"), progress=False)
    assert torch.equal(w0, backbone_blocks(model)[-1][1][0].weight)
    with pytest.raises(ValueError):
        S.gradual_unfreeze(model, toy_loader(), stages=[0], epochs_per_stage=0)
