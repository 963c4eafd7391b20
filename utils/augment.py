"""Data augmentation for transfer: torchvision v2 pipelines that end in the pretrained model's own normalisation."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn
from torch.utils.data import Dataset

from .checks import check_callable, check_choice, check_images, check_int, check_number, check_seed
from .models import DataConfig, data_config

__all__ = ["LEVELS", "DOMAINS", "POLICIES", "MIXES", "augmentation", "strength", "policy", "mix_collate",
           "tta_predict", "transform_gallery", "denormalize", "with_transform", "OnTheFly", "augment_grid"]

LEVELS = ("none", "light", "heavy", "flip")
DOMAINS = ("photo", "digits")
POLICIES = ("trivialaugment", "randaugment")
MIXES = ("mixup", "cutmix")


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


def strength(m: float, domain: str = "digits", size: int | None = None):
    """One knob m in [0, 1] for a strength curve (None at m = 0): digits get an affine (rotation 40m degrees, shift
    20m %, scale 1 +- 0.3m, shear 20m degrees, no flips); photos a crop (down to 1 - 0.85m of the area, needs `size`),
    a flip, rotation 30m degrees and brightness/contrast 0.5m. Float [0, 1] in and out, no normalisation (the
    dataset normalises), so `with_transform(dataset, strength(m))` sweeps strength with everything else fixed."""
    from torchvision.transforms import v2

    m = check_number(m, "m (augmentation strength)", 0, 1, hint="(0 = none, 1 = the heaviest setting)")
    check_choice(domain, "domain", DOMAINS)
    if m == 0:
        return None
    if domain == "digits":
        ops = [v2.RandomAffine(degrees=40 * m, translate=(0.2 * m, 0.2 * m), scale=(1 - 0.3 * m, 1 + 0.3 * m),
                               shear=20 * m)]
    else:
        if size is None:
            raise ValueError("strength(m, 'photo') needs size (the crop's output size in pixels).")
        size = check_int(size, "size", 8)
        ops = [v2.RandomResizedCrop(size, scale=(1 - 0.85 * m, 1.0), ratio=(1 - 0.25 * m, 1 / (1 - 0.25 * m)),
                                    antialias=True), v2.RandomHorizontalFlip(), v2.RandomRotation(30 * m),
               v2.ColorJitter(brightness=0.5 * m, contrast=0.5 * m)]
    return v2.Compose([*ops, v2.Lambda(_clamp01)])


def policy(name: str, domain: str = "digits"):
    """A learned-free automatic policy, TrivialAugmentWide or RandAugment (defaults), on float [0, 1] images: they
    operate on uint8, so the image makes a round trip; photos also get a horizontal flip, digits never."""
    from torchvision.transforms import v2

    check_choice(name, "policy", POLICIES)
    check_choice(domain, "domain", DOMAINS)
    op = v2.TrivialAugmentWide() if name == "trivialaugment" else v2.RandAugment()
    flip = [v2.RandomHorizontalFlip()] if domain == "photo" else []
    return v2.Compose([v2.ToDtype(torch.uint8, scale=True), op, v2.ToDtype(torch.float32, scale=True), *flip])


class _MixCollate:
    """default_collate, then a batch-level v2.MixUp / v2.CutMix (a class, not a closure, so workers can pickle it)."""

    def __init__(self, mix):
        self.mix = mix

    def __call__(self, batch):
        from torch.utils.data import default_collate

        return self.mix(*default_collate(batch))


def mix_collate(num_classes: int, kind: str = "mixup", alpha: float | None = None):
    """A DataLoader `collate_fn` that mixes each batch (MixUp: alpha 0.2 by default; CutMix: 1.0) and returns soft
    targets (N, num_classes), which `nn.functional.cross_entropy` (and so `utils.fit`) accepts as they are."""
    from torchvision.transforms import v2

    num_classes = check_int(num_classes, "num_classes", 2)
    check_choice(kind, "kind", MIXES)
    alpha = (0.2 if kind == "mixup" else 1.0) if alpha is None else check_number(alpha, "alpha", 0, lo_open=True)
    mix = v2.MixUp(num_classes=num_classes, alpha=alpha) if kind == "mixup" else v2.CutMix(num_classes=num_classes,
                                                                                            alpha=alpha)
    return _MixCollate(mix)


@torch.no_grad()
def tta_predict(model: nn.Module, loader, flip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Test-time augmentation: (probabilities, labels) averaged over each image and its horizontal mirror
    (`flip=False` gives plain `utils.predict`, the paired control); runs on the model's own device."""
    from .device import model_device
    from .train import predict

    if not isinstance(flip, bool):
        raise TypeError(f"flip must be True (average with the mirrored image) or False, got {flip!r}.")
    probs, labels = predict(model, loader)
    if not flip:
        return probs, labels
    device = model_device(model)
    was_training = model.training
    model.eval()
    mirrored = []
    try:
        for x, _ in loader:
            mirrored.append(model(x.to(device).flip(-1)).float().softmax(-1).cpu())
    finally:
        model.train(was_training)
    return (probs + torch.cat(mirrored)) / 2, labels


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

