"""utils.train: the training loop learns, records history, evaluates exactly, and handles Hugging Face models."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import utils

CPU = torch.device("cpu")


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))


def test_fit_drives_loss_down_and_accuracy_up(blobs):
    train, val = blobs()
    model = _mlp()
    start = utils.evaluate(model, val, CPU)
    h = utils.fit(model, train, val, epochs=15, lr=0.05, device=CPU, progress=False)
    assert h["train_loss"][-1] < 0.5 * h["train_loss"][0]
    assert h.last["val_loss"] < 0.5 * start["loss"]
    assert h.last["val_acc"] >= 0.9 > start["acc"] + 0.2


def test_history_fields_and_continuation(blobs):
    train, val = blobs()
    model = _mlp()
    h = utils.fit(model, train, val, epochs=2, device=CPU, progress=False, label="probe")
    assert h.label == "probe" and len(h) == 2 and h["epoch"] == [1, 2]
    assert set(h.last) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"}
    assert all(0 <= a <= 1 for a in h["train_acc"] + h["val_acc"]) and all(s > 0 for s in h["seconds"])
    h2 = utils.fit(model, train, val, epochs=1, device=CPU, progress=False, history=h)
    assert h2 is h and h["epoch"] == [1, 2, 3]
    assert h.best("val_acc") == max(h["val_acc"]) and h.best("val_loss") == min(h["val_loss"])
    frame = h.to_frame()
    assert list(frame.index) == [1, 2, 3] and "val_acc" in frame.columns
    assert utils.History().last == {}


def test_history_without_validation_has_no_val_columns(blobs):
    train, _ = blobs()
    h = utils.fit(_mlp(), train, epochs=1, device=CPU, progress=False)
    assert "val_loss" not in h.last and h["val_acc"] == [None]


class _Fixed(nn.Module):
    """Logits are the input itself: a model whose loss and accuracy we can compute by hand."""

    def forward(self, x):
        return x


def test_evaluate_matches_hand_computed_loss_and_accuracy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 0.5], [1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 0, 0])  # correct, correct, wrong, wrong, correct
    loader = DataLoader(TensorDataset(logits, labels), batch_size=2)  # uneven last batch: weighting must be per example
    out = utils.evaluate(_Fixed(), loader, CPU)
    expected = -torch.log_softmax(logits, 1)[torch.arange(5), labels].mean().item()
    assert out["acc"] == pytest.approx(3 / 5)
    assert out["loss"] == pytest.approx(expected, rel=1e-6)


def test_evaluate_restores_training_mode():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
    utils.evaluate(model, [(torch.zeros(1, 2), torch.tensor([0]))], CPU)
    assert model.training


def test_evaluate_on_an_empty_loader_is_a_clear_error():
    with pytest.raises(ValueError, match="no batches; is the dataset empty"):
        utils.evaluate(_Fixed(), DataLoader(TensorDataset(torch.zeros(0, 2), torch.zeros(0).long())), CPU)


def test_predict_returns_probabilities_and_labels():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    probs, labels = utils.predict(_Fixed(), DataLoader(TensorDataset(logits, torch.tensor([0, 1, 1])), batch_size=2), CPU)
    assert torch.allclose(probs, logits.softmax(1)) and labels.tolist() == [0, 1, 1]


def test_fit_with_zero_epochs_is_rejected(blobs):
    train, _ = blobs()
    with pytest.raises(ValueError, match="epochs must be at least 1, got 0"):
        utils.fit(_mlp(), train, epochs=0, device=CPU, progress=False)


def test_make_optimizer_only_takes_trainable_parameters():
    model = _mlp()
    model[0].requires_grad_(False)
    opt = utils.make_optimizer(model, lr=0.01)
    params = [p for g in opt.param_groups for p in g["params"]]
    assert len(params) == 2 and all(p.requires_grad for p in params) and opt.param_groups[0]["lr"] == 0.01


def test_make_optimizer_with_everything_frozen_says_what_to_unfreeze():
    model = _mlp().requires_grad_(False)
    with pytest.raises(ValueError, match=r"every parameter is frozen.*unfreeze_last\(model, 0\)"):
        utils.make_optimizer(model)


def test_scheduler_steps_once_per_batch(blobs):
    train, _ = blobs(n=60, batch_size=10)  # 30 training examples -> 3 batches per epoch
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 ** step)
    utils.fit(model, train, epochs=2, optimizer=opt, scheduler=sched, device=CPU, progress=False)
    assert sched.last_epoch == 6 and opt.param_groups[0]["lr"] == pytest.approx(0.5 ** 6)


def test_to_device_moves_nested_structures():
    batch = {"input_ids": torch.ones(2, 3), "extra": [torch.zeros(1), (torch.zeros(2), "keep")], "name": "x"}
    moved = utils.to_device(batch, torch.device("meta"))
    assert moved["input_ids"].device.type == "meta" and moved["extra"][0].device.type == "meta"
    assert moved["extra"][1][0].device.type == "meta" and isinstance(moved["extra"][1], tuple)
    assert moved["extra"][1][1] == "keep" and moved["name"] == "x"
    assert batch["input_ids"].device.type == "cpu"  # the original is untouched


class _TinyHF(nn.Module):
    """Mimics a Hugging Face classifier: keyword tensors in, an object with `.logits` out."""

    def __init__(self, vocab: int = 10, classes: int = 2):
        super().__init__()
        self.embed, self.head = nn.Embedding(vocab, 8), nn.Linear(8, classes)

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1)
        return SimpleNamespace(logits=self.head(pooled))


def test_fit_and_evaluate_a_hugging_face_style_model():
    torch.manual_seed(0)
    ids = torch.randint(0, 10, (40, 6))
    labels = (ids < 5).sum(1).gt(3).long()  # learnable from the tokens
    rows = [({"input_ids": i, "attention_mask": torch.ones(6, dtype=torch.long)}, y) for i, y in zip(ids, labels)]
    loader = DataLoader(rows, batch_size=8, shuffle=True)
    model = _TinyHF()
    h = utils.fit(model, loader, loader, epochs=12, lr=0.05, device=CPU, progress=False)
    assert h["train_loss"][-1] < h["train_loss"][0] and h.last["val_acc"] >= 0.8
    probs, ys = utils.predict(model, loader, CPU)
    assert probs.shape == (40, 2) and torch.allclose(probs.sum(1), torch.ones(40)) and sorted(ys.tolist()) == sorted(labels.tolist())
    assert not math.isnan(utils.evaluate(model, loader, CPU)["loss"])
