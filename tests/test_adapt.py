"""utils.adapt: AdaBN sets BatchNorm statistics to the target's moments and touches nothing else; shifts are reproducible."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import utils
from utils import adapt
from utils import smallcnn as sc


def toy() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.LazyLinear(2))


def target_loader(x: torch.Tensor, batch_size: int) -> DataLoader:
    return DataLoader(TensorDataset(x, torch.zeros(len(x), dtype=torch.long)), batch_size=batch_size)


def test_adabn_sets_running_stats_to_target_moments():
    model = toy()
    model(torch.rand(2, 3, 6, 6))  # materialise the lazy layer
    x = 3 + 2 * torch.randn(64, 3, 6, 6)  # a target domain far from anything seen
    with torch.no_grad():
        feats = model[0](x)  # what BN sees
    bn = model[1]
    assert adapt.adabn(model, target_loader(x, 64)) == 1
    assert torch.allclose(bn.running_mean, feats.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, feats.var(dim=(0, 2, 3), unbiased=True), rtol=1e-4)


def test_adabn_averages_batches_equally_and_ignores_old_stats():
    model = toy()
    model(torch.rand(2, 3, 6, 6))
    x = torch.randn(48, 3, 6, 6)
    with torch.no_grad():
        model[1].running_mean.fill_(100.0)  # stale source statistics must not leak in
        batch_means = [model[0](x[i:i + 16]).mean(dim=(0, 2, 3)) for i in range(0, 48, 16)]
    adapt.adabn(model, target_loader(x, 16))
    assert torch.allclose(model[1].running_mean, torch.stack(batch_means).mean(0), atol=1e-5)


def test_adabn_changes_nothing_but_bn_buffers_and_restores_modes():
    model = toy()
    model(torch.rand(2, 3, 6, 6))
    model.train()
    model[3].eval()  # a mixed mode that must survive
    momentum = model[1].momentum
    params = {k: v.clone() for k, v in model.named_parameters()}
    adapt.adabn(model, target_loader(torch.randn(20, 3, 6, 6), 8))
    assert all(torch.equal(params[k], v) for k, v in model.named_parameters())
    assert all(p.grad is None for p in model.parameters())
    assert model.training and model[1].training and not model[3].training
    assert model[1].momentum == momentum


def test_adabn_uses_inputs_only_and_limits_batches():
    model = sc.small_cnn(2, widths=(4, 8), input_size=8, seed=0)
    x = torch.randn(40, 3, 8, 8)
    adapt.adabn(model, [x[:10], x[10:20], x[20:]], max_batches=2)  # plain tensors work too
    one = model.features[0][1].num_batches_tracked.item()
    assert one == 2


def test_adabn_errors_leave_model_untouched():
    with pytest.raises(ValueError, match="no BatchNorm"):
        adapt.adabn(nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2)), [torch.zeros(1, 2)])
    model = sc.small_cnn(2, widths=(4,), input_size=4, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="no batches"):
        adapt.adabn(model, [])
    with pytest.raises(TypeError, match="image tensors"):
        adapt.adabn(model, [("a", 1)])
    with pytest.raises(ValueError, match="max_batches"):
        adapt.adabn(model, [torch.zeros(2, 3, 4, 4)], max_batches=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_adabn_recovers_accuracy_under_a_contrast_shift():
    utils.seed_everything(0)
    cpu = torch.device("cpu")
    train, test = utils.digit_task("train", [0, 1], 16, per_class=40), utils.digit_task("test", [0, 1], 16)
    model = sc.small_cnn(2, widths=(8, 16), input_size=16, seed=0)
    utils.fit(model, utils.make_loader(train, 16, shuffle=True, device=cpu, num_workers=0), epochs=4, lr=5e-3,
              device=cpu, progress=False)
    # Control: BN statistics re-estimated on the *source* images first, so stale running statistics after a short
    # training run are not mistaken for the shift's damage (or AdaBN's gain).
    adapt.adabn(model, utils.make_loader(train, 100, device=cpu, num_workers=0))
    clean = utils.evaluate(model, utils.make_loader(test, 100, device=cpu, num_workers=0))["acc"]
    target = adapt.shifted(test, "low_contrast")  # normalised like the training images (mean = std = 0.5)
    loader = utils.make_loader(target, 100, device=cpu, num_workers=0)
    before = utils.evaluate(model, loader)["acc"]
    adapt.adabn(model, loader)
    after = utils.evaluate(model, loader)["acc"]
    assert clean > 0.9 and before < clean - 0.2, (clean, before)  # the shift really hurts
    assert after > before + 0.2 and after > 0.9, (before, after)


@pytest.mark.parametrize("kind", sorted(adapt.SHIFTS))
def test_shifts_keep_shape_and_range_and_are_reproducible(kind):
    x = torch.rand(4, 3, 16, 16)
    a, b = adapt.shift_images(x, kind, seed=1), adapt.shift_images(x, kind, seed=1)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    assert a.min() >= 0 and a.max() <= 1


def test_shift_errors_and_shifted_dataset():
    with pytest.raises(ValueError, match="choose one of"):
        adapt.shift_images(torch.rand(1, 3, 4, 4), "snow")
    with pytest.raises(ValueError, match="float batch"):
        adapt.shift_images(torch.rand(3, 4, 4), "invert")
    with pytest.raises(TypeError, match="ImageTensorDataset"):
        adapt.shifted(TensorDataset(torch.rand(2, 3, 4, 4)), "invert")
    ds = utils.digit_task("test", [3], 16, per_class=2, transform=torch.nn.Identity())
    inv = adapt.shifted(ds, "invert")
    assert torch.equal(inv.images, 1 - ds.images) and torch.equal(inv.labels, ds.labels) and inv.transform is ds.transform
    assert inv.classes == ds.classes


def test_shifted_dataset_keeps_the_normalisation():
    ds = utils.digit_task("test", [3], 16, per_class=2)
    assert ds.normalize is not None
    inv = adapt.shifted(ds, "invert")
    assert inv.normalize == ds.normalize
    x_inv, _ = inv[0]
    assert torch.allclose(x_inv, -ds[0][0], atol=1e-6)  # mean = std = 0.5: inverting x in [0, 1] negates 2x - 1


def test_marker_encodes_the_position_and_keeps_everything_else():
    ds = utils.digit_task("train", [0, 1, 2], 24, per_class=4)
    marked = adapt.with_marker(ds, ds.labels)
    assert marked.normalize == ds.normalize and marked.transform is ds.transform and torch.equal(marked.labels, ds.labels)
    assert marked.classes == ds.classes
    changed = (marked.images != ds.images).any(dim=1)  # (N, H, W): pixels the square covers
    assert torch.equal(marked.images[changed.unsqueeze(1).expand_as(marked.images)],
                       torch.ones_like(marked.images[changed.unsqueeze(1).expand_as(marked.images)]))
    where = [set(map(tuple, changed[i].nonzero().tolist())) for i in range(len(ds))]
    assert all(max(r for r, _ in w) < 12 and max(c for _, c in w) < 18 for w in where if w)  # top-left region only
    by_label = {}
    for i, y in enumerate(ds.labels.tolist()):  # one fixed square per label, the same for every image of that label
        by_label.setdefault(y, []).append(i)
    boxes = {y: set.intersection(*(where[i] | {(-1, -1)} for i in idx)) for y, idx in by_label.items()}
    assert all(len(b - {(-1, -1)}) == 9 for b in boxes.values())  # a 3 x 3 square at 24 px
    assert len({frozenset(b) for b in boxes.values()}) == 3  # three labels, three places


def test_marker_and_shuffled_labels_refuse_bad_input():
    ds = utils.digit_task("test", [3, 4], 16, per_class=3)
    with pytest.raises(ValueError, match="one position 0-5"):
        adapt.with_marker(ds, torch.full((len(ds),), 6))
    with pytest.raises(ValueError, match="one position 0-5"):
        adapt.with_marker(ds, [0, 1])
    with pytest.raises(TypeError, match="ImageTensorDataset"):
        adapt.shuffled_labels(TensorDataset(torch.rand(2, 3, 4, 4)), 0)


def test_shuffled_labels_permute_the_labels_reproducibly():
    ds = utils.digit_task("train", [0, 1, 2, 3, 4], 16, per_class=20)
    a, b, c = adapt.shuffled_labels(ds, 1), adapt.shuffled_labels(ds, 1), adapt.shuffled_labels(ds, 2)
    assert torch.equal(a.labels, b.labels) and not torch.equal(a.labels, c.labels)
    assert torch.equal(torch.bincount(a.labels), torch.bincount(ds.labels)) and torch.equal(a.images, ds.images)
    assert (a.labels == ds.labels).float().mean() < 0.5  # most labels moved (chance agreement is 20 %)
    assert a.normalize == ds.normalize
