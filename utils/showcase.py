"""The fine-tuned model that chapters 13 and 14 examine and ship, trained once per seed and kept on disk.

EfficientNet-Lite0 (bundled ImageNet weights) with a new 10-way head and its top three layer groups fine-tuned on
50 labelled MNIST digits per class at 64 px: chapter 2's recipe, trained on cached activations so a seed costs
seconds. `digits_model(seed)` loads the saved model when the cache holds one made by this exact recipe (its file
name hashes the recipe and the backbone's weights) and otherwise trains and saves it, so each chapter still runs on
its own and the second one pays nothing.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from . import cache
from .checks import check_seed

__all__ = ["RECIPE", "Recipe", "DigitSplits", "digit_splits", "train_rows", "activations", "fine_tune_digits", "digits_model"]


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the model's weights (with the seed)."""

    image_size: int = 64        # input pixels
    k: int = 3                  # top layer groups fine-tuned (utils.unfreeze_last(model, k))
    per_class: int = 50         # labelled digits per class, drawn per seed from the labelled pool
    val_per_class: int = 50     # validation digits per class (fixed)
    lr: float = 1e-2            # AdamW, chapter 2's rate for this cut
    batch_size: int = 50
    epochs: int = 20            # cosine schedule, no early stopping
    draw_offset: int = 1000     # seed s draws its labelled rows with seed draw_offset + s


RECIPE = Recipe()


@dataclass
class DigitSplits:
    """The digits at the recipe's size: the labelled pool (300 per class), validation and the whole test split."""

    pool: object
    val: object
    test: object


def digit_splits(recipe: Recipe = RECIPE) -> DigitSplits:
    """The book's fixed split of MNIST-5k at the recipe's size (the validation set cut to `val_per_class`)."""
    from .data import mnist_digits, subsample_per_class

    pool = mnist_digits("train", recipe.image_size)
    val = mnist_digits("val", recipe.image_size)
    val = val.subset(subsample_per_class(val.labels.numpy(), recipe.val_per_class, seed=0))
    return DigitSplits(pool, val, mnist_digits("test", recipe.image_size))


def train_rows(pool_labels, seed: int, recipe: Recipe = RECIPE) -> torch.Tensor:
    """The labelled pool rows one seed trains on: `per_class` of each digit."""
    from .data import subsample_per_class

    labels = pool_labels.numpy() if torch.is_tensor(pool_labels) else np.asarray(pool_labels)
    return torch.as_tensor(subsample_per_class(labels, recipe.per_class, seed=recipe.draw_offset + check_seed(seed)))


def activations(backbone: nn.Module, splits: DigitSplits, recipe: Recipe = RECIPE) -> dict:
    """Per split, the cached pooled features (k = 0) and the tensors entering the fine-tuned groups (k = recipe.k)."""
    from .features import cached_activations

    name = f"digits-{recipe.image_size}px"
    return {split: cached_activations(backbone, getattr(splits, split), (0, recipe.k), name, split, progress=False)
            for split in ("pool", "val", "test")}


def fine_tune_digits(seed: int, backbone: nn.Module | None = None, splits: DigitSplits | None = None,
                     recipe: Recipe = RECIPE, device: torch.device | None = None):
    """Train one seed's model from scratch (no cache): returns (model in eval mode on CPU, training History, rows)."""
    from .device import seed_everything
    from .features import tail
    from .loaders import make_loader
    from .models import create_backbone, replace_head
    from .optim import make_optimizer
    from .groups import unfreeze_last
    from .train import fit

    seed = check_seed(seed)
    backbone = backbone if backbone is not None else create_backbone().eval()
    splits = splits or digit_splits(recipe)
    acts = activations(backbone, splits, recipe)
    rows = train_rows(splits.pool.labels, seed, recipe)
    seed_everything(seed)
    model = replace_head(copy.deepcopy(backbone), 10)
    unfreeze_last(model, recipe.k)
    top = tail(model, recipe.k)  # shares its weights with `model`
    loader = make_loader((acts["pool"][recipe.k][rows], splits.pool.labels[rows]), recipe.batch_size, shuffle=True,
                         seed=seed, num_workers=0)
    history = fit(top, loader, epochs=recipe.epochs, optimizer=make_optimizer(top, recipe.lr), schedule="cosine",
                  device=device, progress=False)
    model.classes = list(splits.test.classes)
    return model.cpu().eval(), history, rows


def _path(seed: int, backbone: nn.Module, recipe: Recipe):
    key = cache.hash_json({"recipe": asdict(recipe), "seed": seed, "backbone": cache.fingerprint(backbone)})
    return cache.cache_dir("models") / f"digits-lite0-top{recipe.k}-seed{seed}-{key[:12]}.safetensors"


def digits_model(seed: int, backbone: nn.Module | None = None, splits: DigitSplits | None = None,
                 recipe: Recipe = RECIPE, device: torch.device | None = None, refresh: bool = False):
    """One seed's fine-tuned digit model: loaded when this recipe's file is cached, else trained and saved.

    Returns (model in eval mode on CPU, info) where info holds `rows` (the labelled pool rows it saw), `train_acc`
    and `loaded` (whether it came from disk).
    """
    from .checkpoint import load_model, read_metadata, save_model
    from .models import create_backbone

    seed = check_seed(seed)
    backbone = backbone if backbone is not None else create_backbone().eval()
    path = _path(seed, backbone, recipe)
    if path.exists() and not refresh:
        meta = read_metadata(path)
        return load_model(path), {"rows": torch.tensor(meta["rows"]), "train_acc": float(meta["train_acc"]),
                                  "loaded": True}
    model, history, rows = fine_tune_digits(seed, backbone, splits, recipe, device)
    info = {"rows": rows, "train_acc": float(history.last["train_acc"]), "loaded": False}
    save_model(model, path, meta={"rows": rows.tolist(), "train_acc": info["train_acc"], "seed": seed,
                                  "recipe": asdict(recipe)})
    return model, info
