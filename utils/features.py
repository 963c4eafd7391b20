"""An on-disk cache of frozen-backbone features and block activations, so the book pays each forward pass once.

A frozen backbone in eval mode, fed the same images without augmentation, produces the same numbers every
epoch. So we run it once, store what enters the trainable part ("the cut"), and train only that part:

* ``k = 0``: the pooled pre-logit features (what a linear probe trains on);
* ``k >= 1``: the activations *entering* the last ``k`` of ``utils.backbone_blocks(model)`` (the same unit
  ``utils.unfreeze_last(model, k)`` opens), so "fine-tune the top k blocks" trains ``tail(model, k)`` on them.

Files live under ``$TRANSFER_BOOK_CACHE``, ``<repo>/.cache/features/`` (gitignored) or ``~/.cache/transfer_book/features``
when utils is installed as a package; one safetensors file per
(model weights before the cut, images, normalisation, cut) combination, named by a hash of all of these.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .freeze import backbone_blocks
from .models import classifier_name, data_config
from .vision import normalize

__all__ = ["cache_dir", "check_cut", "cut_module", "fingerprint", "images_of", "cache_key", "extract",
           "cached_activations", "cached_features", "Tail", "tail", "clear_cache", "STATS"]

STATS = {"hits": 0, "misses": 0}  # counts since import: how often the cache saved a forward pass


class _Stop(Exception):
    """Raised by a hook once every wanted activation is captured, to skip the rest of the forward pass."""


def cache_dir() -> Path:
    """Where cached tensors live: $TRANSFER_BOOK_CACHE, else <repo root>/.cache/features (gitignored), else ~/.cache."""
    env = os.environ.get("TRANSFER_BOOK_CACHE")
    repo = Path(__file__).resolve().parents[1]
    if env:
        path = Path(env).expanduser()
    elif (repo / "_config.yml").exists():  # a checkout of the book
        path = repo / ".cache" / "features"
    else:  # utils installed as a package (e.g. on Colab): never write into site-packages
        path = Path.home() / ".cache" / "transfer_book" / "features"
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_cut(model: nn.Module, k: int) -> int:
    """Validate a cut: k = 0 (pooled features) up to the number of backbone blocks (the raw input)."""
    n = len(backbone_blocks(model))
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= n:
        raise ValueError(f"k (blocks above the cut) must be an integer from 0 (pooled features) to {n} "
                         f"(this model has {n} blocks); got {k!r}.")
    return k


def cut_module(model: nn.Module, k: int) -> nn.Module:
    """The module whose *input* is the cached tensor: the classifier for k = 0, else the first of the last k blocks."""
    check_cut(model, k)
    if k == 0:
        return model.get_submodule(classifier_name(model))
    blocks = backbone_blocks(model)
    module = blocks[len(blocks) - k][1]
    return module[0] if isinstance(module, nn.ModuleList) else module  # a merged unit (conv+norm) starts with its conv


def _frozen_part(model: nn.Module, k: int) -> list[tuple[str, nn.Module]]:
    blocks = backbone_blocks(model)
    return blocks[:len(blocks) - k]


def fingerprint(model: nn.Module, k: int = 0) -> str:
    """A hash of the weights and buffers below the cut (the only ones the cached tensor depends on)."""
    h = hashlib.sha1(str(getattr(model, "backbone_name", type(model).__name__)).encode())
    for name, module in _frozen_part(model, check_cut(model, k)):
        for pname, t in module.state_dict().items():
            h.update(f"{name}.{pname}{tuple(t.shape)}{t.dtype}".encode())
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def images_of(data) -> torch.Tensor:
    """The (N, 3, H, W) images in [0, 1] of a tensor or an ImageTensorDataset; refuses datasets that augment."""
    if torch.is_tensor(data):
        images = data
    elif hasattr(data, "images"):
        if getattr(data, "transform", None) is not None:
            raise ValueError("This dataset has a transform. A cache is only valid without augmentation (every epoch "
                             "would see different inputs); pass a dataset with transform=None.")
        images = data.images
    else:
        raise TypeError(f"Expected an image tensor (N, 3, H, W) or an ImageTensorDataset, got {type(data).__name__}.")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W) in [0, 1]; got shape {tuple(images.shape)}.")
    if len(images) == 0:
        raise ValueError("No images to extract features from (the dataset is empty).")
    return images


def _content_hash(images: torch.Tensor) -> str:
    return hashlib.sha1(images.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()


def cache_key(model: nn.Module, data, k: int = 0, name: str = "", split: str = "", content: str | None = None) -> str:
    """Hash of model weights below the cut, dataset identity (name, split, size, content), normalisation and cut."""
    images = images_of(data)
    cfg = data_config(model)
    content = content or _content_hash(images)
    ident = {"model": fingerprint(model, k), "data": [name, split, len(images), list(images.shape[1:]), content],
             "normalise": [list(cfg.mean), list(cfg.std)], "cut": k}
    return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]


def _check_eval(model: nn.Module) -> None:
    if model.training:
        raise RuntimeError("The backbone is in training mode. Cached features are only valid in eval mode "
                           "(BatchNorm uses fixed statistics, dropout is off): call model.eval() first.")


@torch.no_grad()
def extract(model: nn.Module, data, ks: Sequence[int] = (0,), batch_size: int = 64, device: torch.device | None = None,
            progress: bool = True) -> dict[int, torch.Tensor]:
    """Run the frozen backbone once and capture the tensor entering each cut in `ks` (on the CPU, float32)."""
    _check_eval(model)
    images = images_of(data)
    ks = sorted({check_cut(model, k) for k in ks})
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    device = device or next(model.parameters()).device
    model.to(device)
    out: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
    grabbed: dict[int, torch.Tensor] = {}
    n_blocks = len(backbone_blocks(model))
    deepest_needed = min(ks)  # the smallest k sits highest in the network: stop once it is captured

    def hook_for(k):
        def hook(module, inputs):
            grabbed[k] = inputs[0].detach().float().flatten(1) if k == 0 else inputs[0].detach().float()
            if k == deepest_needed:
                raise _Stop
        return hook

    handles = [cut_module(model, k).register_forward_pre_hook(hook_for(k)) for k in ks if k < n_blocks]
    try:
        for s in tqdm(range(0, len(images), batch_size), desc="features", disable=not progress, leave=False):
            x = normalize(images[s:s + batch_size].to(device), data_config(model))
            if n_blocks in ks:
                grabbed[n_blocks] = x.float()
            if deepest_needed < n_blocks:
                try:
                    model(x)
                except _Stop:
                    pass
            for k in ks:
                out[k].append(grabbed[k].cpu())
    finally:
        for h in handles:
            h.remove()
    return {k: torch.cat(v) for k, v in out.items()}


def cached_activations(model: nn.Module, data, ks: Sequence[int] = (0,), name: str = "", split: str = "",
                       batch_size: int = 64, device: torch.device | None = None, progress: bool = True,
                       refresh: bool = False) -> dict[int, torch.Tensor]:
    """The tensors entering each cut in `ks`, from disk when cached; missing ones come from one shared forward pass."""
    from safetensors.torch import load_file, save_file

    _check_eval(model)
    ks = sorted({check_cut(model, k) for k in ks})
    content = _content_hash(images_of(data))
    paths = {k: cache_dir() / f"{cache_key(model, data, k, name, split, content)}.safetensors" for k in ks}
    missing = [k for k in ks if refresh or not paths[k].exists()]
    result = {k: load_file(str(paths[k]))["x"] for k in ks if k not in missing}
    STATS["hits"] += len(result)
    if missing:
        STATS["misses"] += len(missing)
        t0 = time.perf_counter()
        fresh = extract(model, data, missing, batch_size, device, progress)
        meta = {"name": name, "split": split, "seconds": f"{time.perf_counter() - t0:.2f}"}
        for k, t in fresh.items():
            tmp = paths[k].with_suffix(f".tmp{os.getpid()}")
            save_file({"x": t.contiguous()}, str(tmp), metadata={**meta, "k": str(k)})
            os.replace(tmp, paths[k])  # atomic: a crashed run never leaves a half-written cache file
        result.update(fresh)
    return {k: result[k] for k in ks}


def cached_features(model: nn.Module, data, name: str = "", split: str = "", **kwargs) -> torch.Tensor:
    """Pooled pre-logit features (what a linear probe trains on), cached on disk."""
    return cached_activations(model, data, (0,), name, split, **kwargs)[0]


class Tail(nn.Module):
    """The last k backbone blocks plus pooling and classifier, run on cached activations (shares the model's weights)."""

    def __init__(self, model: nn.Module, k: int):
        super().__init__()
        check_cut(model, k)
        if k > 0 and not hasattr(model, "forward_head"):
            raise TypeError(f"{type(model).__name__} has no forward_head (pooling + classifier); tails of k >= 1 "
                            "blocks need a timm model. Use k=0 (a linear probe) for other models.")
        blocks = backbone_blocks(model)
        self.blocks = nn.ModuleList(m for _, m in blocks[len(blocks) - k:])
        self.head = model.get_submodule(classifier_name(model))
        self.model_forward_head = model.forward_head if k > 0 else None
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            for m in (block if isinstance(block, nn.ModuleList) else [block]):
                x = m(x)
        return self.model_forward_head(x) if self.k > 0 else self.head(x)


def tail(model: nn.Module, k: int) -> Tail:
    """The trainable part above a cut: train it on `cached_activations(model, data, [k])[k]`."""
    return Tail(model, k)


def clear_cache() -> int:
    """Delete every cached tensor file; returns how many were removed."""
    files = list(cache_dir().glob("*.safetensors"))
    for f in files:
        f.unlink()
    return len(files)
