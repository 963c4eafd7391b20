"""Turning real images into model inputs (with the pretrained model's own normalisation), and top-k predictions."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .models import DataConfig, data_config

__all__ = ["PHOTOS", "load_photo", "to_tensor", "normalize", "preprocess", "topk", "classify"]

# Real photos that ship inside installed packages: name -> (package, loader description).
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "china", "flower", "grace_hopper")


def load_photo(name: str) -> np.ndarray:
    """A bundled photo as an (H, W, 3) uint8 array: skimage's, sklearn's or matplotlib's sample images."""
    if name in ("chelsea", "coffee", "astronaut", "rocket"):
        import skimage.data

        return getattr(skimage.data, name)()
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    if name == "grace_hopper":
        import matplotlib.cbook
        import matplotlib.image

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            return np.asarray(matplotlib.image.imread(f, format="jpg"))
    raise ValueError(f"Unknown photo {name!r}; bundled photos: {', '.join(PHOTOS)}.")


def to_tensor(image) -> torch.Tensor:
    """A float (N, 3, H, W) tensor in [0, 1] from a PIL image, an (H, W, 3) uint8 array, or a (3, H, W)/(N, 3, H, W) tensor."""
    if hasattr(image, "convert"):  # PIL
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] not in (3, 4):
            raise ValueError(f"A NumPy image must be (H, W, 3) RGB; got shape {image.shape}. "
                             "For grayscale, stack it: np.stack([img] * 3, axis=-1).")
        image = torch.from_numpy(np.array(image[..., :3])).permute(2, 0, 1)  # a copy: sample images are read-only
    if not torch.is_tensor(image):
        raise TypeError(f"Expected a PIL image, NumPy array or torch tensor, got {type(image).__name__}.")
    x = image.unsqueeze(0) if image.ndim == 3 else image
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"Expected (3, H, W) or (N, 3, H, W) with 3 colour channels first; got {tuple(image.shape)}. "
                         "Channels-last arrays need .permute(2, 0, 1); grayscale needs .expand(3, -1, -1).")
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise TypeError(f"Image tensors must be uint8 (0-255) or float (0-1); got {x.dtype}.")
    if x.numel() and (x.min() < -1e-3 or x.max() > 1 + 1e-3):
        raise ValueError(f"Float images must lie in [0, 1]; these span [{x.min():.2f}, {x.max():.2f}]. "
                         "Were they normalised already? Pass the raw image; preprocess() normalises.")
    return x.float()


def normalize(x: torch.Tensor, cfg: DataConfig) -> torch.Tensor:
    """Apply the pretrained model's mean/std (the statistics its first layer was trained on)."""
    mean = torch.tensor(cfg.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def preprocess(image, cfg: DataConfig | nn.Module, size: int | None = None) -> torch.Tensor:
    """Resize the shorter side and centre-crop to the model's resolution (or `size`), then normalise."""
    import torch.nn.functional as F

    cfg = data_config(cfg) if isinstance(cfg, nn.Module) else cfg
    x = to_tensor(image)
    size = size or cfg.input_size
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    x = F.interpolate(x, size=(max(size, round(h * scale)), max(size, round(w * scale))), mode="bilinear", antialias=True, align_corners=False)
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return normalize(x[..., top:top + size, left:left + size].clamp(0, 1), cfg)


def topk(probs: torch.Tensor, labels: Sequence[str], k: int = 5) -> list[tuple[str, float]]:
    """The k most probable labels with their probabilities, for one example."""
    if probs.ndim != 1:
        raise ValueError(f"topk takes one example's probabilities (1-D); got shape {tuple(probs.shape)}.")
    p, i = probs.topk(min(k, len(labels)))
    return [(labels[j], float(v)) for v, j in zip(p.tolist(), i.tolist())]


@torch.no_grad()
def classify(model: nn.Module, image, labels: Sequence[str] | None = None, k: int = 5) -> list[tuple[str, float]]:
    """Top-k (label, probability) for one image, preprocessed the way the model was trained."""
    from .assets import imagenet_categories

    labels = labels or imagenet_categories()
    device = next(model.parameters()).device
    model.eval()
    x = preprocess(image, model).to(device)
    if x.shape[0] != 1:
        raise ValueError(f"classify() takes one image; got a batch of {x.shape[0]}. Loop, or use utils.predict on a loader.")
    return topk(model(x)[0].float().softmax(0).cpu(), labels, k)
