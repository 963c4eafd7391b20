"""DataLoaders that are fast where it pays (workers, pinned memory on CUDA) and reproducible everywhere (seeded order)."""
from __future__ import annotations

import multiprocessing
import os
import random
import sys
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, Subset, TensorDataset

from .device import get_device

__all__ = ["make_loader", "default_num_workers", "seed_worker", "main_is_importable", "is_in_memory",
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
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}. Try 32, or smaller if memory runs out.")
    return batch_size


def _check_workers(num_workers) -> int:
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an integer >= 0 (0 loads in the main process), got {num_workers!r}.")
    return num_workers


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool = False, seed: int = 0,
                device: torch.device | str | None = None, num_workers: int | None = None, drop_last: bool = False,
                collate_fn: Callable | None = None, sampler: Sampler | None = None) -> DataLoader:
    """A DataLoader with workers/pinned memory chosen for the device and a seeded shuffle (same seed, same batches)."""
    batch_size = _check_batch_size(batch_size)
    device = torch.device(device) if device is not None else get_device()
    if isinstance(dataset, IterableDataset) and (shuffle or sampler is not None):
        raise ValueError("An IterableDataset decides its own order: pass shuffle=False and no sampler.")
    if sampler is not None and shuffle:
        raise ValueError("Pass either shuffle=True or a sampler (which then decides the order), not both.")
    if not isinstance(dataset, IterableDataset) and len(dataset) == 0:
        raise ValueError("The dataset is empty; nothing to load.")
    if drop_last and not isinstance(dataset, IterableDataset) and sampler is None and len(dataset) < batch_size:
        raise ValueError(f"drop_last=True with {len(dataset)} examples < batch_size {batch_size} gives no batches at all.")
    workers = default_num_workers(dataset, device) if num_workers is None else _check_workers(num_workers)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler, drop_last=drop_last,
                      collate_fn=collate_fn, num_workers=workers, pin_memory=device.type == "cuda",
                      persistent_workers=workers > 0, prefetch_factor=2 if workers > 0 else None,
                      worker_init_fn=seed_worker if workers > 0 else None,
                      generator=torch.Generator().manual_seed(seed))
