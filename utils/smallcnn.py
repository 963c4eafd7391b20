"""A small CNN you can pretrain yourself on a CPU in seconds, laid out like a timm backbone so every helper works on it."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .models import DataConfig

__all__ = ["SmallCNN", "conv_block", "small_cnn", "to_model_range", "digit_task", "loader", "train_and_test",
           "save_small_cnn", "load_small_cnn"]


def conv_block(in_chans: int, out_chans: int) -> nn.Sequential:
    """Conv 3×3 → BatchNorm → ReLU → 2×2 max-pool: one 'block', the unit that `unfreeze_last` counts."""
    return nn.Sequential(nn.Conv2d(in_chans, out_chans, 3, padding=1, bias=False), nn.BatchNorm2d(out_chans),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2))


class SmallCNN(nn.Module):
    """`features` (a Sequential of conv blocks) → global average pool → `classifier` (the last nn.Linear)."""

    def __init__(self, num_classes: int = 10, widths: Sequence[int] = (16, 32, 64, 128), in_chans: int = 3,
                 input_size: int = 32):
        super().__init__()
        if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"widths must be a non-empty sequence of positive ints (channels per block), got {widths!r}.")
        if input_size < 2 ** len(widths):
            raise ValueError(f"input_size {input_size} is too small for {len(widths)} blocks (each halves it); "
                             f"use at least {2 ** len(widths)} or fewer blocks.")
        chans = [in_chans, *widths]
        self.features = nn.Sequential(*(conv_block(a, b) for a, b in zip(chans, chans[1:])))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(widths[-1], num_classes)
        self.num_classes, self.num_features = num_classes, widths[-1]
        # Same convention as the bundled EfficientNet-Lite0 (mean = std = 0.5), so one preprocessing serves both.
        self.data_config = DataConfig((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), input_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (N, num_features), the input of the classifier (timm's name for it)."""
        if x.ndim != 4:
            raise ValueError(f"SmallCNN expects a batch (N, C, H, W); got shape {tuple(x.shape)}. Add a batch dim: x[None].")
        return self.pool(self.features(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


def small_cnn(num_classes: int = 10, widths: Sequence[int] = (16, 32, 64, 128), input_size: int = 32,
              seed: int | None = None) -> SmallCNN:
    """A freshly initialised SmallCNN; `seed` makes the initial weights reproducible without touching global RNG state."""
    if seed is None:
        return SmallCNN(num_classes, widths, input_size=input_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallCNN(num_classes, widths, input_size=input_size)


# --- Source and target tasks built from the bundled digits, and the transfer path around them ---------------------

def to_model_range(x: torch.Tensor) -> torch.Tensor:
    """Map [0, 1] pixels to [-1, 1] (mean = std = 0.5), the input convention of SmallCNN and EfficientNet-Lite0 alike."""
    return x * 2 - 1


def digit_task(split: str, digits: Sequence[int], image_size: int = 32, per_class: int | None = None,
               seed: int = 0, transform=to_model_range):
    """MNIST-5k restricted to `digits`, labels renumbered 0..k-1 (a 'task'), optionally `per_class` labels each."""
    from .data import ImageTensorDataset, mnist_digits, subsample_per_class

    digits = list(digits)
    if not digits or len(set(digits)) != len(digits) or any(not isinstance(d, int) or not 0 <= d <= 9 for d in digits):
        raise ValueError(f"digits must be distinct integers 0-9, e.g. [0, 1, 2, 3, 4]; got {digits!r}.")
    full = mnist_digits(split, image_size)
    keep = torch.isin(full.labels, torch.tensor(digits)).nonzero().flatten()
    labels = full.labels[keep]
    keep = keep[torch.as_tensor(subsample_per_class(labels.numpy(), per_class, seed))]
    remap = torch.full((10,), -1, dtype=torch.long)
    remap[torch.tensor(digits)] = torch.arange(len(digits))
    return ImageTensorDataset(full.images[keep], remap[full.labels[keep]], [str(d) for d in digits], transform)


def loader(dataset, batch_size: int = 64, shuffle: bool = False, seed: int = 0):
    """A DataLoader whose shuffling order is fixed by `seed` (so two runs of a chapter see the same batches)."""
    from torch.utils.data import DataLoader

    if len(dataset) == 0:
        raise ValueError("The dataset is empty; check the split, digits and per_class you asked for.")
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen)


def train_and_test(model: nn.Module, train_set, test_set, epochs: int, lr: float = 1e-3, batch_size: int = 32,
                   val_set=None, seed: int = 0, label: str = "", device: torch.device | None = None,
                   progress: bool = True):
    """Fit on `train_set` (seeded shuffling), then measure test accuracy: one comparable run of a transfer table."""
    from .train import evaluate, fit

    hist = fit(model, loader(train_set, batch_size, shuffle=True, seed=seed),
               loader(val_set, 256) if val_set is not None else None, epochs=epochs, lr=lr, label=label, device=device,
               progress=progress)
    return hist, evaluate(model, loader(test_set, 256), device)["acc"]


def save_small_cnn(model: SmallCNN, path, classes: Sequence[str], **meta):
    """Save weights (safetensors) plus what it takes to rebuild the model: widths, input size, class names."""
    from .checkpoint import save_checkpoint

    if not isinstance(model, SmallCNN):
        raise TypeError(f"save_small_cnn saves a SmallCNN; got {type(model).__name__}. Use utils.save_checkpoint for other models.")
    if len(classes) != model.classifier.out_features:
        raise ValueError(f"{len(classes)} class names for a head with {model.classifier.out_features} outputs.")
    widths = [blk[0].out_channels for blk in model.features]
    return save_checkpoint(model, path, {"arch": "SmallCNN", "widths": widths, "input_size": model.data_config.input_size,
                                         "classes": list(classes), **meta})


def load_small_cnn(path) -> tuple[SmallCNN, dict]:
    """Rebuild a SmallCNN from a `save_small_cnn` file (no pickle: safetensors + JSON metadata); returns (model, meta)."""
    from .checkpoint import load_checkpoint, read_metadata

    meta = read_metadata(path)
    if meta.get("arch") != "SmallCNN":
        raise ValueError(f"{path} was not written by save_small_cnn (metadata: {meta}); build the model yourself and "
                         f"use utils.load_checkpoint.")
    model = SmallCNN(len(meta["classes"]), tuple(meta["widths"]), input_size=meta["input_size"])
    load_checkpoint(model, path)
    return model.eval(), meta
