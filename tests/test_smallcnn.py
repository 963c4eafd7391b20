"""utils.smallcnn: the small CNN behaves like a timm backbone, trains with the general helpers, checkpoints round-trip."""
from __future__ import annotations

import pytest
import torch

import utils
from utils import smallcnn as sc


def test_forward_shapes_and_timm_like_layout():
    model = sc.small_cnn(7, widths=(8, 16), input_size=16, seed=0)
    x = torch.rand(3, 3, 16, 16)
    assert model(x).shape == (3, 7)
    fmap = model.forward_features(x)
    assert fmap.shape == (3, 16, 4, 4)  # the last block's map (each block halves the size), like timm
    pooled = model.forward_head(fmap, pre_logits=True)
    assert pooled.shape == (3, 16) and torch.allclose(pooled, fmap.mean((2, 3)))
    assert torch.allclose(model.forward_head(fmap), model.classifier(pooled)) and torch.allclose(model(x), model.classifier(pooled))
    assert utils.classifier_name(model) == "classifier"
    assert [g.name for g in utils.backbone_groups(model)] == ["features.0", "features.1"]
    assert [g.name for g in utils.layer_groups(model)][-1] == "classifier"
    assert utils.backbone_groups(model)[0].modules == (model.features[0],)
    utils.replace_head(model, 2)
    assert model(x).shape == (3, 2) and model.num_classes == 2


def test_forward_intermediates_are_the_block_outputs():
    model = sc.small_cnn(3, widths=(4, 8, 16), input_size=16, seed=0).eval()
    x = torch.rand(2, 3, 16, 16)
    outs, h = [], x
    for block in model.features:
        h = block(h)
        outs.append(h)
    default = model.forward_intermediates(x)  # all but the last, as utils.features' cuts need
    assert len(default) == 2 and all(torch.equal(a, b) for a, b in zip(default, outs[:2]))
    picked = model.forward_intermediates(x, indices=[2, 0])
    assert len(picked) == 2 and torch.equal(picked[0], outs[0]) and torch.equal(picked[1], outs[2])
    assert [t.shape[1] for t in model.forward_intermediates(x, indices=[1])] == [8]
    calls = []
    model.features[2].register_forward_hook(lambda *a: calls.append(1))
    model.forward_intermediates(x, indices=[0, 1])
    assert not calls  # stops after the deepest block asked for


def test_norm_and_dropout_options():
    plain = sc.small_cnn(3, widths=(8, 16), input_size=16, seed=0, norm=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert all(b[0].bias is not None for b in plain.features)  # without BatchNorm the conv needs its bias
    normed = sc.small_cnn(3, widths=(8, 16), input_size=16, seed=0)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in normed.modules()) == 2
    assert all(b[0].bias is None for b in normed.features)
    x = torch.rand(4, 3, 16, 16)
    drop = sc.small_cnn(3, widths=(8,), input_size=16, seed=0, dropout=0.5)
    assert drop.drop.p == 0.5 and torch.equal(drop.eval()(x), drop(x))
    drop.train()
    assert not torch.equal(drop(x), drop(x))  # dropout before the classifier in training mode
    assert torch.equal(drop.forward_head(drop.forward_features(x), pre_logits=True),
                       drop.forward_head(drop.forward_features(x), pre_logits=True))  # pooled features: no dropout


def test_seed_makes_init_reproducible_without_touching_global_rng():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b = sc.small_cnn(5, seed=1), sc.small_cnn(5, seed=1)
    assert torch.equal(torch.rand(1), before)  # the global stream is where it was
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = sc.small_cnn(5, seed=2)
    assert not torch.equal(a.features[0][0].weight, c.features[0][0].weight)


@pytest.mark.parametrize("kwargs, match", [({"widths": ()}, "widths"), ({"widths": (8, 0)}, "widths"),
                                           ({"widths": (8, 8, 8, 8), "input_size": 8}, "too small")])
def test_bad_architecture_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sc.small_cnn(3, **kwargs)


def test_unbatched_input_gets_a_helpful_error():
    with pytest.raises(ValueError, match="batch"):
        sc.small_cnn(3)(torch.rand(3, 32, 32))


def test_fit_learns_a_tiny_digit_task():
    """What the removed smallcnn.train_and_test did, with the general helpers: make_loader + fit + evaluate."""
    utils.seed_everything(0)
    cpu = torch.device("cpu")
    train = utils.digit_task("train", [0, 1], image_size=16, per_class=20)
    test = utils.digit_task("test", [0, 1], image_size=16)
    model = sc.small_cnn(2, widths=(8, 16), input_size=16, seed=0)
    before = utils.evaluate(model, utils.make_loader(test, 256, device=cpu))["acc"]
    hist = utils.fit(model, utils.make_loader(train, 10, shuffle=True, device=cpu), epochs=10, lr=5e-3, device=cpu,
                     progress=False)
    acc = utils.evaluate(model, utils.make_loader(test, 256, device=cpu))["acc"]
    assert len(hist) == 10 and hist["train_loss"][-1] < hist["train_loss"][0]
    assert acc > 0.9 and acc > before + 0.2, (before, acc)  # 0 vs 1 is easy; chance is 0.5


def test_save_and_load_round_trip_with_metadata(tmp_path):
    model = sc.small_cnn(3, widths=(8, 16), input_size=16, seed=0)
    with torch.no_grad():
        model.features[0][1].running_mean.add_(0.3)  # buffers must survive too
    path = sc.save_small_cnn(model, tmp_path / "m.safetensors", ["a", "b", "c"], note="hi")
    back, meta = sc.load_small_cnn(path)
    assert meta == {"arch": "SmallCNN", "widths": [8, 16], "input_size": 16, "norm": True, "dropout": 0.0,
                    "classes": ["a", "b", "c"], "note": "hi"}
    want, got = model.state_dict(), back.state_dict()
    assert all(torch.equal(want[k], got[k]) for k in want) and not back.training


def test_save_and_load_keep_norm_and_dropout(tmp_path):
    model = sc.small_cnn(2, widths=(8,), input_size=8, seed=0, norm=False, dropout=0.25)
    back, meta = sc.load_small_cnn(sc.save_small_cnn(model, tmp_path / "m.safetensors", ["a", "b"]))
    assert (meta["norm"], meta["dropout"]) == (False, 0.25) and (back.norm, back.drop.p) == (False, 0.25)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in back.modules())
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(back(x), model.eval()(x))


def test_save_and_load_errors(tmp_path):
    model = sc.small_cnn(3, widths=(8,), input_size=8)
    with pytest.raises(ValueError, match="classes has 2 names"):
        sc.save_small_cnn(model, tmp_path / "m.safetensors", ["a", "b"])
    with pytest.raises(TypeError, match="SmallCNN"):
        sc.save_small_cnn(torch.nn.Linear(2, 3), tmp_path / "m.safetensors", ["a", "b", "c"])
    other = utils.save_checkpoint(torch.nn.Linear(2, 3), tmp_path / "lin.safetensors")
    with pytest.raises(ValueError, match="save_small_cnn"):
        sc.load_small_cnn(other)
    with pytest.raises(FileNotFoundError):
        sc.load_small_cnn(tmp_path / "missing.safetensors")
