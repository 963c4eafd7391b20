"""A small CNN you can pretrain yourself on a CPU in seconds, laid out like a timm backbone so every helper works on it."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .models import DataConfig

__all__ = ["SmallCNN", "conv_block", "small_cnn", "save_small_cnn", "load_small_cnn"]


def conv_block(in_chans: int, out_chans: int, norm: bool = True) -> nn.Sequential:
    """Conv 3×3 → BatchNorm → ReLU → 2×2 max-pool: one 'block', the unit that `unfreeze_last` counts.

    `norm=False` drops BatchNorm (the conv gets a bias): data-parallel runs then match one process exactly.
    """
    layers = [nn.Conv2d(in_chans, out_chans, 3, padding=1, bias=not norm)] + ([nn.BatchNorm2d(out_chans)] if norm else [])
    return nn.Sequential(*layers, nn.ReLU(inplace=True), nn.MaxPool2d(2))


class SmallCNN(nn.Module):
    """`features` (a Sequential of conv blocks) → global average pool → `classifier` (the last nn.Linear)."""

    def __init__(self, num_classes: int = 10, widths: Sequence[int] = (16, 32, 64, 128), in_chans: int = 3,
                 input_size: int = 32, norm: bool = True, dropout: float = 0.0):
        super().__init__()
        if isinstance(widths, (int, str)) or not widths or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in widths):
            raise ValueError(f"widths must be a non-empty sequence of positive ints (channels per block), got {widths!r}.")
        if input_size < 2 ** len(widths):
            raise ValueError(f"input_size {input_size} is too small for {len(widths)} blocks (each halves it); "
                             f"use at least {2 ** len(widths)} or fewer blocks.")
        chans = [in_chans, *widths]
        self.features = nn.Sequential(*(conv_block(a, b, norm) for a, b in zip(chans, chans[1:])))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(widths[-1], num_classes)
        self.num_classes, self.num_features, self.norm, self.dropout = num_classes, widths[-1], norm, dropout
        # Same convention as the bundled EfficientNet-Lite0 (mean = std = 0.5), so one preprocessing serves both.
        self.data_config = DataConfig((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), input_size)

    # The three methods below follow timm's interface, so utils.features can cache activations of a SmallCNN too.
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's feature map (N, num_features, h, w)."""
        if x.ndim != 4:
            raise ValueError(f"SmallCNN expects a batch (N, C, H, W); got shape {tuple(x.shape)}. Add a batch dim: x[None].")
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, then classify (or stop at the pooled features with `pre_logits=True`)."""
        x = self.pool(x).flatten(1)
        return x if pre_logits else self.classifier(self.drop(x))

    def forward_intermediates(self, x: torch.Tensor, indices: Sequence[int] | None = None, intermediates_only: bool = True,
                              stop_early: bool = True, extra_blocks: bool = True) -> list[torch.Tensor]:
        """Outputs of the blocks numbered in `indices` (default: all but the last), like timm's method of that name."""
        want = list(range(len(self.features) - 1)) if indices is None else sorted(indices)
        out = []
        for i, block in enumerate(self.features):
            if i > max(want, default=-1):
                break
            x = block(x)
            if i in want:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def small_cnn(num_classes: int = 10, widths: Sequence[int] = (16, 32, 64, 128), input_size: int = 32,
              seed: int | None = None, norm: bool = True, dropout: float = 0.0) -> SmallCNN:
    """A freshly initialised SmallCNN; `seed` makes the initial weights reproducible without touching global RNG state."""
    from .checks import check_seed

    if seed is not None:
        seed = check_seed(seed)
    if seed is None:
        return SmallCNN(num_classes, widths, input_size=input_size, norm=norm, dropout=dropout)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallCNN(num_classes, widths, input_size=input_size, norm=norm, dropout=dropout)


# --- Saving and loading ----------------------------------------------------------------------------------------

def save_small_cnn(model: SmallCNN, path, classes: Sequence[str], **meta):
    """Save weights (safetensors) plus what it takes to rebuild the model: widths, input size, class names."""
    from .checkpoint import save_checkpoint

    if not isinstance(model, SmallCNN):
        raise TypeError(f"save_small_cnn saves a SmallCNN; got {type(model).__name__}. Use utils.save_checkpoint for other models.")
    if len(classes) != model.classifier.out_features:
        raise ValueError(f"classes has {len(classes)} names but the head has {model.classifier.out_features} outputs; "
                         "pass one name per output.")
    widths = [blk[0].out_channels for blk in model.features]
    return save_checkpoint(model, path, {"arch": "SmallCNN", "widths": widths, "input_size": model.data_config.input_size,
                                         "norm": model.norm, "dropout": model.dropout, "classes": list(classes), **meta})


def load_small_cnn(path) -> tuple[SmallCNN, dict]:
    """Rebuild a SmallCNN from a `save_small_cnn` file (no pickle: safetensors + JSON metadata); returns (model, meta)."""
    from .checkpoint import load_checkpoint, read_metadata

    meta = read_metadata(path)
    if meta.get("arch") != "SmallCNN":
        raise ValueError(f"{path} was not written by save_small_cnn (metadata: {meta}); build the model yourself and "
                         f"use utils.load_checkpoint.")
    model = SmallCNN(len(meta["classes"]), tuple(meta["widths"]), input_size=meta["input_size"],
                     norm=meta.get("norm", True), dropout=meta.get("dropout", 0.0))
    load_checkpoint(model, path)
    return model.eval(), meta
