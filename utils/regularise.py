"""L2-SP: fine-tune with weight decay that pulls the backbone toward its *pretrained* weights instead of toward zero.

Li, Grandvalet and Davoine (2018), "Explicit inductive bias for transfer learning with convolutional networks". Plain
weight decay shrinks every weight toward 0, which for a pretrained backbone means *away* from what pretraining
learned; with few labels nothing pulls it back. L2-SP replaces the origin by the starting point w0, so the same
penalty keeps the fine-tuned weights near the source model (less feature distortion, less forgetting of the source
task) while the new head, which has no meaningful start, still decays toward 0.

Implemented as AdamW's *decoupled* decay (Loshchilov and Hutter 2019) with a different centre: each step does
``p -= lr * weight_decay * (p - w0)`` before the Adam update. Li et al. add the penalty to the loss and use SGD, where
the two forms coincide; under Adam a loss-side L2 term is rescaled per weight by the adaptive denominator, so its
strength would not be comparable with AdamW's. Written this way, L2-SP and plain AdamW differ *only* in the anchor,
at the same `weight_decay`: anchors of zero give exactly AdamW.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from .checks import check_model, check_number

__all__ = ["L2SPAdamW", "l2sp_optimizer", "drift"]


class L2SPAdamW(torch.optim.AdamW):
    """AdamW whose weight decay pulls each anchored parameter toward its anchor (L2-SP) and the others toward zero.

    `anchors` maps parameters (the tensors themselves) to the values to pull toward, e.g. their pretrained weights.
    """

    def __init__(self, params: Iterable, anchors: Mapping[torch.Tensor, torch.Tensor], **kwargs):
        super().__init__(params, **kwargs)
        members = {id(p) for g in self.param_groups for p in g["params"]}
        self.anchors: dict[int, torch.Tensor] = {}
        for p, a in anchors.items():
            if not isinstance(p, torch.Tensor) or not isinstance(a, torch.Tensor):
                raise TypeError("anchors must map parameters to tensors, e.g. {p: p.detach().clone()}.")
            if id(p) not in members:
                raise ValueError("anchors holds a parameter the optimiser does not train; pass the same parameters to both.")
            if a.shape != p.shape:
                raise ValueError(f"An anchor has shape {tuple(a.shape)} but its parameter {tuple(p.shape)}.")
            self.anchors[id(p)] = a.detach().to(p.device, p.dtype).clone()

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        saved = []
        for group in self.param_groups:
            wd, lr = group["weight_decay"], group["lr"]
            saved.append(wd)
            if wd == 0:
                continue
            for p in group["params"]:
                if p.grad is None:  # frozen (or unused) parameters are left alone, as AdamW leaves them
                    continue
                anchor = self.anchors.get(id(p))
                if anchor is None:
                    p.mul_(1 - lr * wd)  # AdamW's own decay, toward zero
                else:
                    p.sub_(p - anchor, alpha=lr * wd)  # toward the anchor
            group["weight_decay"] = 0.0  # already applied: the Adam update below must not decay again
        try:
            super().step()
        finally:
            for group, wd in zip(self.param_groups, saved):
                group["weight_decay"] = wd
        return loss


def _head_ids(model: nn.Module) -> set[int]:
    from .groups import get_classifier

    return {id(p) for p in get_classifier(model).parameters()}


def l2sp_optimizer(model: nn.Module, lr: float = 1e-3, weight_decay: float = 0.01, head_decay: float | None = None,
                   toward: str = "pretrained", backbone_mult: float = 1.0, decay: float = 1.0,
                   trainable_only: bool = False) -> L2SPAdamW:
    """`utils.make_optimizer`'s per-group rates, with every backbone weight pulled toward its value *now* (L2-SP).

    Build it right after loading the pretrained weights and replacing the head. `weight_decay` is the backbone's
    strength; the new head decays toward zero with `head_decay` (default: the same). `toward="zero"` is the control:
    the same optimiser with plain weight decay (AdamW exactly), so the two differ only in where they pull.
    Biases and norm weights get no decay, as in `param_groups`. `trainable_only=False` (the default) keeps frozen
    parameters in it, so one optimiser serves every stage of LP-FT.
    """
    from .checks import check_choice
    from .optim import param_groups

    check_model(model)
    weight_decay = check_number(weight_decay, "weight_decay", 0, None)
    head_decay = weight_decay if head_decay is None else check_number(head_decay, "head_decay", 0, None)
    check_choice(toward, "toward", ("pretrained", "zero"))
    groups = param_groups(model, lr, backbone_mult, decay, weight_decay, trainable_only)
    head = _head_ids(model)
    for g in groups:
        if g["weight_decay"] and all(id(p) in head for p in g["params"]):
            g["weight_decay"] = head_decay
    anchors = {}
    if toward == "pretrained":
        anchors = {p: p.detach().clone() for g in groups for p in g["params"] if id(p) not in head}
    return L2SPAdamW(groups, anchors)


@torch.no_grad()
def drift(model: nn.Module, reference: Mapping[str, torch.Tensor]) -> float:
    """How far the backbone's weights moved from `reference` (a state dict): ||w - w0|| / ||w0|| over weight tensors.

    The head is left out (it is new, so it has no reference). Only tensors with more than one dimension count
    (convolution and linear weights), the ones weight decay and L2-SP act on.
    """
    check_model(model)
    head = _head_ids(model)
    num = den = 0.0
    for name, p in model.named_parameters():
        if id(p) in head or p.ndim <= 1:
            continue
        if name not in reference:
            raise KeyError(f"reference has no {name!r}; pass the state dict of the same architecture (model.state_dict()).")
        w0 = reference[name].to(p.device, torch.float64)
        num += float(((p.double() - w0) ** 2).sum())
        den += float((w0 ** 2).sum())
    if den == 0:
        raise ValueError("The reference backbone weights are all zero (or the model has no backbone weights).")
    return (num / den) ** 0.5
