"""utils.regularise: L2-SP pulls toward the pretrained weights, toward="zero" is exactly AdamW, drift measures movement."""
from __future__ import annotations

import copy

import pytest
import torch

import utils
from utils import regularise as rg


def _model(seed: int = 0):
    return utils.small_cnn(3, widths=(4, 8), input_size=8, seed=seed)


def _steps(model, optimizer, n: int = 5, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.rand(6, 3, 8, 8, generator=gen), torch.randint(0, 3, (6,), generator=gen)
    for _ in range(n):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def test_toward_zero_is_exactly_adamw():
    a, b = _model(), _model()
    _steps(a, utils.make_optimizer(a, 1e-2, weight_decay=0.5))
    _steps(b, rg.l2sp_optimizer(b, 1e-2, weight_decay=0.5, toward="zero"))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_anchors_at_zero_reproduce_adamw():
    a, b = _model(), _model()
    opt_b = rg.L2SPAdamW(utils.param_groups(b, 1e-2, weight_decay=0.5),
                         {p: torch.zeros_like(p) for p in b.parameters() if p.ndim > 1})
    _steps(a, utils.make_optimizer(a, 1e-2, weight_decay=0.5))
    _steps(b, opt_b)
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(a.parameters(), b.parameters()))


def test_pull_toward_anchor_is_exact_without_gradient_signal():
    """With a zero loss gradient Adam moves nothing, so only the decay acts: p - w0 shrinks by (1 - lr*wd) per step."""
    model = _model()
    start = copy.deepcopy(model.state_dict())
    opt = rg.l2sp_optimizer(model, lr=0.1, weight_decay=2.0)  # anchors = the weights now
    w = model.features[0][0].weight
    with torch.no_grad():
        w.add_(1.0)  # move away from the anchor
    for _ in range(3):
        opt.zero_grad()
        (0 * model(torch.rand(2, 3, 8, 8)).sum()).backward()
        opt.step()
    assert torch.allclose(w - start["features.0.0.weight"], torch.full_like(w, 0.8 ** 3), atol=1e-6)
    head = model.classifier.weight  # no anchor: decays toward zero, as in AdamW
    assert torch.allclose(head, start["classifier.weight"] * 0.8 ** 3, atol=1e-6)


def test_l2sp_keeps_weights_closer_to_pretrained_than_weight_decay():
    pre = _model()
    runs = {}
    for toward in ("zero", "pretrained"):
        m = copy.deepcopy(pre)
        _steps(m, rg.l2sp_optimizer(m, 1e-2, weight_decay=20.0, head_decay=0.0, toward=toward), n=20)
        runs[toward] = rg.drift(m, pre.state_dict())
    assert runs["pretrained"] < 0.5 * runs["zero"], runs
    free = copy.deepcopy(pre)
    _steps(free, rg.l2sp_optimizer(free, 1e-2, weight_decay=0.0, toward="pretrained"), n=20)
    assert runs["pretrained"] < rg.drift(free, pre.state_dict())  # the pull, not just small steps


def test_head_decay_and_frozen_parameters():
    model = _model()
    opt = rg.l2sp_optimizer(model, 1e-2, weight_decay=3.0, head_decay=0.25)
    head = {id(p) for p in model.classifier.parameters()}
    for g in opt.param_groups:
        if all(id(p) in head for p in g["params"]) and g["params"][0].ndim > 1:
            assert g["weight_decay"] == 0.25
        elif g["params"][0].ndim > 1:
            assert g["weight_decay"] == 3.0
        else:
            assert g["weight_decay"] == 0.0  # biases and norm weights: no decay, as in param_groups
    assert len(opt.anchors) == sum(1 for p in model.parameters() if id(p) not in head)
    utils.unfreeze_last(model, 0)  # linear probe stage: frozen weights must not be decayed or moved
    before = copy.deepcopy(model.features.state_dict())
    _steps(model, opt, n=3)
    assert all(torch.equal(before[k], v) for k, v in model.features.state_dict().items() if "running" not in k
               and "num_batches" not in k)
    assert all(g["weight_decay"] in (3.0, 0.25, 0.0) for g in opt.param_groups)  # restored after each step


def test_drift():
    model = _model()
    ref = copy.deepcopy(model.state_dict())
    assert rg.drift(model, ref) == 0.0
    with torch.no_grad():
        model.classifier.weight.add_(5.0)  # the head does not count
    assert rg.drift(model, ref) == 0.0
    with torch.no_grad():
        for blk in model.features:
            blk[0].weight.mul_(1.5)
    assert rg.drift(model, ref) == pytest.approx(0.5)
    with pytest.raises(KeyError, match="reference has no"):
        rg.drift(model, {})


def test_bad_arguments():
    model = _model()
    with pytest.raises(ValueError, match="toward"):
        rg.l2sp_optimizer(model, toward="origin")
    with pytest.raises(ValueError, match="weight_decay"):
        rg.l2sp_optimizer(model, weight_decay=-1.0)
    other = torch.nn.Parameter(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="does not train"):
        rg.L2SPAdamW(model.parameters(), {other: torch.zeros(2, 2)})
    p = next(model.parameters())
    with pytest.raises(ValueError, match="shape"):
        rg.L2SPAdamW(model.parameters(), {p: torch.zeros(1)})
