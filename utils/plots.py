"""Plots a reader would rather look at than read: learning curves, image grids, filters and feature maps."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .checks import check_int, check_nonempty, check_number, check_same_length
from .train import History

__all__ = ["plot_history", "show_images", "show_filters", "show_feature_maps", "legend_outside"]


def plot_history(histories: History | Sequence[History], metrics: Sequence[str] = ("loss", "acc"), title: str = ""):
    """Train (dashed) and validation (solid) curves per metric, one colour per run, so runs compare at a glance."""
    import matplotlib.pyplot as plt

    histories = [histories] if isinstance(histories, History) else histories
    if not hasattr(histories, "__iter__") or isinstance(histories, (str, dict)):
        raise TypeError(f"histories must be a utils.History or a list of them (what utils.fit returns), got "
                        f"{type(histories).__name__}.")
    histories = list(histories)
    check_nonempty(histories, "histories", "Pass the History that utils.fit returned.")
    if isinstance(metrics, str):
        metrics = (metrics,)
    check_nonempty(list(metrics), "metrics", "E.g. ('loss', 'acc').")
    for i, h in enumerate(histories):
        if not isinstance(h, History):
            raise TypeError(f"histories[{i}] is a {type(h).__name__}, not a utils.History (what utils.fit returns).")
        if not len(h):
            raise ValueError(f"histories[{i}] ({h.label or 'unlabelled'}) has no epochs yet; train with utils.fit first.")
        for m in metrics:
            if all(v is None for v in h[f"train_{m}"]):
                cols = sorted({k[6:] for r in h.rows for k in r if k.startswith("train_")})
                raise ValueError(f"metrics: {m!r} is not recorded in histories[{i}]; it records: {', '.join(cols)}.")
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


def _as_hwc(img, i: int) -> np.ndarray:
    if hasattr(img, "convert") and hasattr(img, "size"):  # PIL
        img = np.asarray(img.convert("RGB"))
    if torch.is_tensor(img):
        img = img.detach().cpu().float()
        img = img.permute(1, 2, 0) if img.ndim == 3 and img.shape[0] in (1, 3) else img
        img = img.numpy()
    if not isinstance(img, np.ndarray):
        raise TypeError(f"images[{i}] is a {type(img).__name__}; pass tensors (C, H, W), arrays (H, W[, C]) or PIL images.")
    img = img.squeeze(-1) if img.ndim == 3 and img.shape[-1] == 1 else img
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] not in (3, 4)):
        raise ValueError(f"images[{i}] has shape {img.shape}; show_images draws (H, W) or (H, W, 3) arrays and (1|3, H, W) "
                         "tensors, one image per entry (a batch? pass list(batch)).")
    if img.dtype.kind == "f" and img.ndim == 3:
        if not np.isfinite(img).all():
            raise ValueError(f"images[{i}] contains NaN or inf pixels.")
        if img.size and (img.min() < -1e-3 or img.max() > 1 + 1e-3):
            raise ValueError(f"images[{i}] is a colour image with values in [{img.min():.2f}, {img.max():.2f}], not [0, 1]: "
                             "matplotlib would clip it. Normalised? Show utils.augment.denormalize(x, model); 0-255 "
                             "floats? Divide by 255.")
    return img


def show_images(images: Sequence, titles: Sequence[str] | None = None, ncols: int = 8, size: float = 1.6, cmap: str | None = None):
    """A grid of images (tensors (C,H,W) in [0,1] or arrays (H,W[,C])) with optional titles."""
    import matplotlib.pyplot as plt

    if torch.is_tensor(images) and images.ndim == 4:
        images = list(images)
    if not hasattr(images, "__len__") or isinstance(images, (str, dict)):
        raise TypeError(f"images must be a list of images, got {type(images).__name__}.")
    n = check_nonempty(images, "images", "Pass at least one image to show (is the dataset or selection empty?).")
    if titles is not None:
        if isinstance(titles, str):
            raise TypeError(f"titles must be one string per image, not one string; e.g. [{titles!r}] * {n}.")
        check_same_length(images, titles, "images", "titles")
    ncols = min(check_int(ncols, "ncols", 1), n)
    size = check_number(size, "size", 0, None, lo_open=True, hint="(inches per image)")
    pictures = [_as_hwc(img, i) for i, img in enumerate(images)]
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3 * bool(titles)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, img in enumerate(pictures):
        ax = axes.flat[i]
        ax.imshow(img, cmap=cmap)
        if titles:
            ax.set_title(str(titles[i]), fontsize=8)
    fig.tight_layout()
    return fig


def show_filters(weight: torch.Tensor, ncols: int = 8):
    """First-layer convolution kernels (out, 3, k, k) as small RGB patches, each rescaled to [0, 1]."""
    if not torch.is_tensor(weight):
        raise TypeError(f"weight must be a tensor of first-layer kernels (out, 3, k, k), got {type(weight).__name__}; "
                        "e.g. model.conv_stem.weight.")
    w = weight.detach().cpu().float()
    if w.ndim != 4 or w.shape[1] != 3:
        raise ValueError(f"Expected first-layer RGB kernels (out, 3, k, k); got {tuple(w.shape)}.")
    lo, hi = w.amin(dim=(1, 2, 3), keepdim=True), w.amax(dim=(1, 2, 3), keepdim=True)
    return show_images(list((w - lo) / (hi - lo + 1e-8)), ncols=ncols, size=0.9)


def show_feature_maps(maps: torch.Tensor, n: int = 8, title: str = ""):
    """The first n channels of one example's activations (C, H, W), each on its own colour scale."""
    if not torch.is_tensor(maps):
        raise TypeError(f"maps must be a tensor (C, H, W) of one example's activations, got {type(maps).__name__}.")
    n = check_int(n, "n", 1)
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
