"""Optimisers and learning rates for fine-tuning: one per-group learning-rate builder, warm-up schedules, an LR finder.

`param_groups` is the book's single builder of discriminative learning rates. Over `utils.layer_groups(model)` (input
to output, head last) it gives

* the head: ``lr``;
* the top backbone group: ``lr * backbone_mult``;
* each group below it: ``decay`` times the rate of the group above (``decay`` and ``backbone_mult`` lie in (0, 1]).

So ``backbone_mult=1, decay=1`` is one global rate; ``backbone_mult=0.1`` is "the backbone ten times lower";
``decay=1/2.6`` is ULMFiT's rule; ``backbone_mult=decay=0.75`` is exactly timm's ``layer_decay=0.75`` and BERT's
layer-wise LR decay (LLRD). Biases and normalisation weights (1-D tensors) get no weight decay, as in timm and
Hugging Face.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .checks import check_fraction, check_int, check_lr, check_number
from .groups import layer_groups

__all__ = ["param_groups", "make_optimizer", "group_lrs", "warmup_cosine", "warmup_linear", "make_scheduler",
           "LRFinderResult", "lr_find", "plot_lr_find"]


def param_groups(model: nn.Module, lr: float, backbone_mult: float = 1.0, decay: float = 1.0,
                 weight_decay: float = 0.01, trainable_only: bool = True) -> list[dict]:
    """Optimiser groups over the model's layer groups (see the module doc); each dict carries a `name`.

    `trainable_only=False` also includes frozen parameters (they get no gradient, so the optimiser skips them until
    they are unfrozen): one optimiser can then serve every stage of gradual unfreezing.
    """
    lr = check_lr(lr)
    backbone_mult, decay = check_fraction(backbone_mult, "backbone_mult"), check_fraction(decay, "decay")
    weight_decay = check_number(weight_decay, "weight_decay", 0, None)
    groups = layer_groups(model)
    rates = [lr * backbone_mult * decay ** depth for depth in range(len(groups) - 1)][::-1] + [lr]
    out, seen = [], set()

    def add(name: str, params: Iterable[nn.Parameter], rate: float) -> None:
        ps = [p for p in params if (p.requires_grad or not trainable_only) and id(p) not in seen]
        seen.update(id(p) for p in ps)
        for suffix, members, wd in (("", [p for p in ps if p.ndim > 1], weight_decay),
                                    (" (no weight decay)", [p for p in ps if p.ndim <= 1], 0.0)):
            if members:
                out.append({"name": name + suffix, "params": members, "lr": rate, "weight_decay": wd})

    for g, rate in zip(groups, rates):
        add(g.name, g.parameters(), rate)
    add("other", model.parameters(), rates[0])  # parameters outside every group learn like the lowest group
    if not out:
        raise ValueError("Every parameter is frozen, so there is nothing to optimise. Unfreeze something first "
                         "(utils.unfreeze_last(model, k)).")
    return out


def make_optimizer(model: nn.Module, lr: float = 1e-3, weight_decay: float = 0.01, backbone_mult: float = 1.0,
                   decay: float = 1.0, trainable_only: bool = True) -> torch.optim.AdamW:
    """AdamW over `param_groups` (one global rate by default); frozen parameters cost no optimiser memory."""
    return torch.optim.AdamW(param_groups(model, lr, backbone_mult, decay, weight_decay, trainable_only))


def group_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """The current learning rate of each named layer group (for tables and checks)."""
    out: dict[str, float] = {}
    for i, g in enumerate(optimizer.param_groups):
        out.setdefault(g.get("name", f"group {i}").replace(" (no weight decay)", ""), g["lr"])
    return out


def _check_steps(warmup_steps, total_steps) -> tuple[int, int]:
    total_steps = check_int(total_steps, "total_steps", 1, hint="It is usually epochs * len(train_loader).")
    warmup_steps = check_int(warmup_steps, "warmup_steps", 0, total_steps)
    return warmup_steps, total_steps


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Per-step schedule: linear warm-up from 0, then half a cosine down to 0 (`transformers`' own function).

    It multiplies each group's own rate, so discriminative ratios between groups are kept.
    """
    from transformers import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, *_check_steps(warmup_steps, total_steps))


def warmup_linear(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """BERT's schedule: linear warm-up from 0, then linear decay to 0 (`transformers.get_linear_schedule_with_warmup`)."""
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, *_check_steps(warmup_steps, total_steps))


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int, warmup: float = 0.0):
    """A per-step scheduler by name: 'constant' (None), 'cosine' or 'linear', after a `warmup` fraction of the steps."""
    from .checks import check_choice

    check_choice(schedule, "schedule", ("constant", "cosine", "linear"))
    total_steps = check_int(total_steps, "total_steps", 1, hint="It is usually epochs * len(train_loader).")
    warmup = check_number(warmup, "warmup", 0, 1, hi_open=True, hint="(a fraction of the training steps, e.g. 0.1)")
    if schedule == "constant":
        if warmup:
            steps = max(1, round(warmup * total_steps))
            return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / (steps + 1)))
        return None
    fn = warmup_cosine if schedule == "cosine" else warmup_linear
    return fn(optimizer, round(warmup * total_steps), total_steps)


@dataclass
class LRFinderResult:
    """An LR range test: the LRs tried, the smoothed loss at each, and the suggested LR."""

    lrs: list[float]
    losses: list[float]
    suggestion: float


def _suggest(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """A tenth of the LR at the lowest smoothed loss: the loss still falls fast there, and it is safely below divergence."""
    return lrs[min(range(len(losses)), key=losses.__getitem__)] / 10


def lr_find(model: nn.Module, loader: Iterable, start_lr: float = 1e-6, end_lr: float = 1.0, num_steps: int = 50,
            loss_fn: Callable | None = None, device: torch.device | None = None, smooth: float = 0.8,
            diverge: float = 4.0, backbone_mult: float = 1.0, decay: float = 1.0) -> LRFinderResult:
    """Train with a rate growing exponentially each batch, record the loss, stop when it blows up, then restore the
    weights (the sweep is a measurement, not training). The swept rate is the head's; `backbone_mult`/`decay` keep
    the same per-group ratios as `param_groups`, so the finder measures the optimiser you will train with."""
    from .train import train_step

    start_lr, end_lr = check_lr(start_lr, "start_lr"), check_lr(end_lr, "end_lr")
    if end_lr <= start_lr:
        raise ValueError(f"end_lr ({end_lr}) must be larger than start_lr ({start_lr}).")
    num_steps = check_int(num_steps, "num_steps", 2)
    smooth = check_number(smooth, "smooth", 0, 1, hi_open=True, hint="(0 = no smoothing)")
    if hasattr(loader, "__len__") and len(loader) == 0:
        raise ValueError("The loader is empty; lr_find needs at least one batch.")
    from .device import get_device

    device = device or get_device()
    saved, was_training = copy.deepcopy(model.state_dict()), model.training
    model.to(device).train()
    opt = make_optimizer(model, start_lr, backbone_mult=backbone_mult, decay=decay)
    ratios = [g["lr"] / start_lr for g in opt.param_groups]
    gamma = (end_lr / start_lr) ** (1 / (num_steps - 1))
    lrs, losses, avg, best, step = [], [], 0.0, math.inf, 0
    try:
        while step < num_steps:
            batches = 0
            for batch in loader:
                batches += 1
                lr = start_lr * gamma ** step
                for g, r in zip(opt.param_groups, ratios):
                    g["lr"] = lr * r
                loss = train_step(model, [batch], opt, loss_fn, device=device).loss.item()
                avg = smooth * avg + (1 - smooth) * loss
                smoothed = avg / (1 - smooth ** (step + 1))  # bias-corrected running mean
                lrs.append(lr)
                losses.append(smoothed)
                best = min(best, smoothed)
                step += 1
                if step >= num_steps or not math.isfinite(smoothed) or smoothed > diverge * best:
                    step = num_steps
                    break
            if batches == 0:
                raise ValueError("The loader yielded no batches; lr_find needs at least one.")
    finally:
        model.load_state_dict(saved)
        model.train(was_training)
    return LRFinderResult(lrs, losses, _suggest(lrs, losses))


def plot_lr_find(result: LRFinderResult, ax=None):
    """Loss against LR (log scale), with the suggestion marked."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.plot(result.lrs, result.losses)
    ax.axvline(result.suggestion, color="C3", ls="--", label=f"suggested lr = {result.suggestion:.1e}")
    ax.set(xscale="log", xlabel="learning rate (log scale)", ylabel="smoothed training loss", title="LR range test")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return ax
