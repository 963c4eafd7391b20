"""What a trained classifier gets wrong, and where it looks: per-class scores, confusions, top losses, CAM and Grad-CAM.

* `per_class_report`, `most_confused`, `top_losses`: the error analysis of a test set (sklearn.metrics underneath);
* `class_activation_map`: Zhou et al.'s CAM for networks that end in global average pooling and one linear layer
  (chapter 1 introduces it): the classifier applied at every position of the last feature maps, so the map's mean
  plus the bias is exactly the logit;
* `grad_cam`: Selvaraju et al.'s Grad-CAM for any layer: the layer's maps weighted by the spatial mean of the
  gradient of the class score, summed over channels, negative values cut. At the last layer of a CAM-shaped network
  it is the CAM with negatives cut, up to one positive factor;
* `mass_inside`: the share of a map's positive mass that falls inside a mask (e.g. a digit's strokes), one number
  per image to compare maps of two models on the same images;
* `plot_cams`: maps upsampled and drawn over their images.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .checks import check_images, check_int, check_labels, check_model, check_names, check_same_length
from .groups import get_classifier

__all__ = ["per_class_report", "most_confused", "top_losses", "class_activation_map", "grad_cam", "mass_inside",
           "plot_cams"]


def _pair(y_true, y_pred, classes) -> tuple[np.ndarray, np.ndarray, list[str]]:
    classes = check_names(classes, "classes")
    t = check_labels(y_true, "y_true", len(classes)).numpy()
    p = check_labels(y_pred, "y_pred", len(classes)).numpy()
    check_same_length(t, p, "y_true", "y_pred")
    if len(t) == 0:
        raise ValueError("y_true is empty: pass the labels and predictions of at least one example.")
    return t, p, classes


def per_class_report(y_true, y_pred, classes: Sequence[str]):
    """Precision, recall, F1 and support per class (sklearn's precision_recall_fscore_support), one row per class."""
    import pandas as pd
    from sklearn.metrics import precision_recall_fscore_support

    t, p, classes = _pair(y_true, y_pred, classes)
    prec, rec, f1, support = precision_recall_fscore_support(t, p, labels=range(len(classes)), zero_division=0)
    return pd.DataFrame({"precision": prec, "recall": rec, "f1": f1, "support": support.astype(int)},
                        index=pd.Index(classes, name="class"))


def most_confused(y_true, y_pred, classes: Sequence[str], k: int = 5):
    """The k most frequent (true class, predicted class) errors: count, and share of that true class's examples."""
    import pandas as pd
    from sklearn.metrics import confusion_matrix

    t, p, classes = _pair(y_true, y_pred, classes)
    k = check_int(k, "k", 1, hint="(how many confused pairs to list)")
    cm = confusion_matrix(t, p, labels=range(len(classes)))
    rows = [{"true": classes[i], "predicted": classes[j], "count": int(cm[i, j]), "share of true class": cm[i, j] / cm[i].sum()}
            for i in range(len(classes)) for j in range(len(classes)) if i != j and cm[i, j] > 0]
    cols = ["true", "predicted", "count", "share of true class"]
    if not rows:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame(rows, columns=cols).sort_values(["count", "true", "predicted"], ascending=[False, True, True],
                                                        kind="stable").head(k).reset_index(drop=True)


def top_losses(logits, labels, k: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices, losses) of the k examples with the highest cross-entropy, highest first: where to look for errors."""
    if not torch.is_tensor(logits) or logits.ndim != 2 or len(logits) == 0:
        raise TypeError(f"logits must be a non-empty (N, C) tensor of model outputs, got "
                        f"{tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__}.")
    y = check_labels(labels, "labels", logits.shape[1])
    check_same_length(logits, y, "logits", "labels")
    k = check_int(k, "k", 1, hint="(how many examples to return)")
    losses = nn.functional.cross_entropy(logits.detach().float().cpu(), y, reduction="none")
    top = losses.topk(min(k, len(losses)))
    return top.indices, top.values


def _targets(target, n: int, logits: torch.Tensor) -> torch.Tensor:
    if target is None:
        return logits.argmax(1)
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        target = [int(target)] * n
    t = check_labels(target, "target", logits.shape[1])
    check_same_length(t, torch.empty(n), "target", "the images")
    return t.to(logits.device)


def _check_x(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    check_model(model)
    if not torch.is_tensor(x) or x.ndim != 4:
        raise TypeError(f"x must be a normalised image batch (N, C, H, W) as the model takes it (utils.normalize(images, "
                        f"model)); got {tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}.")
    if len(x) == 0:
        raise ValueError("x is empty: pass at least one image.")
    return x


def class_activation_map(model: nn.Module, x: torch.Tensor, target=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(maps (N, h, w), logits (N, K)): CAM_k = w_k · a(h, w) on the last feature maps; mean(CAM_k) + b_k = logit k.

    For networks whose head is global average pooling then one linear layer (timm CNNs, the book's SmallCNN);
    `target`: None (the predicted class), one class index, or one per image. `x` is normalised as the model takes it.
    """
    x = _check_x(model, x)
    if not hasattr(model, "forward_features"):
        raise TypeError(f"{type(model).__name__} has no forward_features: class_activation_map needs a timm-style CNN "
                        "(utils.create_backbone, utils.small_cnn). For other networks use utils.interpret.grad_cam.")
    head = get_classifier(model)
    if not isinstance(head, nn.Linear):
        raise TypeError(f"The model's classifier is a {type(head).__name__}, not one nn.Linear: the CAM identity needs "
                        "pooling followed by a single linear layer. Use utils.interpret.grad_cam instead.")
    with torch.no_grad():
        maps = model.forward_features(x)
        if maps.ndim != 4:
            raise TypeError(f"forward_features returned shape {tuple(maps.shape)}, not (N, C, h, w) maps; CAM needs a CNN.")
        logits = model.forward_head(maps)
        t = _targets(target, len(x), logits)
        cams = torch.einsum("nc,nchw->nhw", head.weight[t], maps)
    return cams.cpu(), logits.cpu()


def _layer(model: nn.Module, layer) -> nn.Module:
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError:
            names = [n for n, m in model.named_modules() if n and not list(m.children())][:6]
            raise ValueError(f"The model has no layer {layer!r}; pass a module or a name from model.named_modules(), "
                             f"e.g. {names}.") from None
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError("layer is not a module of this model: pass one of model's own layers (e.g. model.bn2).")
        return layer
    raise TypeError(f"layer must be a module of the model or its name (e.g. 'blocks.4'), got {type(layer).__name__}.")


def grad_cam(model: nn.Module, x: torch.Tensor, layer, target=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(maps (N, h, w), logits (N, K)): Grad-CAM at `layer` (a module or its name), for `target` (None: the prediction).

    maps = ReLU(sum_c alpha_c A_c) with alpha_c the spatial mean of d score / d A_c. Works whether or not the model's
    weights require gradients; the model is run in eval mode. `x` is normalised as the model takes it.
    """
    x = _check_x(model, x)
    module = _layer(model, layer)
    grabbed = {}

    def hook(_m, _inp, out):
        if not torch.is_tensor(out) or out.ndim != 4:
            raise TypeError(f"layer {layer!r} outputs {tuple(out.shape) if torch.is_tensor(out) else type(out).__name__}, "
                            "not (N, C, h, w) maps; pick a convolutional layer.")
        leaf = out.detach().requires_grad_(True)  # a leaf here lets us take d score / d maps with every weight frozen
        grabbed["a"] = leaf
        return leaf.clone()  # later in-place ops (an activation) must not write into the leaf

    was_training = model.training
    model.eval()
    handle = module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(x)
            t = _targets(target, len(x), logits)
            score = logits.gather(1, t[:, None]).sum()
            (grads,) = torch.autograd.grad(score, grabbed["a"])
    finally:
        handle.remove()
        model.train(was_training)
    alpha = grads.mean(dim=(2, 3), keepdim=True)
    maps = torch.relu((alpha * grabbed["a"]).sum(1))
    return maps.detach().cpu(), logits.detach().cpu()


def _upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return nn.functional.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]


def mass_inside(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per image, the share of the map's positive mass inside the mask (maps are upsampled to the mask's size).

    An image whose map has no positive mass gets NaN (no evidence to locate).
    """
    if not torch.is_tensor(maps) or maps.ndim != 3:
        raise TypeError(f"maps must be a tensor (N, h, w) of activation maps (from grad_cam or class_activation_map), got "
                        f"{tuple(maps.shape) if torch.is_tensor(maps) else type(maps).__name__}.")
    if not torch.is_tensor(masks) or masks.ndim != 3 or masks.dtype != torch.bool:
        raise TypeError("masks must be a bool tensor (N, H, W), True where the object is, e.g. images[:, 0] > 0.5; got "
                        f"{tuple(masks.shape) if torch.is_tensor(masks) else type(masks).__name__}"
                        f"{' of ' + str(masks.dtype) if torch.is_tensor(masks) else ''}.")
    check_same_length(maps, masks, "maps", "masks")
    up = _upsample(maps.detach().cpu(), tuple(masks.shape[-2:])).clamp(min=0)
    total = up.sum(dim=(1, 2))
    inside = (up * masks.cpu()).sum(dim=(1, 2))
    return torch.where(total > 0, inside / total.clamp(min=1e-12), torch.full_like(total, float("nan")))


def plot_cams(images: torch.Tensor, maps: Sequence[torch.Tensor], row_titles: Sequence[str],
              titles: Sequence[str] | None = None, size: float = 1.5, alpha: float = 0.5):
    """One row per set of maps, drawn over the same images (each map on its own colour scale); images in [0, 1]."""
    import matplotlib.pyplot as plt

    images = check_images(images, "images")
    if isinstance(maps, torch.Tensor):
        maps = [maps]
    if not isinstance(maps, (list, tuple)) or not maps:
        raise TypeError("maps must be a list of (N, h, w) tensors, one per row, e.g. [imagenet_maps, fine_tuned_maps].")
    if isinstance(row_titles, str) or not hasattr(row_titles, "__len__") or len(row_titles) != len(maps):
        raise ValueError(f"row_titles must list one title per row of maps ({len(maps)}), e.g. ['ImageNet', 'fine-tuned'].")
    for i, m in enumerate(maps):
        if not torch.is_tensor(m) or m.ndim != 3 or len(m) != len(images):
            raise ValueError(f"maps[{i}] must be a tensor (N, h, w) with one map per image ({len(images)}); got "
                             f"{tuple(m.shape) if torch.is_tensor(m) else type(m).__name__}.")
    if titles is not None:
        check_same_length(images, titles, "images", "titles")
    n = len(images)
    fig, axes = plt.subplots(len(maps), n, figsize=(size * n, size * len(maps) + 0.3), squeeze=False)
    for r, m in enumerate(maps):
        up = _upsample(m.detach().cpu(), tuple(images.shape[-2:]))
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(images[c].permute(1, 2, 0).cpu().numpy())
            ax.imshow(up[c].numpy(), cmap="jet", alpha=alpha)
            ax.set_xticks([])
            ax.set_yticks([])
            if titles is not None and r == 0:
                ax.set_title(str(titles[c]), fontsize=8)
        axes[r, 0].set_ylabel(row_titles[r], fontsize=8)
    fig.tight_layout()
    return fig
