"""utils.showcase: each seed draws its own labelled rows, and digits_model trains once, saves, then loads the same
weights (and retrains on refresh or on another recipe)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from utils import showcase

CPU = torch.device("cpu")
TINY = showcase.Recipe(image_size=32, k=1, per_class=2, val_per_class=2, epochs=1, batch_size=10)


def test_train_rows_draw_per_class_and_per_seed():
    labels = torch.arange(10).repeat_interleave(60)
    a, b = showcase.train_rows(labels, 0), showcase.train_rows(labels, 1)
    assert np.bincount(labels[a].numpy()).tolist() == [showcase.RECIPE.per_class] * 10
    assert torch.equal(a, showcase.train_rows(labels, 0)) and not torch.equal(a, b)


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFER_BOOK_CACHE", str(tmp_path))
    return tmp_path


def test_digits_model_trains_once_then_loads_the_same_weights(private_cache, effnet_copy):
    backbone = effnet_copy.eval()
    splits = showcase.digit_splits(TINY)
    first, info1 = showcase.digits_model(0, backbone, splits, TINY, device=CPU)
    second, info2 = showcase.digits_model(0, backbone, splits, TINY, device=CPU)
    assert not info1["loaded"] and info2["loaded"]
    assert torch.equal(info1["rows"], info2["rows"]) and info1["train_acc"] == pytest.approx(info2["train_acc"])
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(first(x), second(x))
    assert len(list((private_cache / "models").glob("*.safetensors"))) == 1
    other = showcase.Recipe(**{**TINY.__dict__, "lr": 1e-3})
    _, info3 = showcase.digits_model(0, backbone, splits, other, device=CPU)
    assert not info3["loaded"]  # another recipe is another file
    _, info4 = showcase.digits_model(0, backbone, splits, TINY, device=CPU, refresh=True)
    assert not info4["loaded"]
