"""utils.interpret: per-class scores and confusions against sklearn / by hand, top losses, and CAM / Grad-CAM on toy
models whose evidence sits where we put it."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import utils
from utils import interpret

CLASSES = ["a", "b", "c"]


def test_per_class_report_by_hand():
    y_true, y_pred = [0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2]
    r = interpret.per_class_report(y_true, y_pred, CLASSES)
    assert list(r.index) == CLASSES and r["support"].tolist() == [3, 2, 1]
    assert r.loc["a", "precision"] == 1.0 and r.loc["a", "recall"] == pytest.approx(2 / 3)
    assert r.loc["b", "precision"] == 0.5 and r.loc["b", "recall"] == 0.5
    assert r.loc["c", "precision"] == 0.5 and r.loc["c", "recall"] == 1.0
    assert r.loc["c", "f1"] == pytest.approx(2 / 3)


def test_most_confused_orders_errors_by_count():
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [1, 1, 0, 0, 1, 1, 1, 1, 0]
    top = interpret.most_confused(y_true, y_pred, CLASSES, k=2)
    assert top[["true", "predicted", "count"]].values.tolist() == [["c", "b", 3], ["a", "b", 2]]
    assert top.loc[0, "share of true class"] == pytest.approx(3 / 4)
    assert interpret.most_confused([0, 1], [0, 1], CLASSES).empty


def test_top_losses_are_the_highest_cross_entropies():
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [1.0, 0.0], [0.0, 0.1]])
    idx, loss = interpret.top_losses(logits, [0, 0, 0, 1], k=2)
    assert idx.tolist() == [1, 3]  # losses 5.01, 0.64 (right, at a low margin), 0.31, 0.01
    assert loss[0] == pytest.approx(nn.functional.cross_entropy(logits[1:2], torch.tensor([0])).item())


def test_cam_mean_plus_bias_is_the_logit():
    model = utils.small_cnn(3, (4, 8), input_size=16, seed=0).eval()
    x = torch.randn(5, 3, 16, 16)
    cams, logits = interpret.class_activation_map(model, x)
    k = logits.argmax(1)
    assert cams.shape == (5, 4, 4)
    assert torch.allclose(cams.mean((1, 2)) + model.classifier.bias[k].detach(), logits.gather(1, k[:, None])[:, 0], atol=1e-5)
    cams1, _ = interpret.class_activation_map(model, x, target=1)
    assert torch.allclose(cams1.mean((1, 2)) + model.classifier.bias[1].detach(), logits[:, 1], atol=1e-5)


def test_grad_cam_at_the_last_layer_is_the_cam_with_negatives_cut_up_to_scale():
    model = utils.small_cnn(3, (4, 8), input_size=16, seed=1).eval()
    x = torch.randn(4, 3, 16, 16)
    cams, _ = interpret.class_activation_map(model, x, target=2)
    maps, _ = interpret.grad_cam(model, x, "features.1", target=2)  # the last block's output = forward_features
    hw = cams.shape[1] * cams.shape[2]
    assert torch.allclose(maps, torch.relu(cams) / hw, atol=1e-6)


class Toy(nn.Module):
    """Class 1's score is the total brightness seen through a 3 × 3 box filter; class 0's is its negative."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0] = 1.0 / 27  # channel 0: local brightness
            self.conv.weight[1, :, 1, 1] = -1.0  # channel 1: an unrelated feature the head ignores
        self.head = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


@pytest.mark.parametrize("corner", [(0, 0), (8, 8), (0, 8)])
def test_grad_cam_highlights_the_patch_that_drives_the_toy_model(corner):
    x = torch.zeros(1, 3, 16, 16)
    r, c = corner
    x[:, :, r:r + 6, c:c + 6] = 1.0
    model = Toy().requires_grad_(False)  # frozen weights: Grad-CAM still works
    maps, logits = interpret.grad_cam(model, x, model.conv, target=1)
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    mask[:, max(r - 1, 0):r + 7, max(c - 1, 0):c + 7] = True  # the patch and the filter's 1-pixel reach
    assert interpret.mass_inside(maps, mask).item() > 0.99
    peak = divmod(int(maps[0].argmax()), 16)
    assert r <= peak[0] < r + 6 and c <= peak[1] < c + 6
    control, _ = interpret.grad_cam(model, x, model.conv, target=0)  # class 0 is *against* brightness: nothing positive
    assert control.abs().max() == 0


def test_mass_inside_by_hand():
    maps = torch.ones(2, 4, 4)
    maps[1] = 0
    mask = torch.zeros(2, 8, 8, dtype=torch.bool)
    mask[:, :4] = True  # top half
    share = interpret.mass_inside(maps, mask)
    assert share[0].item() == pytest.approx(0.5) and torch.isnan(share[1])


def test_plot_cams_draws_one_row_per_map_set():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = torch.rand(3, 3, 8, 8)
    fig = interpret.plot_cams(images, [torch.rand(3, 2, 2), torch.rand(3, 4, 4)], ["one", "two"], titles=list("xyz"))
    assert len(fig.axes) == 6
    plt.close("all")


@pytest.mark.parametrize("call, exc, words", [
    (lambda: interpret.per_class_report([0, 1], [0], CLASSES), ValueError, "same length"),
    (lambda: interpret.per_class_report([0, 3], [0, 1], CLASSES), ValueError, "y_true"),
    (lambda: interpret.most_confused([0, 1], [0, 1], "abc"), TypeError, "classes"),
    (lambda: interpret.most_confused([0, 1], [0, 1], CLASSES, k=0), ValueError, "k"),
    (lambda: interpret.top_losses(torch.randn(3), [0, 1, 0]), TypeError, "logits"),
    (lambda: interpret.grad_cam(Toy(), torch.rand(1, 3, 8, 8), "nope"), ValueError, "no layer"),
    (lambda: interpret.grad_cam(Toy(), torch.rand(1, 3, 8, 8), nn.Conv2d(3, 2, 3)), ValueError, "not a module of this model"),
    (lambda: interpret.grad_cam(Toy(), torch.rand(1, 3, 8, 8), Toy().head.__class__), TypeError, "layer"),
    (lambda: interpret.grad_cam(Toy(), torch.rand(3, 8, 8), "conv"), TypeError, "x must be"),
    (lambda: interpret.grad_cam(Toy(), torch.rand(1, 3, 8, 8), "head"), TypeError, "not \\(N, C, h, w\\)"),
    (lambda: interpret.grad_cam(Toy(), torch.rand(2, 3, 8, 8), "conv", target=[0]), ValueError, "same length"),
    (lambda: interpret.class_activation_map(Toy(), torch.rand(1, 3, 8, 8)), TypeError, "grad_cam"),
    (lambda: interpret.mass_inside(torch.rand(1, 2, 2), torch.ones(1, 4, 4)), TypeError, "bool"),
    (lambda: interpret.plot_cams(torch.rand(2, 3, 8, 8), [torch.rand(3, 2, 2)], ["a"]), ValueError, "one map per image"),
])
def test_bad_inputs_are_refused_with_a_message_that_says_what_to_do(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
