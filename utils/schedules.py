"""Learning rates for fine-tuning: per-depth parameter groups, warm-up + cosine, an LR finder, gradual unfreezing."""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .freeze import backbone_blocks, unfreeze_last
from .models import classifier_name

__all__ = ["param_groups_by_depth", "group_lrs", "discriminative_optimizer", "warmup_cosine", "LRFinderResult",
           "lr_find", "plot_lr_find", "check_unfreeze_stages", "gradual_unfreeze"]


def _check_lr(lr, name: str = "lr") -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"{name} must be a positive number (e.g. 1e-3), got {lr!r}.")
    return float(lr)


def _check_fraction(x, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 < x <= 1:
        raise ValueError(f"{name} must lie in (0, 1] (1 = no change, 0.1 = ten times lower), got {x!r}.")
    return float(x)


def param_groups_by_depth(model: nn.Module, head_lr: float, backbone_mult: float = 1.0, decay: float = 1.0) -> list[dict]:
    """Optimizer groups, one per backbone block plus the head: the head gets `head_lr`, the top backbone block
    `head_lr * backbone_mult`, and each block below it `decay` times the one above (earlier = more general = gentler).

    Only trainable parameters are included (frozen blocks cost no optimiser state); each group has a `name`.
    """
    head_lr = _check_lr(head_lr, "head_lr")
    backbone_mult, decay = _check_fraction(backbone_mult, "backbone_mult"), _check_fraction(decay, "decay")
    head = model.get_submodule(classifier_name(model))
    blocks = backbone_blocks(model)
    groups, seen = [], set()

    def add(name: str, params: Iterable[nn.Parameter], lr: float) -> None:
        ps = [p for p in params if p.requires_grad and id(p) not in seen]
        seen.update(id(p) for p in ps)
        if ps:
            groups.append({"name": name, "params": ps, "lr": lr})

    add(classifier_name(model), head.parameters(), head_lr)
    for depth, (name, block) in enumerate(reversed(blocks)):
        add(name, block.parameters(), head_lr * backbone_mult * decay ** depth)
    # Anything outside the blocks and head (rare: e.g. a learned position embedding) learns like the lowest block.
    add("other", model.parameters(), head_lr * backbone_mult * decay ** max(len(blocks) - 1, 0))
    if not groups:
        raise ValueError("Every parameter is frozen, so there is nothing to optimise. Unfreeze something first "
                         "(utils.unfreeze_last(model, k)).")
    return groups[::-1]  # input → output order, like backbone_blocks


def group_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """The current learning rate of each named parameter group (for tables and checks)."""
    return {g.get("name", f"group {i}"): g["lr"] for i, g in enumerate(optimizer.param_groups)}


def discriminative_optimizer(model: nn.Module, head_lr: float, backbone_mult: float = 1.0, decay: float = 1.0,
                             weight_decay: float = 0.01) -> torch.optim.AdamW:
    """AdamW over `param_groups_by_depth` (same weight decay as `utils.make_optimizer`, so only the LRs differ)."""
    return torch.optim.AdamW(param_groups_by_depth(model, head_lr, backbone_mult, decay), weight_decay=weight_decay)


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  min_factor: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule: linear warm-up from ~0 to each group's LR, then cosine decay to `min_factor` × that LR.

    It multiplies every group's own LR, so discriminative ratios between groups are kept.
    """
    for v, name in ((warmup_steps, "warmup_steps"), (total_steps, "total_steps")):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer (optimizer steps = batches), got {v!r}.")
    if total_steps < 1 or warmup_steps > total_steps:
        raise ValueError(f"Need 0 <= warmup_steps <= total_steps and total_steps >= 1; got warmup_steps={warmup_steps}, "
                         f"total_steps={total_steps}. total_steps is usually epochs * len(train_loader).")
    if not 0 <= min_factor <= 1:
        raise ValueError(f"min_factor must lie in [0, 1] (final LR as a fraction of the peak), got {min_factor!r}.")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


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
            diverge: float = 4.0) -> LRFinderResult:
    """Train with an LR growing exponentially each batch, record the loss, stop when it blows up, and restore the
    model's weights afterwards (the sweep is a measurement, not training). Uses AdamW over trainable parameters."""
    from .device import get_device
    from .train import forward, to_device

    start_lr, end_lr = _check_lr(start_lr, "start_lr"), _check_lr(end_lr, "end_lr")
    if end_lr <= start_lr:
        raise ValueError(f"end_lr ({end_lr}) must be larger than start_lr ({start_lr}).")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 2:
        raise ValueError(f"num_steps must be an integer >= 2, got {num_steps!r}.")
    if not 0 <= smooth < 1:
        raise ValueError(f"smooth must lie in [0, 1) (0 = no smoothing), got {smooth!r}.")
    if hasattr(loader, "__len__") and len(loader) == 0:
        raise ValueError("The loader is empty; lr_find needs at least one batch.")
    device = device or get_device()
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    saved, was_training = copy.deepcopy(model.state_dict()), model.training
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("Every parameter is frozen; unfreeze what you want to train before finding its LR.")
    opt = torch.optim.AdamW(params, lr=start_lr)
    gamma = (end_lr / start_lr) ** (1 / (num_steps - 1))
    lrs, losses, avg, best, step = [], [], 0.0, math.inf, 0
    try:
        while step < num_steps:
            batches = 0
            for x, y in loader:
                batches += 1
                lr = start_lr * gamma ** step
                for g in opt.param_groups:
                    g["lr"] = lr
                loss = loss_fn(forward(model, to_device(x, device)).float(), y.to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                avg = smooth * avg + (1 - smooth) * loss.item()
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
    ax.legend(fontsize=8)
    return ax


def check_unfreeze_stages(model: nn.Module, stages: Sequence[int]) -> list[int]:
    """Validate a gradual-unfreezing plan: non-decreasing counts of trainable backbone blocks, within range."""
    n = len(backbone_blocks(model))
    stages = list(stages)
    if not stages or any(isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n for k in stages):
        raise ValueError(f"stages must be a non-empty list of block counts between 0 and {n}, e.g. [0, 3, {n}]; got {stages!r}.")
    if any(b < a for a, b in zip(stages, stages[1:])):
        raise ValueError(f"stages must not decrease (gradual unfreezing only opens more blocks); got {stages!r}.")
    return stages


def gradual_unfreeze(model: nn.Module, train_loader, val_loader=None, stages: Sequence[int] = (0, 3, 9),
                     epochs_per_stage: int = 1, head_lr: float = 1e-3, backbone_mult: float = 1.0, decay: float = 1.0,
                     label: str = "gradual unfreezing", **fit_kwargs):
    """ULMFiT-style: train the head first, then open `stages[i]` top blocks per stage, a fresh optimiser each time.

    Returns one `History` over all stages (epoch numbers continue across stages).
    """
    from .train import History, fit

    stages = check_unfreeze_stages(model, stages)
    if isinstance(epochs_per_stage, bool) or not isinstance(epochs_per_stage, int) or epochs_per_stage < 1:
        raise ValueError(f"epochs_per_stage must be a positive integer, got {epochs_per_stage!r}.")
    history = History(label)
    for k in stages:
        unfreeze_last(model, k)
        opt = discriminative_optimizer(model, head_lr, backbone_mult, decay)
        fit(model, train_loader, val_loader, epochs=epochs_per_stage, optimizer=opt, history=history, label=label,
            **fit_kwargs)
    return history
