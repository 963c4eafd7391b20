"""utils.optim: one per-group learning-rate builder with one meaning of decay, transformers' schedules, the LR finder."""
from __future__ import annotations

import math

import pytest
import torch

import utils
from utils import optim
from utils.bert import MeanPoolClassifier


def tiny(num_classes=3):
    return utils.small_cnn(num_classes, widths=(4, 8, 8), input_size=8, seed=0)


def toy_loader(n=24, batch=8, num_classes=3):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, num_classes, (n,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch)


def test_groups_cover_every_parameter_once_with_decaying_rates():
    model = tiny()
    groups = utils.param_groups(model, 1e-2, backbone_mult=0.1, decay=0.5)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs["classifier"] == pytest.approx(1e-2)
    assert lrs["features.2"] == pytest.approx(1e-3)  # the top backbone group: head x backbone_mult
    assert lrs["features.1"] == pytest.approx(5e-4)  # each group below: x decay
    assert lrs["features.0"] == pytest.approx(2.5e-4)
    assert [g["name"] for g in groups][-1].startswith("classifier")  # input -> output order


def test_biases_and_norm_weights_get_no_weight_decay():
    groups = utils.param_groups(tiny(), 1e-3, weight_decay=0.05)
    for g in groups:
        assert all(p.ndim > 1 for p in g["params"]) if g["weight_decay"] else all(p.ndim <= 1 for p in g["params"])
    assert {g["weight_decay"] for g in groups} == {0.0, 0.05}


def test_defaults_give_one_global_rate():
    assert {g["lr"] for g in utils.param_groups(tiny(), 3e-4)} == {3e-4}


def test_decay_means_the_same_as_bert_llrd_and_ulmfit(minilm):
    """backbone_mult=b, decay=d: layer i of N gets lr*b*d**(N-1-i), the embeddings lr*b*d**N (LLRD's formula)."""
    _, encoder = minilm
    model = MeanPoolClassifier(encoder, 2)
    lrs = utils.group_lrs(utils.make_optimizer(model, 1e-3, backbone_mult=0.05, decay=0.8))
    base = 1e-3 * 0.05
    assert lrs["head"] == pytest.approx(1e-3) and lrs["layer.5"] == pytest.approx(base)
    for i in range(6):
        assert lrs[f"layer.{i}"] == pytest.approx(base * 0.8 ** (5 - i))
    assert lrs["embeddings"] == pytest.approx(base * 0.8 ** 6)


def test_decay_equals_timm_layer_decay_on_the_same_groups():
    """timm's `layer_decay=d` scales group j of L by d**(L - j), the head by 1: our backbone_mult=decay=d."""
    model = tiny()
    ours = {g["name"]: g["lr"] for g in utils.param_groups(model, 1.0, backbone_mult=0.7, decay=0.7)}
    n = len(utils.layer_groups(model)) - 1
    for j, g in enumerate(utils.layer_groups(model)):
        assert ours[g.name] == pytest.approx(0.7 ** (n - j))


def test_frozen_parameters_are_left_out_unless_asked_for():
    model = tiny()
    utils.unfreeze_last(model, 1)
    groups = utils.param_groups(model, 1e-3, decay=0.5)
    assert sum(p.numel() for g in groups for p in g["params"]) == utils.count_parameters(model).trainable
    every = utils.param_groups(model, 1e-3, decay=0.5, trainable_only=False)
    assert sum(p.numel() for g in every for p in g["params"]) == utils.count_parameters(model).total


@pytest.mark.parametrize("kwargs,err", [({"lr": 0}, ValueError), ({"lr": -1e-3}, ValueError),
                                        ({"lr": float("nan")}, ValueError), ({"lr": 1e-3, "decay": 0}, ValueError),
                                        ({"lr": 1e-3, "decay": 1.5}, ValueError),
                                        ({"lr": 1e-3, "backbone_mult": 2.0}, ValueError),
                                        ({"lr": "1e-3"}, TypeError), ({"lr": 1e-3, "weight_decay": -1}, ValueError)])
def test_bad_group_arguments_name_the_argument(kwargs, err):
    name = [k for k in kwargs if k != "lr"] or ["lr"]
    with pytest.raises(err, match=name[-1]):
        utils.param_groups(tiny(), **kwargs)


def test_all_frozen_is_an_error_that_says_what_to_do():
    model = tiny()
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="unfreeze_last"):
        utils.param_groups(model, 1e-3)


def test_warmup_cosine_is_transformers_schedule_and_keeps_ratios():
    from transformers import get_cosine_schedule_with_warmup

    opt = utils.make_optimizer(tiny(), 1e-2, backbone_mult=0.1)
    ref_opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-2)
    sched, ref = utils.warmup_cosine(opt, warmup_steps=4, total_steps=20), get_cosine_schedule_with_warmup(ref_opt, 4, 20)
    head, top = [], []
    for _ in range(20):
        lrs = utils.group_lrs(opt)
        head.append(lrs["classifier"])
        top.append(lrs["features.2"])
        assert head[-1] == pytest.approx(ref_opt.param_groups[0]["lr"])
        for o, s in ((opt, sched), (ref_opt, ref)):
            o.step()
            s.step()
    assert head.index(max(head)) == 4 and max(head) == pytest.approx(1e-2)
    assert all(a < b for a, b in zip(head[:4], head[1:5])) and all(a >= b for a, b in zip(head[4:], head[5:]))
    assert all(t == pytest.approx(h / 10) for h, t in zip(head, top))


def test_warmup_linear_rises_then_falls_to_zero():
    opt = utils.make_optimizer(tiny(), 1.0)
    sched = utils.warmup_linear(opt, 2, 6)
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.0, 0.5, 1.0, 0.75, 0.5, 0.25])


@pytest.mark.parametrize("w,t", [(10, 5), (-1, 5), (0, 0), (1.5, 10)])
def test_warmup_bad_steps(w, t):
    with pytest.raises((ValueError, TypeError), match="steps"):
        utils.warmup_cosine(utils.make_optimizer(tiny(), 1e-3), w, t)


def test_make_scheduler_by_name():
    opt = utils.make_optimizer(tiny(), 1.0)
    assert utils.make_scheduler(opt, "constant", 10) is None
    warm = utils.make_scheduler(opt, "constant", 10, warmup=0.2)
    rates = []
    for _ in range(4):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        warm.step()
    assert rates[0] < rates[1] < rates[2] == rates[3] == 1.0
    with pytest.raises(ValueError, match="schedule"):
        utils.make_scheduler(opt, "onecycle", 10)


def test_lr_find_restores_weights_and_suggests_within_range():
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = utils.lr_find(model, toy_loader(), start_lr=1e-5, end_lr=10, num_steps=12, device=torch.device("cpu"))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert 2 <= len(res.lrs) == len(res.losses) <= 12
    assert all(a < b for a, b in zip(res.lrs, res.lrs[1:])) and res.lrs[0] == pytest.approx(1e-5)
    assert res.lrs[0] / 10 <= res.suggestion <= res.lrs[-1] / 10
    assert all(math.isfinite(v) for v in res.losses[:-1])


def test_lr_find_keeps_the_discriminative_ratios(monkeypatch):
    seen = []
    real_step = torch.optim.AdamW.step

    def spy(self, *a, **k):
        seen.append({g["name"]: g["lr"] for g in self.param_groups})
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    utils.lr_find(tiny(), toy_loader(), num_steps=4, backbone_mult=0.1, device=torch.device("cpu"))
    assert all(s["features.2"] == pytest.approx(s["classifier"] / 10) for s in seen) and len(seen) == 4


def test_lr_find_cycles_a_short_loader():
    assert len(utils.lr_find(tiny(), toy_loader(n=8), num_steps=5, end_lr=1e-2, device=torch.device("cpu")).lrs) == 5


@pytest.mark.parametrize("kwargs", [{"start_lr": 0}, {"start_lr": 1e-2, "end_lr": 1e-3}, {"num_steps": 1}, {"smooth": 1.0}])
def test_lr_find_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        utils.lr_find(tiny(), toy_loader(), device=torch.device("cpu"), **kwargs)


def test_lr_find_empty_loader():
    with pytest.raises(ValueError, match="empty"):
        utils.lr_find(tiny(), [], device=torch.device("cpu"))


def test_plot_lr_find_marks_suggestion():
    ax = optim.plot_lr_find(optim.LRFinderResult([1e-4, 1e-3, 1e-2], [2.0, 1.5, 3.0], 1e-4))
    assert ax.get_xscale() == "log" and len(ax.lines) == 2
