"""An on-disk cache of frozen-backbone activations, so the book pays each backbone forward pass once.

A frozen backbone in eval mode, fed the same images without augmentation, produces the same numbers every epoch.
So we run it once, store what enters the trainable part ("the cut"), and train only that part:

* ``k = 0``: the pooled pre-logit features (what a linear probe trains on);
* ``k >= 1``: the activations *entering* the last ``k`` backbone groups (`utils.backbone_groups`, the same unit
  `utils.unfreeze_last(model, k)` opens), so "fine-tune the top k groups" trains ``tail(model, k)`` on them.

Activations come from timm's own API: ``forward_intermediates(x, extra_blocks=True, stop_early=True)`` (the output of
the stem and of every stage, stopping once the deepest wanted one is computed) and ``forward_head(...,
pre_logits=True)`` for pooled features. Any timm model works, and so does the book's `SmallCNN`, which implements the
same three methods. Files live in `utils.cache.cache_dir("features")`, one safetensors file per (weights below the
cut, images, normalisation, cut), named by a hash of all of these.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import torch
from torch import nn
from .progress import progress_bar

from . import cache
from .checks import check_int
from .groups import LayerGroup, backbone_groups, get_classifier
from .models import data_config
from .vision import normalize

__all__ = ["check_cut", "cache_key", "images_of", "extract", "cached_activations", "cached_features", "Tail", "tail",
           "STATS"]

STATS = {"hits": 0, "misses": 0}  # counts since import: how often the cache saved a forward pass


def _check_timm_like(model: nn.Module) -> None:
    missing = [m for m in ("forward_intermediates", "forward_features", "forward_head") if not hasattr(model, m)]
    if missing:
        raise TypeError(f"{type(model).__name__} lacks {', '.join(missing)}: cached activations need a timm-style model. "
                        "Create it with utils.create_backbone('efficientnet_lite0') or 'timm/<name>', or use "
                        "utils.SmallCNN; for torchvision models cache pooled features of your own forward pass.")


def check_cut(model: nn.Module, k: int) -> int:
    """Validate a cut: k = 0 (pooled features) up to the number of backbone groups (the raw input)."""
    n = len(backbone_groups(model))
    return check_int(k, "k (backbone groups above the cut)", 0, n,
                     hint=f"0 = pooled features, {n} = the raw input (this model has {n} backbone groups)")


def fingerprint(model: nn.Module, k: int = 0) -> str:
    """A hash of the weights and buffers below the cut (the only ones the cached tensor depends on)."""
    groups = backbone_groups(model)
    below = groups[:len(groups) - check_cut(model, k)]
    named = ((f"{g.name}.{i}.{name}", t) for g in below for i, m in enumerate(g.modules) for name, t in m.state_dict().items())
    return cache.hash_tensors(named, str(getattr(model, "backbone_name", type(model).__name__)))


def images_of(data) -> torch.Tensor:
    """The (N, 3, H, W) images in [0, 1] of a tensor or an ImageTensorDataset; refuses datasets that augment."""
    from .checks import check_images

    if torch.is_tensor(data):
        images = data
    elif hasattr(data, "images"):
        if getattr(data, "transform", None) is not None:
            raise ValueError("This dataset has a transform. A cache is only valid without augmentation (every epoch "
                             "would see different inputs); pass a dataset with transform=None.")
        images = data.images
    else:
        raise TypeError(f"Expected an image tensor (N, 3, H, W) or an ImageTensorDataset, got {type(data).__name__}.")
    images = check_images(images, "images")
    if len(images) == 0:
        raise ValueError("No images to extract features from (the dataset is empty).")
    return images


def _content_hash(images: torch.Tensor) -> str:
    return hashlib.sha1(images.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()


def cache_key(model: nn.Module, data, k: int = 0, name: str = "", split: str = "", content: str | None = None) -> str:
    """Hash of model weights below the cut, dataset identity (name, split, size, content), normalisation and cut."""
    images = images_of(data)
    cfg = data_config(model)
    return cache.hash_json({"model": fingerprint(model, k), "normalise": [list(cfg.mean), list(cfg.std)], "cut": k,
                            "data": [name, split, len(images), list(images.shape[1:]), content or _content_hash(images)]})


def _check_eval(model: nn.Module) -> None:
    if model.training:
        raise RuntimeError("The backbone is in training mode. Cached features are only valid in eval mode "
                           "(BatchNorm uses fixed statistics, dropout is off): call model.eval() first.")


@torch.no_grad()
def _activations(model: nn.Module, x: torch.Tensor, ks: list[int], n: int) -> dict[int, torch.Tensor]:
    """The tensors entering each cut for one normalised batch, from timm's forward_intermediates / forward_head."""
    out: dict[int, torch.Tensor] = {}
    if n in ks:
        out[n] = x
    mids = [k for k in ks if 0 < k < n]
    if mids:  # cut k enters group n-k, i.e. it is the output of group n-k-1 (intermediate number n-k-1)
        idx = sorted({n - k - 1 for k in mids})
        inter = model.forward_intermediates(x, indices=idx, intermediates_only=True, stop_early=True, extra_blocks=True)
        if len(inter) != len(idx):
            raise RuntimeError(f"{type(model).__name__}.forward_intermediates returned {len(inter)} tensors for indices "
                               f"{idx}; its stages do not line up with utils.layer_groups, so cuts inside it are unsupported.")
        out.update({k: inter[idx.index(n - k - 1)] for k in mids})
    if 0 in ks:
        out[0] = model.forward_head(model.forward_features(x), pre_logits=True).flatten(1)
    return {k: v.float() for k, v in out.items()}


@torch.no_grad()
def extract(model: nn.Module, data, ks: Sequence[int] = (0,), batch_size: int = 64, device: torch.device | None = None,
            progress: bool = True) -> dict[int, torch.Tensor]:
    """Run the frozen backbone once and return the tensor entering each cut in `ks` (on the CPU, float32)."""
    _check_timm_like(model)
    _check_eval(model)
    images = images_of(data)
    ks = sorted({check_cut(model, k) for k in ks})
    batch_size = check_int(batch_size, "batch_size", 1)
    n = len(backbone_groups(model))
    device = device or next(model.parameters()).device
    model.to(device)
    chunks: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
    for s in progress_bar(range(0, len(images), batch_size), desc="features", disable=not progress, leave=False):
        x = normalize(images[s:s + batch_size].to(device), data_config(model))
        for k, v in _activations(model, x, ks, n).items():
            chunks[k].append(v.cpu())
    return {k: torch.cat(v) for k, v in chunks.items()}


def cached_activations(model: nn.Module, data, ks: Sequence[int] = (0,), name: str = "", split: str = "",
                       batch_size: int = 64, device: torch.device | None = None, progress: bool = True,
                       refresh: bool = False) -> dict[int, torch.Tensor]:
    """The tensors entering each cut in `ks`, from disk when cached; missing ones come from one shared forward pass."""
    _check_eval(model)
    ks = sorted({check_cut(model, k) for k in ks})
    content = _content_hash(images_of(data))
    folder = cache.cache_dir("features")
    paths = {k: folder / f"{cache_key(model, data, k, name, split, content)}.safetensors" for k in ks}
    missing = [k for k in ks if refresh or not paths[k].exists()]
    result = {k: cache.load_tensors(paths[k])["x"] for k in ks if k not in missing}
    STATS["hits"] += len(result)
    if missing:
        STATS["misses"] += len(missing)
        t0 = time.perf_counter()
        fresh = extract(model, data, missing, batch_size, device, progress)
        meta = {"name": name, "split": split, "seconds": f"{time.perf_counter() - t0:.2f}"}
        for k, t in fresh.items():
            cache.save_tensors({"x": t}, paths[k], metadata={**meta, "k": str(k)})
        result.update(fresh)
    return {k: result[k] for k in ks}


def cached_features(model: nn.Module, data, name: str = "", split: str = "", **kwargs) -> torch.Tensor:
    """Pooled pre-logit features (what a linear probe trains on), cached on disk."""
    return cached_activations(model, data, (0,), name, split, **kwargs)[0]


class Tail(nn.Module):
    """The last k backbone groups plus pooling and classifier, run on cached activations (shares the model's weights).

    It has its own layer groups (those k groups, then the head), so `unfreeze_last(tail, j)`, `param_groups(tail, ...)`
    and `gradual_unfreeze(tail, ...)` work on it exactly as on the whole model.
    """

    def __init__(self, model: nn.Module, k: int):
        super().__init__()
        check_cut(model, k)
        _check_timm_like(model)
        groups = backbone_groups(model)
        self._groups = groups[len(groups) - k:]
        self.blocks = nn.ModuleList(nn.Sequential(*g.modules) for g in self._groups)
        self.head = get_classifier(model)
        self._forward_head = model.forward_head
        self.k = k

    def layer_groups(self) -> list[LayerGroup]:
        return [LayerGroup(g.name, (b,)) for g, b in zip(self._groups, self.blocks)] + [LayerGroup("head", (self.head,))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self._forward_head(x) if self.k > 0 else self.head(x)

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features the classifier reads (the penultimate layer), from the cached input of this cut."""
        for block in self.blocks:
            x = block(x)
        return self._forward_head(x, pre_logits=True).flatten(1) if self.k > 0 else x


def tail(model: nn.Module, k: int) -> Tail:
    """The trainable part above a cut: train it on `cached_activations(model, data, [k])[k]`."""
    return Tail(model, k)
