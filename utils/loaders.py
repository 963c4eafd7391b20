"""DataLoaders that are fast where it pays (workers, pinned memory on CUDA) and reproducible everywhere (seeded order)."""
from __future__ import annotations

import multiprocessing
import os
import random
import sys
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, Subset, TensorDataset

from .checks import check_features, check_int, check_labels, check_same_length, check_seed
from .device import get_device

__all__ = ["make_loader", "LengthGroupedSampler", "feature_loaders", "default_num_workers", "seed_worker", "main_is_importable", "is_in_memory",
           "start_method"]

MAX_WORKERS = 4  # beyond this, image pipelines of this size rarely gain; each worker holds a copy of the dataset


def seed_worker(worker_id: int) -> None:
    """PyTorch's reproducibility recipe: seed NumPy and `random` from the worker's torch seed (base seed + worker id)."""
    seed = torch.initial_seed() % 2**32  # DataLoader sets this to base_seed + worker_id
    np.random.seed(seed)
    random.seed(seed)


def start_method() -> str:
    """How worker processes start here: the method set by the program, else the platform default (listed first)."""
    return multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]


def main_is_importable() -> bool:
    """True in a script or `python -m` run; False in a notebook or REPL, where spawned workers cannot re-import `__main__`."""
    main = sys.modules.get("__main__")
    return bool(getattr(main, "__file__", None) or getattr(main, "__spec__", None))


def is_in_memory(dataset: Dataset) -> bool:
    """True for tensors already in memory with no per-item transform: indexing them beats shipping them from a worker."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    if isinstance(dataset, TensorDataset):
        return True
    return torch.is_tensor(getattr(dataset, "images", None)) and getattr(dataset, "transform", None) is None


def default_num_workers(dataset: Dataset, device: torch.device | str) -> int:
    """0 on CPU (the model already uses every core) and for in-memory tensors; min(4, cores) on CUDA when safe."""
    if torch.device(device).type != "cuda" or is_in_memory(dataset):
        return 0
    # Under spawn/forkserver (macOS, Windows, Python >= 3.14 on Linux) each worker re-imports __main__.
    if start_method() != "fork" and not main_is_importable():
        return 0
    return min(MAX_WORKERS, os.cpu_count() or 1)


def _check_batch_size(batch_size) -> int:
    return check_int(batch_size, "batch_size", 1, hint="Try 32, or smaller if memory runs out.")


def _check_workers(num_workers) -> int:
    return check_int(num_workers, "num_workers", 0, hint="(0 loads in the main process)")


def _check_flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return value


def _tensor_pair(x, y, x_name: str = "dataset[0] (inputs)", y_name: str = "dataset[1] (labels)") -> TensorDataset:
    """(x, y) tensors or arrays -> TensorDataset: x features (N, D) or images (N, C, H, W), y integer labels."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not torch.is_tensor(x):
        raise TypeError(f"{x_name} must be a tensor or array, got {type(x).__name__}.")
    if x.ndim == 2:
        x = check_features(x, x_name)
    elif x.ndim < 2:
        raise ValueError(f"{x_name} must have one row per example (N, D) or (N, C, H, W); got shape {tuple(x.shape)}.")
    elif x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError(f"{x_name} contains NaN or inf values; fix or drop those rows first.")
    if len(x) == 0:
        raise ValueError(f"{x_name} is empty (0 rows); nothing to load.")
    y = check_labels(y, y_name)
    check_same_length(x, y, x_name, y_name)
    return TensorDataset(x, y)


def _warn_if_unnormalised(dataset) -> None:
    images = getattr(dataset, "images", None)
    if (getattr(dataset, "normalize_unset", False) and getattr(dataset, "transform", None) is None
            and torch.is_tensor(images) and images.numel() and float(images.min()) >= 0 and float(images.max()) <= 1):
        warnings.warn("This ImageTensorDataset gives the model raw [0, 1] pixels: nothing normalises them. Pretrained "
                      "weights expect their own mean/std: pass normalize=model (or build it with "
                      "utils.images_from_arrays(..., model=model)); pass normalize=False if raw pixels are intended.",
                      UserWarning, stacklevel=3)


class LengthGroupedSampler(Sampler):
    """A seeded shuffle whose batches hold examples of similar length: little padding for a transformer, fewer time
    steps for an RNN over packed sequences.

    Each epoch, `transformers`' `get_length_grouped_indices` (what the `Trainer` does with `group_by_length=True`)
    shuffles, cuts the order into mega-batches of up to `mega_batches` batches and sorts each by length, longest
    first. Mega-batches are kept small enough that there are at least two, so a batch's members still change from
    epoch to epoch; with fewer than four batches' worth of examples the order is a plain shuffle.
    """

    def __init__(self, lengths, batch_size: int, seed: int = 0, mega_batches: int = 4):
        self.lengths = [int(n) for n in lengths]
        if not self.lengths:
            raise ValueError("lengths is empty: give one length per example (e.g. its number of tokens).")
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.mega_batches = check_int(mega_batches, "mega_batches", 1)
        self.generator = torch.Generator().manual_seed(check_seed(seed))

    @staticmethod
    def wanted(group_by_length: bool, shuffle: bool) -> bool:
        """Check a loader's `group_by_length` flag: it groups a shuffled (training) order only."""
        if not isinstance(group_by_length, bool):
            raise TypeError(f"group_by_length must be True or False, got {group_by_length!r}.")
        if group_by_length and not shuffle:
            raise ValueError("group_by_length=True groups a shuffled training order: pass shuffle=True too. For an "
                             "evaluation loader, sort the dataset by length instead (e.g. dataset.subset(order)).")
        return group_by_length

    @classmethod
    def for_texts(cls, dataset, lengths_of: Callable, batch_size: int, shuffle: bool, group_by_length: bool,
                  seed: int = 0) -> "LengthGroupedSampler | None":
        """The sampler a text loader hands to `make_loader`, or None with `group_by_length=False`; `lengths_of` maps
        the dataset's texts to their lengths (tokens, characters)."""
        if not cls.wanted(group_by_length, shuffle):
            return None
        texts = getattr(dataset, "texts", None)
        texts = list(texts) if texts is not None else [dataset[i][0] for i in range(len(dataset))]
        return cls(lengths_of(texts), batch_size, seed=seed)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        mult = max(1, min(self.mega_batches, len(self.lengths) // (2 * self.batch_size)))  # at least two mega-batches
        if mult == 1:
            return iter(torch.randperm(len(self.lengths), generator=self.generator).tolist())
        from transformers.trainer_pt_utils import get_length_grouped_indices

        return iter(get_length_grouped_indices(self.lengths, self.batch_size, mega_batch_mult=mult,
                                               generator=self.generator))


def make_loader(dataset: Dataset | tuple, batch_size: int, shuffle: bool = False, seed: int = 0,
                device: torch.device | str | None = None, num_workers: int | None = None, drop_last: bool = False,
                collate_fn: Callable | None = None, sampler: Sampler | None = None) -> DataLoader:
    """A DataLoader with workers/pinned memory chosen for the device and a seeded shuffle (same seed, same batches).

    `dataset` may also be an `(inputs, labels)` pair of tensors or arrays, e.g. cached features and their labels.
    """
    if isinstance(dataset, tuple) and len(dataset) == 2 and (torch.is_tensor(dataset[0]) or isinstance(dataset[0], np.ndarray)):
        dataset = _tensor_pair(*dataset)
    if torch.is_tensor(dataset) or isinstance(dataset, np.ndarray):
        raise TypeError("dataset is a bare tensor/array: a loader yields (inputs, labels) batches, so pass the pair "
                        "make_loader((x, y), batch_size), or utils.images_from_arrays(images, labels, classes, model=model).")
    if not isinstance(dataset, (Dataset, IterableDataset)) and not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        raise TypeError(f"dataset must be a torch Dataset or an (inputs, labels) pair, got {type(dataset).__name__}. "
                        "Images as arrays? utils.images_from_arrays(images, labels, classes, model=model).")
    batch_size = _check_batch_size(batch_size)
    shuffle, drop_last = _check_flag(shuffle, "shuffle"), _check_flag(drop_last, "drop_last")
    seed = check_seed(seed)
    device = torch.device(device) if device is not None else get_device()
    if isinstance(dataset, IterableDataset) and (shuffle or sampler is not None):
        raise ValueError("An IterableDataset decides its own order: pass shuffle=False and no sampler.")
    if sampler is not None and shuffle:
        raise ValueError("Pass either shuffle=True or a sampler (which then decides the order), not both.")
    if not isinstance(dataset, IterableDataset) and len(dataset) == 0:
        raise ValueError("The dataset is empty; nothing to load. Check the split, the filters and the subsample size.")
    if drop_last and not isinstance(dataset, IterableDataset) and sampler is None and len(dataset) < batch_size:
        raise ValueError(f"drop_last=True with {len(dataset)} examples < batch_size {batch_size} gives no batches at all.")
    if collate_fn is not None and not callable(collate_fn):
        raise TypeError(f"collate_fn must be callable, got {type(collate_fn).__name__}.")
    _warn_if_unnormalised(dataset)
    workers = default_num_workers(dataset, device) if num_workers is None else _check_workers(num_workers)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler, drop_last=drop_last,
                      collate_fn=collate_fn, num_workers=workers, pin_memory=device.type == "cuda",
                      persistent_workers=workers > 0, prefetch_factor=2 if workers > 0 else None,
                      worker_init_fn=seed_worker if workers > 0 else None,
                      generator=torch.Generator().manual_seed(seed))


def feature_loaders(train_x, train_y, val_x=None, val_y=None, batch_size: int = 64, seed: int = 0,
                    device: torch.device | str | None = None) -> tuple[DataLoader, DataLoader | None]:
    """(train loader, val loader) over cached features (N, D) and labels, ready for `utils.fit` on a head: the train
    loader shuffles (seeded), the validation loader keeps order; val is None when val_x is None."""
    train = _tensor_pair(check_features(train_x, "train_x"), train_y, "train_x", "train_y")
    train_loader = make_loader(train, batch_size, shuffle=True, seed=seed, device=device, num_workers=0)
    if val_x is None and val_y is None:
        return train_loader, None
    if val_x is None or val_y is None:
        raise ValueError("Pass both val_x and val_y (or neither).")
    val_x = check_features(val_x, "val_x")
    if val_x.shape[1] != train.tensors[0].shape[1]:
        raise ValueError(f"train_x and val_x must have the same feature size: {train.tensors[0].shape[1]} vs "
                         f"{val_x.shape[1]}. Were they computed with the same model and layer?")
    val = _tensor_pair(val_x, val_y, "val_x", "val_y")
    return train_loader, make_loader(val, batch_size, device=device, num_workers=0)
