"""Which weights learn: freezing by depth (last k blocks) or by name pattern, and counting what is trainable."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from torch import nn

from .models import classifier_name

__all__ = ["ParamCount", "count_parameters", "backbone_blocks", "freeze", "unfreeze", "unfreeze_last",
           "frozen_bn_eval", "trainable_summary"]


@dataclass(frozen=True)
class ParamCount:
    """Trainable vs frozen parameter counts."""

    trainable: int
    frozen: int

    @property
    def total(self) -> int:
        return self.trainable + self.frozen

    def __str__(self) -> str:
        return f"{self.trainable:,} trainable / {self.frozen:,} frozen ({100 * self.trainable / max(self.total, 1):.1f}% trainable)"


_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
_STAGE_CONTAINERS = ("blocks", "features", "layers", "stages")  # timm, torchvision, swin-style names


def count_parameters(model: nn.Module) -> ParamCount:
    """How many parameters will be updated, and how many are frozen."""
    t = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ParamCount(t, sum(p.numel() for p in model.parameters()) - t)


def backbone_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The backbone's blocks in input → output order (excluding the classifier), the unit of 'unfreeze the last k'."""
    head = classifier_name(model).split(".")[0]
    children = [(n, m) for n, m in model.named_children() if n != head and any(True for _ in m.parameters())]
    out: list[tuple[str, nn.Module]] = []
    for name, module in children:
        if isinstance(module, _NORMS) and out:  # a norm belongs with the conv before it (stem, head)
            prev_name, prev = out.pop()
            mods = list(prev) if prev_name.count("+") else [prev]
            out.append((f"{prev_name}+{name}", nn.ModuleList([*mods, module])))
        elif isinstance(module, (nn.Sequential, nn.ModuleList)) and len(module) > 1 and name in _STAGE_CONTAINERS:
            out.extend((f"{name}.{i}", sub) for i, sub in enumerate(module))
        else:
            out.append((name, module))
    return out


def _matching(model: nn.Module, patterns: str | list[str] | None):
    pats = [patterns] if isinstance(patterns, str) else patterns
    for name, p in model.named_parameters():
        if pats is None or any(fnmatch.fnmatch(name, pat) or name.startswith(pat.rstrip("*") + ".") for pat in pats):
            yield name, p


def _set(model: nn.Module, patterns, flag: bool) -> int:
    names = [n for n, p in _matching(model, patterns) if not p.requires_grad_(flag) is None]
    if patterns is not None and not names:
        sample = ", ".join(n for n, _ in list(model.named_parameters())[:4])
        raise ValueError(f"No parameter name matches {patterns!r}. Names look like: {sample}, ... (glob patterns, e.g. 'blocks.6.*').")
    return len(names)


def freeze(model: nn.Module, patterns: str | list[str] | None = None) -> int:
    """Stop gradients for every parameter (or those whose names match glob patterns); returns how many tensors."""
    return _set(model, patterns, False)


def unfreeze(model: nn.Module, patterns: str | list[str] | None = None) -> int:
    """Let every parameter (or those matching the patterns) learn again; returns how many tensors."""
    return _set(model, patterns, True)


def unfreeze_last(model: nn.Module, k: int, train_head: bool = True) -> list[str]:
    """Freeze the backbone except its last k blocks (k=0: linear probe; k=len(blocks): full fine-tune)."""
    blocks = backbone_blocks(model)
    if not isinstance(k, int) or k < 0 or k > len(blocks):
        raise ValueError(f"k must be between 0 and {len(blocks)} (this model has {len(blocks)} blocks: "
                         f"{', '.join(n for n, _ in blocks)}), got {k!r}.")
    freeze(model)
    opened = [n for n, _ in blocks[len(blocks) - k:]]
    for _, module in blocks[len(blocks) - k:]:
        module.requires_grad_(True)
    if train_head:
        model.get_submodule(classifier_name(model)).requires_grad_(True)
    return opened


def frozen_bn_eval(model: nn.Module) -> int:
    """Put BatchNorm layers whose weights are frozen into eval mode, so training does not drift their statistics."""
    n = 0
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters(recurse=False)):
            m.eval()
            n += 1
    return n


def trainable_summary(model: nn.Module) -> list[tuple[str, int, bool]]:
    """(block, parameter count, trainable?) per backbone block plus the head, for printing as a table."""
    rows = [(n, sum(p.numel() for p in m.parameters()), any(p.requires_grad for p in m.parameters())) for n, m in backbone_blocks(model)]
    head = model.get_submodule(classifier_name(model))
    rows.append((classifier_name(model), sum(p.numel() for p in head.parameters()), any(p.requires_grad for p in head.parameters())))
    return rows
