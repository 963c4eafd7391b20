"""Knowledge distillation (Hinton et al., 2015): a small student learns from a big teacher's softened probabilities.

The student's loss mixes two terms: the KL divergence between the teacher's and the student's probabilities at a
temperature T (scaled by T², so its gradients keep their size as T changes), and the usual cross-entropy on the
labels. Images without a label still carry the teacher's term, which is how distillation uses unlabelled data.
`utils.fit` trains with it unchanged: `distill_loader` yields `pack_targets(labels, teacher_logits)` as the targets.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .checks import check_number

__all__ = ["UNLABELLED", "pack_targets", "distill_loader", "DistillationLoss"]

UNLABELLED = -1  # the label of an image only the teacher speaks for


def pack_targets(labels, teacher_logits: torch.Tensor) -> torch.Tensor:
    """One float target row per image: its label (UNLABELLED = -1 for none) followed by the teacher's logits."""
    z = torch.as_tensor(teacher_logits).float()
    y = torch.as_tensor(labels)
    if z.ndim != 2 or y.ndim != 1 or len(y) != len(z):
        raise ValueError(f"labels must be one per image and teacher_logits (images, classes); got {tuple(y.shape)} and "
                         f"{tuple(z.shape)}.")
    if y.is_floating_point() or ((y < UNLABELLED) | (y >= z.shape[1])).any():
        raise ValueError(f"labels must be integers from 0 to {z.shape[1] - 1}, or {UNLABELLED} for an unlabelled image.")
    return torch.cat([y.float().unsqueeze(1), z], 1)


def distill_loader(inputs: torch.Tensor, labels, teacher_logits: torch.Tensor, batch_size: int, shuffle: bool = True,
                   seed: int = 0, **kwargs):
    """A `utils.make_loader` over (inputs, packed targets) for `DistillationLoss`; labels may be UNLABELLED (-1)."""
    from torch.utils.data import TensorDataset

    from .loaders import make_loader

    if not torch.is_tensor(inputs) or len(inputs) != len(teacher_logits):
        raise ValueError(f"inputs must be a tensor with one row per teacher logit row ({len(teacher_logits)}); got "
                         f"{type(inputs).__name__} of length {len(inputs) if hasattr(inputs, '__len__') else '?'}.")
    return make_loader(TensorDataset(inputs, pack_targets(labels, teacher_logits)), batch_size, shuffle=shuffle,
                       seed=seed, **kwargs)


class DistillationLoss(nn.Module):
    """alpha · T² · KL(teacher_T ‖ student_T) + (1 - alpha) · cross-entropy on the labelled rows of the batch."""

    def __init__(self, temperature: float = 4.0, alpha: float = 0.9):
        super().__init__()
        self.temperature = check_number(temperature, "temperature", 0, None, lo_open=True, hint="(e.g. 4)")
        self.alpha = check_number(alpha, "alpha", 0, 1, hint="(the weight of the teacher's term, e.g. 0.9)")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.ndim != 2 or target.shape[1] != logits.shape[1] + 1:
            raise ValueError(f"DistillationLoss needs targets from utils.distill.pack_targets (label, then the teacher's "
                             f"{logits.shape[1]} logits per row); got shape {tuple(target.shape)}.")
        y, z_teacher = target[:, 0].long(), target[:, 1:]
        t = self.temperature
        soft = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(z_teacher / t, 1), reduction="batchmean",
                        log_target=True) * t * t
        labelled = y != UNLABELLED
        hard = F.cross_entropy(logits[labelled], y[labelled]) if labelled.any() else logits.sum() * 0.0
        return self.alpha * soft + (1 - self.alpha) * hard

