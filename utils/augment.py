"""Data augmentation for transfer: torchvision v2 pipelines that end in the pretrained model's own normalisation."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn
from torch.utils.data import Dataset

from .checks import check_callable, check_choice, check_images, check_int, check_seed
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
    if size is None:
        return cfg.input_size
    return check_int(size, "size", 8, hint=f"(pixels; None for the model's {cfg.input_size})")


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

    check_choice(level, "augmentation level", LEVELS)
    check_choice(domain, "domain ('photo': flips and crops are safe; 'digits': orientation carries the label, no flips)",
                 DOMAINS)
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be True (end with the model's mean/std) or False, got {normalize!r}.")
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
    if not torch.is_tensor(x) or x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"x must be normalised images (3, H, W) or (N, 3, H, W), got "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}.")
    shape = (3, 1, 1) if x.ndim == 3 else (1, 3, 1, 1)
    mean, std = torch.tensor(cfg.mean).view(shape), torch.tensor(cfg.std).view(shape)
    return (x.cpu() * std + mean).clamp(0, 1)


def with_transform(dataset, transform: Callable | None):
    """The same in-memory images (not copied) with a different per-item transform: one split, many pipelines.

    The dataset's normalisation is kept, unless the transform normalises itself (an `augmentation(...)` pipeline
    does by default): then the transform's is used, so images are normalised exactly once."""
    from .data import ImageTensorDataset, _normalizer

    if not isinstance(dataset, ImageTensorDataset):
        raise TypeError(f"with_transform takes a utils.ImageTensorDataset, got {type(dataset).__name__}; "
                        "wrap other datasets with augment.OnTheFly(dataset, transform).")
    check_callable(transform, "transform", "E.g. augment.augmentation('light', model).")
    own = _normalizer(transform) if transform is not None else None
    if own is not None and dataset.normalize is not None and own != (dataset.normalize.mean, dataset.normalize.std):
        raise ValueError(f"transform normalises with mean/std {own}, but the dataset was built for "
                         f"{(dataset.normalize.mean, dataset.normalize.std)}: build the transform for the same model.")
    out = dataset.with_options(transform=transform, normalize=None if own is not None else "keep")
    out.normalize_unset = dataset.normalize_unset and own is None
    return out


class OnTheFly(Dataset):
    """Apply a transform to each (image, label) item as it is loaded, so every epoch sees new random views."""

    def __init__(self, dataset: Dataset, transform: Callable):
        check_callable(transform, "transform", "E.g. augment.augmentation('light', model).", allow_none=False)
        if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            raise TypeError(f"dataset must be a map-style dataset (indexable, with a length), got {type(dataset).__name__}.")
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
    image = check_images(image[None], "image")[0]
    if not isinstance(transforms, Mapping):
        raise TypeError(f"transforms must be a dict of name -> transform, e.g. augment.transform_gallery(size); got "
                        f"{type(transforms).__name__}.")
    if not transforms:
        raise ValueError("transforms is empty; pass e.g. augment.transform_gallery(size).")
    for name, t in transforms.items():
        check_callable(t, f"transforms[{name!r}]", allow_none=False)
    n = check_int(n, "n", 1, hint="(views per transform)")
    torch.manual_seed(check_seed(seed))
    images, titles = [], []
    for name, t in transforms.items():
        images.append(image)
        titles.append(f"{name}: original")
        for k in range(n):
            images.append(t(image).clamp(0, 1))
            titles.append(f"view {k + 1}")
    return images, titles

