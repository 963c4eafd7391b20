"""Backbones by name (bundled, torchvision or timm), their input conventions, and swapping the head."""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from .assets import load_efficientnet_lite
from .device import is_online
from .groups import classifier_name

__all__ = ["DataConfig", "OfflineError", "BUNDLED", "list_backbones", "create_backbone", "data_config", "replace_head"]

_HOSTS = {"torchvision": "download.pytorch.org", "timm": "huggingface.co"}


class OfflineError(ConnectionError):
    """Pretrained weights were asked for that need the network, and there is none."""


@dataclass(frozen=True)
class DataConfig:
    """What the pretrained weights expect as input: normalisation, resolution, resampling and evaluation crop.

    `crop_pct` is the share of the resized image that the evaluation centre crop keeps (timm's convention: resize the
    shorter side to `input_size / crop_pct`, then crop `input_size`); None where the source did not record one.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    interpolation: str = "bilinear"
    crop_pct: float | None = None


# The registry of models whose weights ship with the book (name -> loader, data config). The EfficientNet-Lite
# family is one architecture at three sizes; each config is timm's pretrained cfg for tf_efficientnet_lite{0,1,2}
# (written out so `import utils` needs no timm; tests/test_models.py checks it against timm).
_HALF = (0.5, 0.5, 0.5)
BUNDLED: dict[str, tuple] = {
    "efficientnet_lite0": (partial(load_efficientnet_lite, 0), DataConfig(_HALF, _HALF, 224, "bicubic", 0.875)),
    "efficientnet_lite1": (partial(load_efficientnet_lite, 1), DataConfig(_HALF, _HALF, 240, "bicubic", 0.882)),
    "efficientnet_lite2": (partial(load_efficientnet_lite, 2), DataConfig(_HALF, _HALF, 260, "bicubic", 0.89)),
}


def _torchvision_names() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def _timm_names() -> list[str]:
    import timm

    return timm.list_models()


def list_backbones(source: str = "all") -> list[str]:
    """Names `create_backbone` accepts: 'bundled', 'torchvision' (prefixed `torchvision/`), 'timm' (`timm/`), or 'all'."""
    sources = {"bundled": lambda: sorted(BUNDLED),
               "torchvision": lambda: [f"torchvision/{n}" for n in _torchvision_names()],
               "timm": lambda: [f"timm/{n}" for n in _timm_names()]}
    if source == "all":
        return [n for fn in sources.values() for n in fn()]
    if source not in sources:
        raise ValueError(f"Unknown source {source!r}; choose 'bundled', 'torchvision', 'timm' or 'all'.")
    return sources[source]()


def _resolve(name: str) -> tuple[str, str]:
    """(source, bare name) for a user-facing name, or a ValueError listing the closest valid names."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"Model name must be a non-empty string, got {name!r}.")
    if name in BUNDLED:
        return "bundled", name
    source, _, bare = name.partition("/") if "/" in name else ("", "", name)
    tv, tm = (_torchvision_names() if source in ("", "torchvision") else []), (_timm_names() if source in ("", "timm") else [])
    if source not in ("", "torchvision", "timm"):
        raise ValueError(f"Unknown model source {source!r} in {name!r}; use 'torchvision/<name>' or 'timm/<name>'.")
    if bare in tv:
        return "torchvision", bare
    if bare in tm:
        return "timm", bare
    close = list(dict.fromkeys(difflib.get_close_matches(bare, list(BUNDLED) + tv + tm, n=8, cutoff=0.6)))[:5]
    raise ValueError(f"Unknown model {name!r}. Bundled (offline): {', '.join(BUNDLED)}. "
                     f"Close matches: {', '.join(close) or 'none'}. See list_backbones() for all {len(tv) + len(tm)} names.")


def _offline_error(name: str, source: str) -> OfflineError:
    return OfflineError(f"Pretrained weights for {name!r} come from {_HOSTS[source]} and there is no network. "
                        f"Bundled models that work offline: {', '.join(BUNDLED)}. "
                        f"(Or pass pretrained=False for random weights, e.g. to time the architecture.)")


def _torchvision_model(name: str, pretrained: bool) -> tuple[nn.Module, DataConfig]:
    import torchvision.models as tvm

    weights = tvm.get_model_weights(name).DEFAULT if pretrained else None
    if weights is not None:
        cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
        if not os.path.exists(cached) and not is_online(_HOSTS["torchvision"]):
            raise _offline_error(name, "torchvision")
    model = tvm.get_model(name, weights=weights)  # torchvision verifies the file's hash on download
    t = (weights or tvm.get_model_weights(name).DEFAULT).transforms()
    return model, DataConfig(tuple(t.mean), tuple(t.std), int(t.crop_size[0]), t.interpolation.value)


def _timm_cached_weights(name: str) -> str | None:
    """A timm model's weights from the local Hugging Face cache, if downloaded before (so offline needs no request)."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(name)
    repo = getattr(cfg, "hf_hub_id", None)
    for fname in filter(None, (getattr(cfg, "hf_hub_filename", None), "model.safetensors", "pytorch_model.bin")):
        path = try_to_load_from_cache(repo, fname) if repo else None
        if isinstance(path, str):
            return path
    return None


def _timm_model(name: str, pretrained: bool) -> tuple[nn.Module, DataConfig]:
    import timm

    if pretrained and not is_online(_HOSTS["timm"]):
        # Setting HF_HUB_OFFLINE now would not help (huggingface_hub reads it at import) and the hub client
        # retries for ~50 s, so load a cached copy directly or fail at once.
        cached = _timm_cached_weights(name)
        if cached is None:
            raise _offline_error(name, "timm")
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": cached})
    else:
        model = timm.create_model(name, pretrained=pretrained)
    cfg = timm.data.resolve_data_config({}, model=model)
    return model, DataConfig(tuple(cfg["mean"]), tuple(cfg["std"]), int(cfg["input_size"][-1]), cfg["interpolation"])


def create_backbone(name: str = "efficientnet_lite0", pretrained: bool = True, num_classes: int | None = None) -> nn.Module:
    """A classification model by name, with its `DataConfig` attached as `model.data_config`; new head if `num_classes`."""
    source, bare = _resolve(name)
    if source == "bundled":
        loader, cfg = BUNDLED[bare]
        model = loader(pretrained=pretrained)
    elif source == "torchvision":
        model, cfg = _torchvision_model(bare, pretrained)
    else:
        model, cfg = _timm_model(bare, pretrained)
    model.data_config = cfg
    model.backbone_name = name
    if num_classes is not None:
        replace_head(model, num_classes)
    return model


def data_config(model: nn.Module) -> DataConfig:
    """The input convention (resolution, mean/std, interpolation) a model expects, so preprocessing can never guess.

    Read from `model.data_config` (set by `create_backbone`, `SmallCNN` and `fine-tuned` checkpoints), else from a timm
    model's own pretrained config; a model with neither gets an error instead of a silent ImageNet default.
    """
    cfg = getattr(model, "data_config", None)
    if isinstance(cfg, DataConfig):
        return cfg
    if getattr(model, "pretrained_cfg", None):
        import timm

        c = timm.data.resolve_data_config({}, model=model)
        return DataConfig(tuple(c["mean"]), tuple(c["std"]), int(c["input_size"][-1]), c["interpolation"])
    raise ValueError(f"{type(model).__name__} carries no input convention. Set one: model.data_config = "
                     "utils.DataConfig(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), input_size=224) "
                     "(ImageNet's), or create the model with utils.create_backbone(...).")


def replace_head(model: nn.Module, num_classes: int, dropout: float = 0.0) -> nn.Module:
    """Swap the final layer for a freshly initialised one with `num_classes` outputs (in place; returns the model)."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
    name = classifier_name(model)
    old = model.get_submodule(name)
    if isinstance(old, nn.Sequential) and isinstance(old[-1], nn.Linear):  # a head we made earlier, with dropout
        old = old[-1]
    if not isinstance(old, nn.Linear):
        raise ValueError(f"The head {name!r} is a {type(old).__name__}, not nn.Linear; replace it by hand.")
    new: nn.Module = nn.Linear(old.in_features, num_classes)
    if dropout > 0:
        new = nn.Sequential(nn.Dropout(dropout), new)
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
    return model
