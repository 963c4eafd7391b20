"""One small training loop for every chapter: progress bar, per-epoch history, mixed precision only where it pays."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from .device import amp_dtype, get_device
from .freeze import frozen_bn_eval

__all__ = ["History", "to_device", "forward", "evaluate", "predict", "fit", "make_optimizer"]


@dataclass
class History:
    """Per-epoch records (epoch, train_loss, train_acc, val_loss, val_acc, seconds), plus a label for plots."""

    label: str = ""
    rows: list[dict] = field(default_factory=list)

    def __getitem__(self, key: str) -> list:
        return [r.get(key) for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def last(self) -> dict:
        return self.rows[-1] if self.rows else {}

    def best(self, metric: str = "val_acc") -> float:
        """The best value a metric reached (max for accuracy, min for loss)."""
        vals = [v for v in self[metric] if v is not None]
        return (min if "loss" in metric else max)(vals)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows).set_index("epoch")


def to_device(batch, device: torch.device, non_blocking: bool = False):
    """Move a tensor, or a dict/list/tuple of tensors (e.g. a tokenizer's output), to the device."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict) or hasattr(batch, "items"):
        return {k: to_device(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device, non_blocking) for v in batch)
    return batch


def forward(model: nn.Module, x) -> torch.Tensor:
    """Logits from a vision model (tensor in) or a Hugging Face model (dict in, `.logits` out)."""
    out = model(**x) if isinstance(x, dict) else model(x)
    return out.logits if hasattr(out, "logits") else out


def _autocast(device: torch.device, amp: bool | str):
    dtype = amp_dtype(device) if amp in ("auto", True) else None
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: torch.device | None = None,
             loss_fn: Callable | None = None, amp: bool | str = "auto") -> dict[str, float]:
    """Mean loss and accuracy over a loader, in eval mode."""
    device = device or get_device()
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    was_training = model.training
    model.eval()
    total, correct, loss_sum = 0, 0, 0.0
    for x, y in loader:
        x, y = to_device(x, device), y.to(device)
        with _autocast(device, amp):
            logits = forward(model, x)
        loss_sum += loss_fn(logits.float(), y).item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        total += len(y)
    model.train(was_training)
    if total == 0:
        raise ValueError("The loader yielded no batches; is the dataset empty?")
    return {"loss": loss_sum / total, "acc": correct / total}


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities, labels) for every example of a loader, on the CPU."""
    device = device or get_device()
    model.eval()
    probs, labels = [], []
    for x, y in loader:
        with _autocast(device, "auto"):
            probs.append(forward(model, to_device(x, device)).float().softmax(1).cpu())
        labels.append(y)
    return torch.cat(probs), torch.cat(labels)


def make_optimizer(model: nn.Module, lr: float = 1e-3, weight_decay: float = 0.01) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters only (frozen ones cost no optimiser memory)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("Nothing to train: every parameter is frozen. Unfreeze the head at least (utils.unfreeze_last(model, 0)).")
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def fit(model: nn.Module, train_loader: Iterable, val_loader: Iterable | None = None, epochs: int = 3,
        optimizer: torch.optim.Optimizer | None = None, lr: float = 1e-3, scheduler=None, loss_fn: Callable | None = None,
        device: torch.device | None = None, amp: bool | str = "auto", grad_clip: float | None = None,
        label: str = "", progress: bool = True, history: History | None = None, channels_last: bool = False,
        compile: bool = False) -> History:
    """Train for `epochs`, evaluating after each; `scheduler` steps per batch. Returns (or extends) a `History`.

    `channels_last` stores 4-D activations as NHWC (faster convolutions on GPU tensor cores); `compile` trains
    through `torch.compile(model)` (the first steps compile, which long GPU runs repay; evaluation stays eager).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    device = device or get_device()
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if compile else model
    optimizer = optimizer or make_optimizer(model, lr)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    dtype = amp_dtype(device) if amp in ("auto", True) else None
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None  # bf16 and CPU need no scaler
    history = history if history is not None else History(label)  # an empty History is falsy
    start_epoch = len(history)
    bar = tqdm(total=epochs * len(train_loader), desc=label or "fit", disable=not progress, leave=False)
    for epoch in range(start_epoch + 1, start_epoch + epochs + 1):
        model.train()
        frozen_bn_eval(model)
        t0, seen, correct, loss_sum = time.perf_counter(), 0, 0, 0.0
        for x, y in train_loader:
            x, y = to_device(x, device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last and torch.is_tensor(x) and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device, amp):
                logits = forward(net, x)
                loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            if scaler:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer) if scaler else optimizer.step()
            if scaler:
                scaler.update()
            if scheduler is not None:
                scheduler.step()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            bar.update()
            bar.set_postfix(epoch=epoch, loss=f"{loss_sum / seen:.3f}")
        row = {"epoch": epoch, "train_loss": loss_sum / seen, "train_acc": correct / seen}
        if val_loader is not None:
            val = evaluate(model, val_loader, device, loss_fn, amp)
            row.update(val_loss=val["loss"], val_acc=val["acc"])
        row["seconds"] = time.perf_counter() - t0
        history.rows.append(row)
    bar.close()
    return history
