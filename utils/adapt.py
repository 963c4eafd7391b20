"""Domain shift, measured and partly undone: reusable image shifts, mismatched source tasks (a planted shortcut, shuffled
labels) and AdaBN (re-estimating BatchNorm statistics on the target)."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from .checks import check_choice, check_images, check_int, check_model, check_seed

__all__ = ["SHIFTS", "shift_images", "shifted", "with_marker", "shuffled_labels", "bn_layers", "adabn"]

_BN = nn.modules.batchnorm._BatchNorm


def _invert(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return 1 - x


def _noise(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return (x + 0.4 * torch.randn(x.shape, generator=gen)).clamp(0, 1)


def _blur(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    from torchvision.transforms.functional import gaussian_blur

    return gaussian_blur(x, kernel_size=7, sigma=1.5)


def _rotate(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    from torchvision.transforms.functional import rotate

    return rotate(x, 45.0)


def _low_contrast(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return 0.4 + 0.3 * x  # a grey background, faint strokes


def _fog(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return (x + 0.6 * torch.rand(x.shape[0], 1, 1, 1, generator=gen)).clamp(0, 1)  # a random brightness offset per image


SHIFTS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "invert": _invert, "noise": _noise, "blur": _blur, "rotate": _rotate, "low_contrast": _low_contrast, "fog": _fog}


def shift_images(images: torch.Tensor, kind: str, seed: int = 0) -> torch.Tensor:
    """A shifted copy of a batch of [0, 1] images (N, C, H, W); random shifts are reproducible through `seed`."""
    check_choice(kind, "shift kind", SHIFTS)
    if not torch.is_tensor(images) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a float batch (N, C, H, W) in [0, 1]; got "
                         f"{tuple(images.shape) if torch.is_tensor(images) else type(images).__name__}.")
    images = check_images(images, "images", channels=None)
    return SHIFTS[kind](images, torch.Generator().manual_seed(check_seed(seed))).contiguous()


def _image_dataset(dataset, fn: str):
    from .data import ImageTensorDataset

    if not isinstance(dataset, ImageTensorDataset):
        raise TypeError(f"dataset must be an ImageTensorDataset (raw [0, 1] images in memory) for {fn}(); got "
                        f"{type(dataset).__name__}.")
    return dataset


def shifted(dataset, kind: str, seed: int = 0):
    """The same labelled images (an `ImageTensorDataset`) seen through a domain shift; its transform and normalisation
    are kept (only the pixels change)."""
    dataset = _image_dataset(dataset, "shifted")
    return dataset._like(shift_images(dataset.images, kind, seed), dataset.labels, dataset.transform, dataset.normalize)


def with_marker(dataset, where, size: int | None = None):
    """The same images with a white square at one of six places near the top-left corner (two rows of three), place
    `where[i]` (0-5) for image i: a planted shortcut like a watermark or a scanner tag. Passing the labels as `where`
    makes the square predict the label.

    The square is `size` pixels (default: an eighth of the image side, at least 2); transform and normalisation are kept.
    """
    dataset = _image_dataset(dataset, "with_marker")
    where = torch.as_tensor(where)
    if where.ndim != 1 or len(where) != len(dataset) or where.is_floating_point() or len(where) and (
            int(where.min()) < 0 or int(where.max()) > 5):
        raise ValueError(f"where must hold one position 0-5 per image ({len(dataset)}), e.g. the labels of a task with "
                         f"up to 6 classes; got shape {tuple(where.shape)}.")
    side = dataset.images.shape[-1]
    size = check_int(size, "size", 1, side // 4) if size is not None else max(2, side // 8)
    x = dataset.images.clone()
    for i, k in enumerate(where.tolist()):
        top, left = 1 + (k // 3) * (size + 2), 1 + (k % 3) * (size + 2)
        x[i, :, top:top + size, left:left + size] = 1.0
    return dataset._like(x, dataset.labels, dataset.transform, dataset.normalize)


def shuffled_labels(dataset, seed: int = 0):
    """The same images with their labels randomly permuted (class counts unchanged): a source task with nothing to
    learn but memorisation of individual images."""
    dataset = _image_dataset(dataset, "shuffled_labels")
    perm = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(check_seed(seed)))
    return dataset._like(dataset.images, dataset.labels[perm], dataset.transform, dataset.normalize)


def bn_layers(model: nn.Module) -> list[tuple[str, _BN]]:
    """The BatchNorm layers that keep running statistics, the only thing AdaBN changes."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _BN) and m.track_running_stats]


def _first_tensor(batch):
    x = batch[0] if isinstance(batch, (list, tuple)) else batch
    if not torch.is_tensor(x):
        raise TypeError(f"adabn expects batches of image tensors, or (images, labels) pairs; got {type(x).__name__}.")
    return x


@torch.no_grad()
def adabn(model: nn.Module, target_loader: Iterable, max_batches: int | None = None) -> int:
    """Replace every BatchNorm's running mean/var by the target domain's (labels unused); returns how many layers.

    Li et al.'s AdaBN: weights stay as trained, only the normalisation statistics move to the new domain. Statistics
    are a cumulative average over the batches (momentum=None), so the result does not depend on the old values.
    """
    check_model(model)
    if max_batches is not None:
        max_batches = check_int(max_batches, "max_batches", 1, hint="(None for the whole loader)")
    if hasattr(target_loader, "__len__") and len(target_loader) == 0:
        raise ValueError("target_loader yields no batches; AdaBN needs unlabelled target images. Check the dataset is "
                         "not empty (and drop_last with a small dataset).")
    layers = bn_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no BatchNorm layer with running statistics, so AdaBN has nothing "
                         "to re-estimate. (LayerNorm/GroupNorm models normalise per example and need no AdaBN.)")
    saved = {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in layers}
    modes = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for _, m in layers}
    device = next(model.parameters()).device
    seen = 0
    try:
        model.eval()  # dropout and everything else: inference behaviour
        for _, m in layers:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average: every batch counts equally
            m.train()  # BN alone uses batch statistics and updates its running estimates
        for batch in target_loader:
            model(_first_tensor(batch).to(device))
            seen += 1
            if max_batches is not None and seen >= max_batches:
                break
        if seen == 0:
            raise ValueError("The target loader yielded no batches; AdaBN needs unlabelled target images. "
                             "Check the dataset is not empty (and drop_last with a small dataset).")
    except BaseException:
        for n, m in layers:  # leave the model exactly as it was
            m.load_state_dict(saved[n])
        raise
    finally:
        for m, training in modes.items():
            m.train(training)
        for m, momentum in momenta.items():
            m.momentum = momentum
    return len(layers)
