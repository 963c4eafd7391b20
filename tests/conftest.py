"""Shared fixtures for the utils tests: the bundled models load once per session, and no test leaks global state."""
from __future__ import annotations

import copy
import os

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere: tests never open windows

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import utils

CPU = torch.device("cpu")


@pytest.fixture(scope="session")
def effnet() -> torch.nn.Module:
    """The bundled EfficientNet-Lite0 with its 1000-class ImageNet head. Read-only: use `effnet_copy` to change it."""
    return utils.create_backbone("efficientnet_lite0")


@pytest.fixture
def effnet_copy(effnet) -> torch.nn.Module:
    """A private copy of the pretrained model that a test may freeze, retrain or re-head."""
    return copy.deepcopy(effnet)


@pytest.fixture(scope="session")
def minilm():
    """(tokenizer, bare encoder) of the bundled MiniLM-L6."""
    return utils.load_minilm()


@pytest.fixture(autouse=True)
def _restore_environ():
    """Undo any environment variable a helper sets (offline flags, seeds), so tests stay independent."""
    saved = dict(os.environ)
    yield
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def clean_online_cache():
    """`is_online` is lru-cached: start and finish with an empty cache so a faked answer never sticks."""
    utils.is_online.cache_clear()
    yield utils.is_online
    utils.is_online.cache_clear()


@pytest.fixture
def blobs():
    """Factory for a tiny separable 2-D, 3-class problem as (train loader, val loader)."""

    def make(n: int = 60, seed: int = 0, batch_size: int = 16, shuffle: bool = True):
        rng = np.random.default_rng(seed)
        centres = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]], dtype=np.float32)
        y = np.arange(n) % 3
        x = centres[y] + rng.normal(scale=0.7, size=(n, 2)).astype(np.float32)
        ds = TensorDataset(torch.from_numpy(x), torch.from_numpy(y).long())
        train, val = torch.utils.data.Subset(ds, range(0, n, 2)), torch.utils.data.Subset(ds, range(1, n, 2))
        return DataLoader(train, batch_size=batch_size, shuffle=shuffle), DataLoader(val, batch_size=batch_size)

    return make
