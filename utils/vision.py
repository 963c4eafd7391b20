"""Turning real images into model inputs (with the pretrained model's own normalisation), and top-k predictions."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .checks import check_choice, check_images, check_int, check_model, check_names, check_size
from .models import DataConfig, data_config

__all__ = ["PHOTOS", "load_photo", "to_tensor", "resize_crop", "normalize", "preprocess", "topk", "classify"]

# Real photos that ship inside installed packages: name -> (package, loader description).
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "china", "flower", "grace_hopper")


def load_photo(name: str) -> np.ndarray:
    """A bundled photo as an (H, W, 3) uint8 array: skimage's, sklearn's or matplotlib's sample images."""
    check_choice(name, "photo", PHOTOS)
    if name in ("chelsea", "coffee", "astronaut", "rocket"):
        import skimage.data

        return getattr(skimage.data, name)()
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    if name == "grace_hopper":
        import matplotlib.cbook
        import matplotlib.image

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            return np.asarray(matplotlib.image.imread(f, format="jpg"))
    raise AssertionError(f"photo {name!r} is listed in PHOTOS but has no loader")  # unreachable after check_choice


def _array_to_tensor(image: np.ndarray, name: str) -> torch.Tensor:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array -> (3, H, W) tensor (uint8 kept; grayscale repeated to RGB)."""
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        hint = (" Channels first? Use image.transpose(1, 2, 0)." if image.ndim == 3 and image.shape[0] in (1, 3, 4) else
                " A stack of images? Use utils.images_from_arrays(images, labels, classes, model=...).")
        raise ValueError(f"{name}: a NumPy image must be (H, W) grayscale or (H, W, 3) RGB (channels last); got shape "
                         f"{image.shape}.{hint}")
    if image.dtype.kind == "f":
        pass
    elif image.dtype != np.uint8:
        hint = ("image.astype(np.uint8) if the values are 0-255" if image.dtype.kind in "iu" and image.dtype.itemsize > 1
                and image.size and image.min() >= 0 and image.max() <= 255 else
                "scale it to uint8 0-255 or to floats in [0, 1] (16-bit images: image / 65535)")
        raise TypeError(f"{name} has dtype {image.dtype}; images must be uint8 (0-255) or float (0-1): {hint}.")
    x = torch.from_numpy(np.array(image[..., :3], dtype=np.float32 if image.dtype.kind == "f" else np.uint8))
    x = x.permute(2, 0, 1)  # np.array made a copy: bundled sample images are read-only
    return x.expand(3, -1, -1).contiguous() if x.shape[0] == 1 else x


def to_tensor(image, name: str = "image") -> torch.Tensor:
    """A float (N, 3, H, W) tensor in [0, 1] from a PIL image, an (H, W) grayscale or (H, W, 3) RGB array (uint8 0-255,
    or float 0-1; grayscale is repeated to three channels), or a (3, H, W)/(N, 3, H, W) tensor (uint8 or float 0-1).
    NaN/inf pixels and floats outside [0, 1] (0-255 values, normalised images) are refused."""
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        image = _array_to_tensor(image, name)
    if not torch.is_tensor(image):
        raise TypeError(f"{name} must be a PIL image, a NumPy array (H, W[, 3]) or a torch tensor (3, H, W); got "
                        f"{type(image).__name__}. A list of images? Use utils.images_from_arrays.")
    x = image.unsqueeze(0) if image.ndim == 3 else image
    if x.ndim != 4 or x.shape[1] != 3:
        hint = (" Channels-last arrays need .permute(2, 0, 1)." if image.shape[-1] == 3 else
                " A tensor in grayscale needs .expand(3, -1, -1) (or pass it as a NumPy array)." if x.ndim == 4 and x.shape[1] == 1
                else "")
        raise ValueError(f"{name} must be (3, H, W) or (N, 3, H, W) with 3 colour channels first; got {tuple(image.shape)}.{hint}")
    return check_images(x.float() if x.is_floating_point() else x, name)


def _interpolation(name: str):
    from torchvision.transforms.v2 import InterpolationMode

    return InterpolationMode(name)


def resize_crop(x: torch.Tensor, size: int, interpolation: str = "bilinear", crop_pct: float | None = None) -> torch.Tensor:
    """timm's evaluation geometry on [0, 1] images (..., 3, H, W): resize the shorter side to floor(size / crop_pct),
    then centre-crop size × size (crop_pct None = 1.0: the whole image, long side trimmed to a square); clipped to [0, 1]."""
    from torchvision.transforms.v2 import functional as TF

    size = check_int(size, "size", 1)
    scale = math.floor(size / (crop_pct or 1.0))
    if min(x.shape[-2:]) != scale:
        x = TF.resize(x, [scale], interpolation=_interpolation(interpolation), antialias=True)
    if tuple(x.shape[-2:]) != (size, size):
        x = TF.center_crop(x, [size, size])
    return x.clamp(0, 1)


def normalize(x: torch.Tensor, cfg: DataConfig | nn.Module) -> torch.Tensor:
    """Apply the pretrained model's mean/std (the statistics its first layer was trained on) to [0, 1] images
    (3, H, W) or (N, 3, H, W). Refuses other channel counts (no silent broadcasting) and already-normalised input."""
    cfg = data_config(cfg)
    if not torch.is_tensor(x):
        raise TypeError(f"images must be a torch tensor (N, 3, H, W) in [0, 1], got {type(x).__name__}; "
                        "convert with utils.to_tensor(image).")
    single = x.ndim == 3
    x = check_images(x[None] if single else x, "images", channels=len(cfg.mean))
    mean = torch.tensor(cfg.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    out = (x - mean) / std
    return out[0] if single else out


def preprocess(image, cfg: DataConfig | nn.Module, size: int | None = None) -> torch.Tensor:
    """An image (or batch) as the model takes it, the way timm's `resolve_data_config` + `create_transform` make it:
    resize the shorter side to size / crop_pct with the model's interpolation, centre-crop size × size, normalise.

    `size` defaults to the model's own resolution; for a model fine-tuned on S×S images that is S with crop_pct 1.0
    (see `utils.track_fine_tuning`), exactly how `utils.images_from_arrays` prepared its training images.
    """
    cfg = data_config(cfg)
    size = check_size(size, "size", allow_none=True) or cfg.input_size
    x = to_tensor(image)
    return normalize(resize_crop(x, size, cfg.interpolation, cfg.crop_pct), cfg)


def topk(probs: torch.Tensor, labels: Sequence[str], k: int = 5) -> list[tuple[str, float]]:
    """The k most probable labels with their probabilities, for one example."""
    if not torch.is_tensor(probs) or probs.ndim != 1:
        raise ValueError(f"topk takes one example's probabilities (1-D); got "
                         f"{'shape ' + str(tuple(probs.shape)) if torch.is_tensor(probs) else type(probs).__name__}.")
    if not torch.isfinite(probs).all():
        raise ValueError("probs contains NaN or inf: the model's input or weights hold NaN (check the image and the "
                         "training loss).")
    labels = check_names(labels, "labels", len(probs))
    k = check_int(k, "k", 1)
    p, i = probs.topk(min(k, len(labels)))
    return [(labels[j], float(v)) for v, j in zip(p.tolist(), i.tolist())]


def _default_labels(model: nn.Module, n: int) -> list[str]:
    classes = getattr(model, "classes", None)
    if classes:
        return list(classes)
    if n == 1000:
        from .assets import imagenet_categories

        return list(imagenet_categories())
    raise ValueError(f"The model has {n} outputs and no class names: pass labels=[...] (one per output), or save it "
                     "with utils.save_model(model, path, classes=[...]) and reload with utils.load_model(path).")


@torch.no_grad()
def classify(model: nn.Module, image, labels: Sequence[str] | None = None, k: int = 5) -> list[tuple[str, float]]:
    """Top-k (label, probability) for one image, preprocessed the way the model was trained (its `data_config`,
    including the resolution it was fine-tuned at), run on the model's device with the same mixed precision as
    `utils.predict`. Labels default to `model.classes` (set by `save_model`/`load_model`), or ImageNet's names for
    a 1000-class head."""
    import contextlib

    from .device import amp_dtype, model_device

    check_model(model)
    k = check_int(k, "k", 1)
    x = preprocess(image, model)
    if x.shape[0] != 1:
        raise ValueError(f"classify() takes one image; got a batch of {x.shape[0]}. Loop, or use utils.predict on a loader.")
    device = model_device(model)
    dtype = amp_dtype(device)  # the same mixed precision as utils.predict, so both give the same answer
    was_training = model.training
    model.eval()
    try:
        with torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
            out = model(x.to(device))
    finally:
        model.train(was_training)
    out = getattr(out, "logits", out)[0].float()
    labels = _default_labels(model, len(out)) if labels is None else labels
    return topk(out.softmax(0).cpu(), labels, k)
