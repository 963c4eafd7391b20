"""Plots a reader would rather look at than read: learning curves, image grids, filters and feature maps."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .train import History

__all__ = ["plot_history", "show_images", "show_filters", "show_feature_maps", "legend_outside"]


def plot_history(histories: History | Sequence[History], metrics: Sequence[str] = ("loss", "acc"), title: str = ""):
    """Train (dashed) and validation (solid) curves per metric, one colour per run, so runs compare at a glance."""
    import matplotlib.pyplot as plt

    histories = [histories] if isinstance(histories, History) else list(histories)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for i, h in enumerate(histories):
            color = f"C{i % 10}"
            ax.plot(h["epoch"], h[f"train_{metric}"], "--", color=color, alpha=0.7)
            if any(v is not None for v in h[f"val_{metric}"]):
                ax.plot(h["epoch"], h[f"val_{metric}"], "-o", color=color, ms=3, label=h.label or f"run {i + 1}")
        ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} (dashed: train, solid: val)")
        ax.grid(alpha=0.3)
    if any(h.label for h in histories):
        axes[0][-1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _as_hwc(img) -> np.ndarray:
    if torch.is_tensor(img):
        img = img.detach().cpu().float()
        img = img.permute(1, 2, 0) if img.ndim == 3 and img.shape[0] in (1, 3) else img
        img = img.numpy()
    img = np.asarray(img)
    return img.squeeze(-1) if img.ndim == 3 and img.shape[-1] == 1 else img


def show_images(images: Sequence, titles: Sequence[str] | None = None, ncols: int = 8, size: float = 1.6, cmap: str | None = None):
    """A grid of images (tensors (C,H,W) in [0,1] or arrays (H,W[,C])) with optional titles."""
    import matplotlib.pyplot as plt

    n = len(images)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3 * bool(titles)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, img in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(_as_hwc(img), cmap=cmap)
        if titles:
            ax.set_title(str(titles[i]), fontsize=8)
    fig.tight_layout()
    return fig


def show_filters(weight: torch.Tensor, ncols: int = 8):
    """First-layer convolution kernels (out, 3, k, k) as small RGB patches, each rescaled to [0, 1]."""
    w = weight.detach().cpu().float()
    if w.ndim != 4 or w.shape[1] != 3:
        raise ValueError(f"Expected first-layer RGB kernels (out, 3, k, k); got {tuple(w.shape)}.")
    lo, hi = w.amin(dim=(1, 2, 3), keepdim=True), w.amax(dim=(1, 2, 3), keepdim=True)
    return show_images(list((w - lo) / (hi - lo + 1e-8)), ncols=ncols, size=0.9)


def show_feature_maps(maps: torch.Tensor, n: int = 8, title: str = ""):
    """The first n channels of one example's activations (C, H, W), each on its own colour scale."""
    maps = maps.detach().cpu().float()
    if maps.ndim != 3:
        raise ValueError(f"Expected one example's feature maps (C, H, W); got {tuple(maps.shape)}.")
    fig = show_images(list(maps[:n]), ncols=n, size=1.3, cmap="viridis")
    if title:
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
    return fig


def legend_outside(ax, where: str = "right", fontsize: float = 8, **kwargs) -> None:
    """Put the axes' legend outside the plot area (to the right, or below), where it cannot hide a curve.

    Returns None, so a cell that ends with it echoes nothing (``ax.get_legend()`` gives the legend). The inline
    backend and ``savefig(..., bbox_inches="tight")`` enlarge the figure to include it.
    """
    handles, _ = ax.get_legend_handles_labels()
    if where == "right":
        placement = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}
    elif where == "below":
        placement = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.18), "ncols": max(1, min(len(handles), 3))}
    else:
        raise ValueError(f"where must be 'right' or 'below', got {where!r}.")
    ax.legend(fontsize=fontsize, **{**placement, **kwargs})
