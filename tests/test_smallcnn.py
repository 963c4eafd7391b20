"""utils.smallcnn: the small CNN behaves like a timm backbone, digit tasks are what they claim, checkpoints round-trip."""
from __future__ import annotations

import pytest
import torch

import utils
from utils import smallcnn as sc


def test_forward_shapes_and_timm_like_layout():
    model = sc.small_cnn(7, widths=(8, 16), input_size=16, seed=0)
    x = torch.rand(3, 3, 16, 16)
    assert model(x).shape == (3, 7) and model.forward_features(x).shape == (3, 16)
    assert utils.classifier_name(model) == "classifier"
    assert [n for n, _ in utils.backbone_blocks(model)] == ["features.0", "features.1"]
    utils.replace_head(model, 2)
    assert model(x).shape == (3, 2) and model.num_classes == 2


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


def test_digit_task_keeps_and_renumbers_the_digits():
    ds = sc.digit_task("train", [7, 2], image_size=16, per_class=4)
    assert ds.classes == ["7", "2"] and len(ds) == 8
    assert torch.bincount(ds.labels).tolist() == [4, 4]
    raw = utils.mnist_digits("train", 16)
    x, y = ds[0]
    assert x.min() >= -1 and x.max() <= 1 and x.min() < -0.9  # mapped to [-1, 1]
    # each kept image is a real training digit with the renumbered label
    match = (raw.images == ds.images[0]).flatten(1).all(1).nonzero().flatten()
    assert len(match) >= 1 and ds.classes[y] == str(raw.labels[match[0]].item())


@pytest.mark.parametrize("digits", [[], [1, 1], [10], [0.5]])
def test_digit_task_rejects_bad_digits(digits):
    with pytest.raises(ValueError, match="digits"):
        sc.digit_task("train", digits)


def test_loader_rejects_empty_and_shuffles_reproducibly():
    ds = torch.utils.data.TensorDataset(torch.arange(20.0), torch.arange(20))
    order = lambda seed: torch.cat([x for x, _ in sc.loader(ds, 5, shuffle=True, seed=seed)])
    assert torch.equal(order(0), order(0)) and not torch.equal(order(0), order(1))
    with pytest.raises(ValueError, match="empty"):
        sc.loader(torch.utils.data.TensorDataset(torch.zeros(0)), 4)


def test_train_and_test_learns_a_tiny_task():
    utils.seed_everything(0)
    train = sc.digit_task("train", [0, 1], image_size=16, per_class=20)
    test = sc.digit_task("test", [0, 1], image_size=16)
    model = sc.small_cnn(2, widths=(8, 16), input_size=16, seed=0)
    hist, acc = sc.train_and_test(model, train, test, epochs=10, lr=5e-3, batch_size=10, device=torch.device("cpu"))
    assert len(hist) == 10 and acc > 0.9  # 0 vs 1 is easy; chance is 0.5


def test_save_and_load_round_trip_with_metadata(tmp_path):
    model = sc.small_cnn(3, widths=(8, 16), input_size=16, seed=0)
    with torch.no_grad():
        model.features[0][1].running_mean.add_(0.3)  # buffers must survive too
    path = sc.save_small_cnn(model, tmp_path / "m.safetensors", ["a", "b", "c"], note="hi")
    back, meta = sc.load_small_cnn(path)
    assert meta == {"arch": "SmallCNN", "widths": [8, 16], "input_size": 16, "classes": ["a", "b", "c"], "note": "hi"}
    want, got = model.state_dict(), back.state_dict()
    assert all(torch.equal(want[k], got[k]) for k in want) and not back.training


def test_save_and_load_errors(tmp_path):
    model = sc.small_cnn(3, widths=(8,), input_size=8)
    with pytest.raises(ValueError, match="class names"):
        sc.save_small_cnn(model, tmp_path / "m.safetensors", ["a", "b"])
    with pytest.raises(TypeError, match="SmallCNN"):
        sc.save_small_cnn(torch.nn.Linear(2, 3), tmp_path / "m.safetensors", ["a", "b", "c"])
    other = utils.save_checkpoint(torch.nn.Linear(2, 3), tmp_path / "lin.safetensors")
    with pytest.raises(ValueError, match="save_small_cnn"):
        sc.load_small_cnn(other)
    with pytest.raises(FileNotFoundError):
        sc.load_small_cnn(tmp_path / "missing.safetensors")
