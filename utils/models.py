"""Backbones by name (bundled, torchvision or timm), their input conventions, and swapping the head."""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, replace
from functools import partial

import torch
from torch import nn

from .assets import load_efficientnet_lite
from .checks import check_int, check_model, check_number
from .device import is_online
from .groups import classifier_name

__all__ = ["DataConfig", "OfflineError", "BUNDLED", "INTERPOLATIONS", "list_backbones", "create_backbone", "data_config",
           "replace_head", "track_fine_tuning"]

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

    def __post_init__(self):
        for field in ("mean", "std"):
            v = getattr(self, field)
            if isinstance(v, str) or not hasattr(v, "__len__") or len(v) != 3:
                raise ValueError(f"DataConfig.{field} must hold 3 numbers (R, G, B), got {v!r}.")
            v = tuple(check_number(c, f"DataConfig.{field}[{i}]", 0 if field == "std" else None, lo_open=field == "std")
                      for i, c in enumerate(v))
            object.__setattr__(self, field, v)
        object.__setattr__(self, "input_size", check_int(self.input_size, "DataConfig.input_size", 1))
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"DataConfig.interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}.")
        if self.crop_pct is not None:
            object.__setattr__(self, "crop_pct", check_number(self.crop_pct, "DataConfig.crop_pct", 0, 1, lo_open=True,
                                                              hint="(the share of the resized image the centre crop keeps)"))


INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "nearest-exact")


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
    crop_pct = round(t.crop_size[0] / t.resize_size[0], 4) if getattr(t, "resize_size", None) else None
    return model, DataConfig(tuple(t.mean), tuple(t.std), int(t.crop_size[0]), t.interpolation.value, crop_pct)


def _timm_data_config(model: nn.Module) -> DataConfig:
    """timm's own evaluation convention for a model (`resolve_data_config`): mean/std, size, interpolation, crop_pct."""
    import timm

    c = timm.data.resolve_data_config({}, model=model)
    return DataConfig(tuple(c["mean"]), tuple(c["std"]), int(c["input_size"][-1]), c["interpolation"], c.get("crop_pct"))


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
    return model, _timm_data_config(model)


def create_backbone(name: str = "efficientnet_lite0", pretrained: bool = True, num_classes: int | None = None) -> nn.Module:
    """A classification model by name, with its `DataConfig` attached as `model.data_config`; new head if `num_classes`.

    The model also records the resolution it is later trained at (`model.fine_tuned_at`, see `track_fine_tuning`), so
    `utils.classify` and `utils.preprocess` feed it images the way it was fine-tuned.
    """
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be True (ImageNet weights) or False (random weights), got {pretrained!r}.")
    if num_classes is not None:
        check_int(num_classes, "num_classes", 1, hint="(the number of classes of your task; None keeps the ImageNet head)")
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
    track_fine_tuning(model)
    if num_classes is not None:
        replace_head(model, num_classes)
    return model


def data_config(model: nn.Module | DataConfig) -> DataConfig:
    """The input convention (resolution, mean/std, interpolation, crop) a model expects, so preprocessing never guesses.

    Read from `model.data_config` (set by `create_backbone`, `SmallCNN`, `load_model` and checkpoints; updated to the
    fine-tuning resolution by `track_fine_tuning`), else from a timm model's own pretrained config (then attached as
    `model.data_config`, so it travels with copies and checkpoints). A model with neither gets an error instead of a
    silent ImageNet default. A `DataConfig` is returned as it is.
    """
    if isinstance(model, DataConfig):
        return model
    check_model(model)
    cfg = getattr(model, "data_config", None)
    if cfg is not None and not isinstance(cfg, DataConfig):
        raise TypeError(f"model.data_config is a {type(cfg).__name__}, not a utils.DataConfig; set it with "
                        "utils.DataConfig(mean=..., std=..., input_size=...).")
    if cfg is None and getattr(model, "pretrained_cfg", None):
        cfg = _timm_data_config(model)
        model.data_config = cfg
    if cfg is None:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)  # DDP / torch.compile wrappers
        if isinstance(inner, nn.Module):
            return data_config(inner)
        raise ValueError(f"{type(model).__name__} carries no input convention (no model.data_config). Set the one its "
                         "weights were trained with, e.g. model.data_config = utils.DataConfig(mean=(0.485, 0.456, 0.406), "
                         "std=(0.229, 0.224, 0.225), input_size=224) for ImageNet torchvision weights, or create the "
                         "model with utils.create_backbone(...), which attaches it.")
    track_fine_tuning(model)
    return cfg


def replace_head(model: nn.Module, num_classes: int, dropout: float = 0.0) -> nn.Module:
    """Swap the final layer for a freshly initialised one with `num_classes` outputs (in place; returns the model)."""
    check_model(model)
    num_classes = check_int(num_classes, "num_classes", 1, hint="(the number of classes of your task)")
    dropout = check_number(dropout, "dropout", 0, 1, hi_open=True, hint="(the share of features dropped; 0 = none)")
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
    if getattr(model, "classes", None) is not None:  # names of the old head's outputs no longer apply
        model.classes = None
    if getattr(model, "data_config", None) is not None or getattr(model, "pretrained_cfg", None):
        track_fine_tuning(model)
    return model


# --- The resolution a model was fine-tuned at ----------------------------------------------------------------------
def _record_input_size(module: nn.Module, args) -> None:
    """Forward pre-hook: in a training step (train mode, autograd on), remember the side of the square input images."""
    if not module.training or not torch.is_grad_enabled() or not args:
        return
    x = args[0]
    if not torch.is_tensor(x) or x.ndim != 4 or x.shape[-1] != x.shape[-2] or torch.compiler.is_compiling():
        return
    size = int(x.shape[-1])
    if getattr(module, "fine_tuned_at", None) == size:
        return
    module.fine_tuned_at = size
    cfg = getattr(module, "data_config", None)
    if isinstance(cfg, DataConfig):
        # The book's datasets (and utils.images_from_arrays / image_folder) show the model the whole image resized to
        # `size`: a fine-tuned model is fed new images the same way (crop_pct 1.0), so classify agrees with predict.
        module.data_config = replace(cfg, input_size=size, crop_pct=1.0)


def track_fine_tuning(model: nn.Module) -> nn.Module:
    """Make `model` record the resolution it is trained at: the first training step on S×S images sets
    `model.fine_tuned_at = S` and `model.data_config` to input_size S with crop_pct 1.0 (whole image, as the book's
    datasets give it). `create_backbone`, `replace_head`, `data_config` and `load_model` call this; it is idempotent.
    Steps under `torch.compile` and non-square inputs are not recorded (set `model.data_config` yourself then).
    """
    check_model(model)
    if not getattr(model, "_tracks_input_size", False):
        model.register_forward_pre_hook(_record_input_size)
        model._tracks_input_size = True
    return model
