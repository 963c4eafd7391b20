"""utils.plots: the figures carry the data they claim to show (lines per run, one panel per image)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import utils


def _history(label: str, with_val: bool = True) -> utils.History:
    h = utils.History(label)
    for e in (1, 2, 3):
        row = {"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.5 + 0.1 * e}
        if with_val:
            row.update(val_loss=1.2 / e, val_acc=0.4 + 0.1 * e)
        h.rows.append(row)
    return h


def test_plot_history_draws_train_and_val_per_run():
    fig = utils.plot_history([_history("probe"), _history("fine-tune")], title="compare")
    loss_ax, acc_ax = fig.axes
    assert len(loss_ax.lines) == 4 and len(acc_ax.lines) == 4  # dashed train + solid val, per run
    assert list(loss_ax.lines[1].get_ydata()) == pytest.approx([1.2, 0.6, 0.4])
    assert list(acc_ax.lines[0].get_xdata()) == [1, 2, 3]
    assert [t.get_text() for t in acc_ax.get_legend().get_texts()] == ["probe", "fine-tune"]
    assert fig._suptitle.get_text() == "compare"


def test_plot_history_without_validation_draws_only_train_curves():
    fig = utils.plot_history(_history("", with_val=False), metrics=("loss",))
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 1 and fig.axes[0].get_legend() is None


def test_show_images_makes_a_grid_with_titles():
    imgs = [torch.rand(3, 6, 6), np.random.rand(6, 6), torch.rand(1, 6, 6)]
    fig = utils.show_images(imgs, titles=["a", "b", "c"], ncols=2)
    assert len(fig.axes) == 4  # 2 x 2 grid, last panel empty
    assert [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]
    assert fig.axes[0].images[0].get_array().shape == (6, 6, 3) and not fig.axes[3].images


def test_show_filters_rescales_each_kernel(effnet):
    w = effnet.conv_stem.weight
    fig = utils.show_filters(w)
    assert len([ax for ax in fig.axes if ax.images]) == w.shape[0] == 32
    shown = fig.axes[0].images[0].get_array()
    assert shown.min() == pytest.approx(0, abs=1e-6) and shown.max() == pytest.approx(1, abs=1e-6)


def test_show_filters_rejects_non_rgb_kernels():
    with pytest.raises(ValueError, match=r"first-layer RGB kernels \(out, 3, k, k\)"):
        utils.show_filters(torch.rand(8, 16, 3, 3))


def test_show_feature_maps_shows_n_channels():
    fig = utils.show_feature_maps(torch.rand(16, 5, 5), n=6, title="stem")
    assert len([ax for ax in fig.axes if ax.images]) == 6 and fig._suptitle.get_text() == "stem"
    with pytest.raises(ValueError, match=r"one example's feature maps \(C, H, W\)"):
        utils.show_feature_maps(torch.rand(2, 16, 5, 5))
