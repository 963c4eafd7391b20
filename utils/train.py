"""One training step and the loops built on it: `fit`, `gradual_unfreeze` and fastai-style `fine_tune`, plus evaluation.

Device policy: training places the model (`fit(..., device=None)` moves it to `utils.get_device()`); evaluation and
prediction run wherever the model already is. Mixed precision is used on CUDA only, where it pays.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .checks import check_int
from .device import amp_dtype, get_device, model_device
from .groups import frozen_bn_eval, layer_groups, unfreeze_last
from .progress import progress_bar

__all__ = ["History", "Step", "to_device", "forward", "train_step", "evaluate", "predict", "fit", "gradual_unfreeze",
           "fine_tune"]


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
        if not vals:
            raise ValueError(f"History {self.label!r} has no {metric!r} values; was a val_loader passed to fit?")
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


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _check_inputs(model: nn.Module, x) -> None:
    """Images whose channel count differs from what the model's first convolution takes: say so before torch does."""
    if not torch.is_tensor(x) or x.ndim != 4:
        return
    first = _first_conv(model)
    if first is not None and x.shape[1] != first.in_channels:
        hint = (" Grayscale images? Repeat the channel: x.expand(-1, 3, -1, -1), or build the dataset with "
                "utils.images_from_arrays." if x.shape[1] == 1 else
                " Channels last? Use x.permute(0, 3, 1, 2)." if x.shape[-1] == first.in_channels else "")
        raise ValueError(f"A batch from the loader has {x.shape[1]} channels (shape {tuple(x.shape)}) but the model's first "
                         f"convolution takes {first.in_channels}.{hint}")


def _check_targets(y: torch.Tensor, logits: torch.Tensor) -> None:
    if y.ndim == 1 and y.numel() and not y.is_floating_point():
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= logits.shape[-1]:
            raise ValueError(f"A label is {lo if lo < 0 else hi}, but the model has {logits.shape[-1]} outputs "
                             f"(classes 0..{logits.shape[-1] - 1}). Re-number the labels, or give the model a head with "
                             "more outputs (utils.replace_head(model, num_classes)).")


@dataclass
class Step:
    """What one optimiser step saw: the mean loss (a 0-d tensor, still on the device), correct predictions, examples."""

    loss: torch.Tensor
    correct: int
    seen: int


def train_step(model: nn.Module, micro_batches: Sequence, optimizer: torch.optim.Optimizer,
               loss_fn: Callable | None = None, *, device: torch.device | None = None, amp: torch.dtype | None = None,
               scaler=None, grad_clip: float | None = None, ddp=None, channels_last: bool = False) -> Step:
    """One optimiser step over one or more micro-batches (gradient accumulation; with DDP, one all-reduce at the end).

    The single training step of the book: `fit`, the LR finder and the distributed script all call it.
    """
    device = device or model_device(model)
    loss_fn = loss_fn or nn.functional.cross_entropy
    optimizer.zero_grad(set_to_none=True)
    total, correct, seen = torch.zeros((), device=device), 0, 0
    n = len(micro_batches)
    for i, (x, y) in enumerate(micro_batches):
        x, y = to_device(x, device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last and torch.is_tensor(x) and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        sync = ddp is None or i == n - 1
        if i == 0:
            _check_inputs(model, x)
        with contextlib.nullcontext() if sync else ddp.no_sync():
            with _autocast(device, amp):
                logits = forward(model, x)
            if i == 0:
                _check_targets(y, logits)
            loss = loss_fn(logits.float(), y) / n
            (scaler.scale(loss) if scaler else loss).backward()
        total += loss.detach()
        if y.ndim == 1 and not y.is_floating_point():
            correct += int((logits.argmax(-1) == y).sum())
        seen += len(y)
    if scaler:
        scaler.unscale_(optimizer)
    if grad_clip:
        nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return Step(total, correct, seen)


def _nonempty(loader, name: str) -> None:
    if hasattr(loader, "__len__") and len(loader) == 0:
        raise ValueError(f"{name} yields no batches: is its dataset empty (check the split and the subsample size), "
                         "or is drop_last=True with fewer examples than one batch?")


def resolve_amp(amp, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `amp`: "auto"/True picks the device's own (`amp_dtype`), a torch dtype is used as given
    (e.g. torch.bfloat16 on a CPU, which "auto" leaves in float32), False/None switch it off."""
    if isinstance(amp, torch.dtype):
        if amp not in (torch.bfloat16, torch.float16):
            raise ValueError(f"amp={amp} is not an autocast dtype: use torch.bfloat16 or torch.float16.")
        return amp
    if amp is None or amp is False:
        return None
    if amp == "auto" or amp is True:
        return amp_dtype(device)
    raise ValueError(f"amp must be 'auto', True, False, None or a dtype (torch.bfloat16, torch.float16); got {amp!r}.")


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, loss_fn: Callable | None = None, amp: bool | str | torch.dtype | None = "auto") -> dict[str, float]:
    """Mean loss and accuracy over a loader, in eval mode, on the model's own device."""
    _nonempty(loader, "The loader")
    device = model_device(model)
    loss_fn = loss_fn or nn.functional.cross_entropy
    dtype = resolve_amp(amp, device)
    was_training = model.training
    model.eval()
    total, correct, loss_sum = 0, 0, 0.0
    try:
        for i, (x, y) in enumerate(loader):
            x, y = to_device(x, device), y.to(device)
            if i == 0:
                _check_inputs(model, x)
            with _autocast(device, dtype):
                logits = forward(model, x)
            _check_targets(y, logits)
            loss_sum += loss_fn(logits.float(), y).item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            total += len(y)
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("The loader yielded no batches; is the dataset empty?")
    return {"loss": loss_sum / total, "acc": correct / total}


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities, labels) for every example of a loader, on the CPU; runs on the model's own device."""
    _nonempty(loader, "The loader")
    device = model_device(model)
    dtype = amp_dtype(device)
    was_training = model.training
    model.eval()
    probs, labels = [], []
    try:
        for i, (x, y) in enumerate(loader):
            x = to_device(x, device)
            if i == 0:
                _check_inputs(model, x)
            with _autocast(device, dtype):
                probs.append(forward(model, x).float().softmax(-1).cpu())
            labels.append(y)
    finally:
        model.train(was_training)
    if not probs:
        raise ValueError("The loader yielded no batches; is the dataset empty?")
    return torch.cat(probs), torch.cat(labels)


def fit(model: nn.Module, train_loader: Iterable, val_loader: Iterable | None = None, epochs: int = 3,
        optimizer: torch.optim.Optimizer | None = None, lr: float = 1e-3, scheduler=None, schedule: str = "constant",
        warmup: float = 0.0, loss_fn: Callable | None = None, device: torch.device | None = None,
        amp: bool | str | torch.dtype | None = "auto", grad_clip: float | None = None, label: str = "", progress: bool = True,
        history: History | None = None, channels_last: bool | str = "auto", compile: bool = False,
        eval_loaders: dict | None = None) -> History:
    """Train for `epochs`, evaluating after each; returns (or extends) a `History`.

    The optimiser defaults to `utils.make_optimizer(model, lr)`. A per-step `scheduler` can be passed, or named:
    `schedule="cosine"` / `"linear"` with a `warmup` fraction of the steps (transformers' schedules). Extra
    `eval_loaders` ({"test": loader}) are evaluated each epoch too (columns `test_loss`, `test_acc`).
    `channels_last=True` stores 4-D weights and activations as NHWC (faster convolutions on GPU tensor cores) and
    leaves the model so; the default `"auto"` trains a convolutional model on a CPU in NHWC too (oneDNN's convolutions
    and pooling are faster so: `bench/bench_channels_last.py`) and hands it back in its original layout, same results
    up to float rounding. `compile` trains through `torch.compile(model)` (evaluation stays eager).
    """
    from .optim import make_optimizer, make_scheduler

    epochs = check_int(epochs, "epochs", 1)
    _nonempty(train_loader, "train_loader")
    device = device or get_device()
    model.to(device)
    restore = False
    if channels_last == "auto":
        channels_last = _auto_channels_last(model, device)
        restore = channels_last and not _is_channels_last(model)
    elif not isinstance(channels_last, bool):
        raise ValueError(f"channels_last must be True, False or 'auto'; got {channels_last!r}.")
    if channels_last:
        model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if compile else model
    optimizer = optimizer or make_optimizer(model, lr)
    if scheduler is None:
        scheduler = make_scheduler(optimizer, schedule, epochs * len(train_loader), warmup)
    dtype = resolve_amp(amp, device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None  # bf16 and CPU need no scaler
    history = history if history is not None else History(label)  # an empty History is falsy
    start_epoch = len(history)
    bar = progress_bar(total=epochs * len(train_loader), desc=label or "fit", disable=not progress, leave=False)
    try:
        for epoch in range(start_epoch + 1, start_epoch + epochs + 1):
            model.train()
            frozen_bn_eval(model)
            t0, seen, correct, loss_sum = time.perf_counter(), 0, 0, 0.0
            for batch in train_loader:
                step = train_step(net, [batch], optimizer, loss_fn, device=device, amp=dtype, scaler=scaler,
                                  grad_clip=grad_clip, channels_last=channels_last)
                if scheduler is not None:
                    scheduler.step()
                loss_sum += step.loss.item() * step.seen
                correct += step.correct
                seen += step.seen
                bar.update()
                bar.set_postfix(epoch=epoch, loss=f"{loss_sum / seen:.3f}")
            row = {"epoch": epoch, "train_loss": loss_sum / seen, "train_acc": correct / seen}
            for name, loader in {"val": val_loader, **(eval_loaders or {})}.items():
                if loader is not None:
                    res = evaluate(model, loader, loss_fn, amp)
                    row.update({f"{name}_loss": res["loss"], f"{name}_acc": res["acc"]})
            row["seconds"] = time.perf_counter() - t0
            history.rows.append(row)
    finally:
        bar.close()
        if restore:  # same Parameter objects, new strides: the optimiser and any module sharing them still see them
            model.to(memory_format=torch.contiguous_format)
    return history


def _first_conv(model: nn.Module) -> nn.Conv2d | None:
    """The first 2-D convolution, or None: what sets the expected channels and the layout choice."""
    return next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)


def _is_channels_last(model: nn.Module) -> bool:
    conv = _first_conv(model)
    return conv is not None and conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()


def _auto_channels_last(model: nn.Module, device: torch.device | str) -> bool:
    """What `fit(channels_last="auto")` picks: NHWC for a model with 2-D convolutions on a CPU, else the model's layout."""
    return torch.device(device).type == "cpu" and _first_conv(model) is not None


def _stage_plan(model: nn.Module, stages: Sequence, epochs) -> list[tuple[int, int]]:
    n = len(layer_groups(model)) - 1
    ks = [n if k is None or k == "all" else k for k in stages]
    if not ks:
        raise ValueError(f"stages must list how many backbone groups each stage trains, e.g. [0, 3, None] (None = all {n}).")
    for k in ks:
        check_int(k, "each stage", 0, n, hint=f"(backbone groups to train; this model has {n}; None = all)")
    if any(b < a for a, b in zip(ks, ks[1:])):
        raise ValueError(f"stages must not decrease (gradual unfreezing only opens more groups); got {list(stages)}.")
    per = [epochs] * len(ks) if isinstance(epochs, int) else list(epochs)
    if len(per) != len(ks):
        raise ValueError(f"epochs must be one integer or one per stage ({len(ks)}); got {epochs!r}.")
    return [(k, check_int(e, "epochs per stage", 1)) for k, e in zip(ks, per)]


def gradual_unfreeze(model: nn.Module, train_loader, val_loader=None, stages: Sequence = (0, 3, None), epochs=1,
                     lr: float = 1e-3, backbone_mult: float = 1.0, decay: float = 1.0, weight_decay: float = 0.01,
                     warmup: float = 0.0, fresh_optimizer: bool = False, label: str = "gradual unfreezing",
                     schedule: str = "constant", **fit_kwargs) -> History:
    """ULMFiT-style: train the head first, then open more of the backbone stage by stage (`stages[i]` groups, None = all).

    One AdamW serves every stage (frozen parameters get no gradient, so it leaves them alone until they open), so the
    head keeps its moment estimates across stages. `warmup` (a fraction of each stage's steps) ramps the rates up
    again at the start of every stage, so newly opened groups are not hit by full-size first steps.
    `schedule="linear"` (or "cosine") also decays each stage's rates to 0 after the warm-up: ULMFiT's slanted
    triangular rate, once per stage.
    `fresh_optimizer=True` restarts AdamW at every stage instead (kept as the control that shows why not to).
    Returns one `History` over all stages (epoch numbers continue; column `stage` says which).
    """
    from .optim import make_optimizer, make_scheduler

    plan = _stage_plan(model, stages, epochs)
    history = fit_kwargs.pop("history", None) or History(label)
    optimizer = None
    for i, (k, n_epochs) in enumerate(plan):
        unfreeze_last(model, k)
        if optimizer is None or fresh_optimizer:
            optimizer = make_optimizer(model, lr, weight_decay, backbone_mult, decay, trainable_only=fresh_optimizer)
        steps = n_epochs * len(train_loader)
        scheduler = make_scheduler(optimizer, schedule, steps, warmup) if warmup or schedule != "constant" else None
        start = len(history)
        fit(model, train_loader, val_loader, epochs=n_epochs, optimizer=optimizer, scheduler=scheduler,
            history=history, label=label, **fit_kwargs)
        for row in history.rows[start:]:
            row["stage"] = i
        if scheduler is not None:  # leave every group at its base rate for the next stage's warm-up
            for g in optimizer.param_groups:
                g["lr"] = g.get("initial_lr", g["lr"])
    return history


def fine_tune(model: nn.Module, train_loader, val_loader=None, epochs: int = 3, freeze_epochs: int = 1,
              lr: float = 1e-3, backbone_mult: float = 0.1, decay: float = 1.0, **kwargs) -> History:
    """fastai's `fine_tune`, i.e. LP-FT: train the new head alone for `freeze_epochs`, then everything for `epochs`
    with the backbone at `backbone_mult` times the head's rate. `freeze_epochs=0` fine-tunes from the random head."""
    freeze_epochs = check_int(freeze_epochs, "freeze_epochs", 0)
    stages, per = ([0, None], [freeze_epochs, epochs]) if freeze_epochs else ([None], [epochs])
    kwargs.setdefault("label", "fine_tune")
    return gradual_unfreeze(model, train_loader, val_loader, stages, per, lr, backbone_mult, decay, **kwargs)
