"""Data augmentation for transfer: torchvision v2 pipelines that end in the pretrained model's own normalisation."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn
from torch.utils.data import Dataset

from .models import DataConfig, data_config

__all__ = ["LEVELS", "DOMAINS", "augmentation", "transform_gallery", "denormalize", "with_transform", "OnTheFly",
           "augment_grid"]

LEVELS = ("none", "light", "heavy", "flip")
DOMAINS = ("photo", "digits")


def _cfg(cfg: DataConfig | nn.Module) -> DataConfig:
    if isinstance(cfg, nn.Module):
        return data_config(cfg)
    if not isinstance(cfg, DataConfig):
        raise TypeError(f"cfg must be a model (with .data_config) or a utils.DataConfig, got {type(cfg).__name__}.")
    return cfg


def _size(size, cfg: DataConfig) -> int:
    size = cfg.input_size if size is None else size
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer >= 8 pixels (or None for the model's {cfg.input_size}), got {size!r}.")
    return size


def _geometric(level: str, domain: str, size: int) -> list:
    """The label-preserving spatial transforms for a level and domain (digits: no flips, mild rotations)."""
    from torchvision.transforms import v2

    if level == "none":
        return [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
    if level == "flip":  # the classic photo recipe applied blindly: a mirrored 2 or 7 is not a digit
        return [v2.Resize(size, antialias=True), v2.CenterCrop(size), v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()]
    if domain == "photo":
        scale = (0.6, 1.0) if level == "light" else (0.15, 1.0)
        ops = [v2.RandomResizedCrop(size, scale=scale, antialias=True), v2.RandomHorizontalFlip()]
        return ops + ([v2.RandomRotation(30)] if level == "heavy" else [])
    if level == "light":  # digits: small shifts, rotations and scalings, as handwriting varies
        return [v2.Resize(size, antialias=True), v2.CenterCrop(size),
                v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1))]
    return [v2.Resize(size, antialias=True), v2.CenterCrop(size),
            v2.RandomAffine(degrees=45, translate=(0.25, 0.25), scale=(0.6, 1.4), shear=20)]


def _photometric(level: str) -> list:
    from torchvision.transforms import v2

    if level != "heavy":
        return []
    return [v2.RandomApply([v2.ColorJitter(0.6, 0.6, 0.6, 0.2)], p=0.8), v2.RandomGrayscale(p=0.2),
            v2.RandomApply([v2.GaussianBlur(5, sigma=(0.5, 2.0))], p=0.5)]


def _clamp01(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1)  # a named function, not a lambda, so DataLoader workers can pickle the pipeline


def augmentation(level: str, cfg: DataConfig | nn.Module, size: int | None = None, domain: str = "photo",
                 normalize: bool = True):
    """A v2.Compose for float (3, H, W) images in [0, 1]: 'none', 'light', 'heavy' (or 'flip', wrong for digits),
    resized to the model's resolution (or `size`) and normalised with its mean/std (skip with normalize=False)."""
    from torchvision.transforms import v2

    if level not in LEVELS:
        raise ValueError(f"Unknown augmentation level {level!r}; choose one of {', '.join(LEVELS)}.")
    if domain not in DOMAINS:
        raise ValueError(f"Unknown domain {domain!r}; choose 'photo' (flips and crops are safe) or 'digits' "
                         "(orientation carries the label: no flips).")
    cfg = _cfg(cfg)
    size = _size(size, cfg)
    ops = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), *_geometric(level, domain, size), *_photometric(level)]
    if level == "heavy":
        ops.append(v2.RandomErasing(p=0.5, scale=(0.05, 0.25)))
    ops.append(v2.Lambda(_clamp01))  # bicubic overshoot and jitter stay in the range the model expects
    if normalize:
        ops.append(v2.Normalize(list(cfg.mean), list(cfg.std)))
    return v2.Compose([*ops, v2.ToPureTensor()])


def transform_gallery(size: int) -> dict[str, Callable]:
    """One transform per name, each alone, to show what it does to an image (float (3, H, W) in [0, 1])."""
    from torchvision.transforms import v2

    _size(size, DataConfig((0.5,) * 3, (0.5,) * 3, size))
    return {"random resized crop": v2.RandomResizedCrop(size, scale=(0.25, 1.0), antialias=True),
            "horizontal flip": v2.RandomHorizontalFlip(p=1.0),
            "rotation ±30°": v2.RandomRotation(30),
            "affine (shift, scale, shear)": v2.RandomAffine(0, translate=(0.2, 0.2), scale=(0.7, 1.3), shear=20),
            "colour jitter": v2.ColorJitter(0.6, 0.6, 0.6, 0.2),
            "gaussian blur": v2.GaussianBlur(9, sigma=(1.0, 3.0)),
            "random erasing": v2.RandomErasing(p=1.0, scale=(0.1, 0.3))}


def denormalize(x: torch.Tensor, cfg: DataConfig | nn.Module) -> torch.Tensor:
    """Undo the model's normalisation (for showing what the model sees), clipped to [0, 1]."""
    cfg = _cfg(cfg)
    shape = (3, 1, 1) if x.ndim == 3 else (1, 3, 1, 1)
    mean, std = torch.tensor(cfg.mean).view(shape), torch.tensor(cfg.std).view(shape)
    return (x.cpu() * std + mean).clamp(0, 1)


def with_transform(dataset, transform: Callable | None):
    """The same in-memory images (not copied) with a different per-item transform: one split, many pipelines."""
    from .data import ImageTensorDataset

    if not isinstance(dataset, ImageTensorDataset):
        raise TypeError(f"with_transform takes a utils.ImageTensorDataset, got {type(dataset).__name__}; "
                        "wrap other datasets with augment.OnTheFly(dataset, transform).")
    return ImageTensorDataset(dataset.images, dataset.labels, dataset.classes, transform)


class OnTheFly(Dataset):
    """Apply a transform to each (image, label) item as it is loaded, so every epoch sees new random views."""

    def __init__(self, dataset: Dataset, transform: Callable):
        if not callable(transform):
            raise TypeError(f"transform must be callable (e.g. augment.augmentation('light', model)), got {transform!r}.")
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        x, y = self.dataset[i]
        return self.transform(x), y


def augment_grid(image: torch.Tensor, transforms: Mapping[str, Callable], n: int = 4, seed: int = 0
                 ) -> tuple[list[torch.Tensor], list[str]]:
    """`n` random outputs of each transform on one image (plus the original first), as images and titles for
    `utils.show_images(images, titles, ncols=n + 1)`."""
    if not torch.is_tensor(image) or image.ndim != 3 or image.shape[0] != 3:
        raise ValueError("image must be a float (3, H, W) tensor in [0, 1]; convert a photo with "
                         "utils.to_tensor(photo)[0].")
    if not transforms:
        raise ValueError("transforms is empty; pass e.g. augment.transform_gallery(size).")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer (views per transform), got {n!r}.")
    torch.manual_seed(seed)
    images, titles = [], []
    for name, t in transforms.items():
        images.append(image)
        titles.append(f"{name}: original")
        for k in range(n):
            images.append(t(image).clamp(0, 1))
            titles.append(f"view {k + 1}")
    return images, titles

