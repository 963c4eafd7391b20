"""Choosing a backbone: torchvision's model zoo as a table (accuracy, compute, size), its Pareto front, and measured latency."""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .checks import check_int, check_model

__all__ = ["FAMILIES", "model_family", "is_classifier_weights", "zoo_table", "pareto_front", "plot_zoo", "Latency", "measure_latency",
           "latency_table", "count_gmacs"]

# Name prefix -> family, most specific first ("efficientnet_v2" before "efficientnet", "resnext" before "resnet").
FAMILIES: tuple[tuple[str, str], ...] = (
    ("alexnet", "AlexNet"), ("vgg", "VGG"), ("squeezenet", "SqueezeNet"), ("googlenet", "Inception"),
    ("inception", "Inception"), ("densenet", "DenseNet"), ("wide_resnet", "Wide ResNet"), ("resnext", "ResNeXt"),
    ("resnet", "ResNet"), ("shufflenet", "ShuffleNet"), ("mobilenet", "MobileNet"), ("mnasnet", "MnasNet"),
    ("efficientnet_v2", "EfficientNetV2"), ("efficientnet", "EfficientNet"), ("regnet", "RegNet"),
    ("convnext", "ConvNeXt"), ("maxvit", "MaxViT"), ("swin", "Swin"), ("vit", "ViT"),
)


def model_family(name: str) -> str:
    """The architecture family of a torchvision model name, so the zoo chart can colour related models alike."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a model name (str), e.g. 'resnet50'; got {type(name).__name__}.")
    for prefix, family in FAMILIES:
        if name.startswith(prefix):
            return family
    return "other"


def is_classifier_weights(weights) -> bool:
    """True if a weight enum has an ImageNet-1K top-1 score (vgg16's IMAGENET1K_FEATURES has none: its head is empty)."""
    acc1 = weights.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1", float("nan"))
    return acc1 == acc1  # NaN != NaN


def _weight_row(name: str, weights) -> dict:
    meta = weights.meta
    acc = meta["_metrics"]["ImageNet-1K"]
    return {"model": name, "weights": weights.name, "family": model_family(name), "acc1": float(acc["acc@1"]),
            "acc5": float(acc["acc@5"]), "gflops": float(meta["_ops"]), "params_m": meta["num_params"] / 1e6,
            "file_mb": float(meta["_file_size"]), "resolution": int(weights.transforms().crop_size[0])}


def zoo_table() -> "pandas.DataFrame":
    """One row per torchvision ImageNet classification weight enum, from metadata torchvision ships (no network)."""
    import pandas as pd
    import torchvision.models as tvm

    rows = [_weight_row(name, w) for name in tvm.list_models(module=tvm) for w in tvm.get_model_weights(name)
            if is_classifier_weights(w)]
    df = pd.DataFrame(rows)
    return df.sort_values("acc1", ascending=False, ignore_index=True)


def pareto_front(df: "pandas.DataFrame", cost: str = "gflops", score: str = "acc1") -> "pandas.DataFrame":
    """Rows no other row beats on both axes (cheaper or as cheap, and at least as accurate): the only sensible picks."""
    if not hasattr(df, "columns") or not hasattr(df, "sort_values"):
        raise TypeError(f"df must be a pandas DataFrame such as zoo_table(), got {type(df).__name__}.")
    missing = {cost, score} - set(df.columns)
    if missing:
        raise ValueError(f"pareto_front needs columns {sorted(missing)} (cost={cost!r}, score={score!r}); the table has "
                         f"{list(df.columns)}.")
    if df[[cost, score]].isna().any().any():
        raise ValueError(f"Columns {cost!r} and {score!r} must have no NaNs; drop or fill those rows first.")
    ordered = df.sort_values([cost, score], ascending=[True, False], kind="stable")
    best, keep = float("-inf"), []
    for index, value in ordered[score].items():
        if value > best:  # strictly more accurate than everything at least as cheap
            keep.append(index)
            best = value
    return ordered.loc[keep]


def plot_zoo(df: "pandas.DataFrame", front: "pandas.DataFrame | None" = None, label_front: bool = True):
    """Accuracy vs compute (log x), marker area growing with parameters, one colour per family, Pareto front as a line."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6))
    colours = plt.get_cmap("tab20").colors
    for i, (family, group) in enumerate(df.groupby("family", sort=True)):
        ax.scatter(group["gflops"], group["acc1"], s=6 + group["params_m"], color=colours[i % 20], alpha=0.75,
                   edgecolor="white", linewidth=0.5, label=family)
    if front is not None:
        ax.step(front["gflops"], front["acc1"], where="post", color="black", lw=1, zorder=0, label="Pareto front")
        ax.scatter(front["gflops"], front["acc1"], s=10, color="black", zorder=3)
        for _, r in front.iterrows() if label_front else ():
            ax.annotate(r["model"], (r["gflops"], r["acc1"]), fontsize=7, xytext=(4, -9), textcoords="offset points")
    ax.set(xscale="log", xlabel="GFLOPs per image (torchvision's count, log scale)", ylabel="ImageNet top-1 accuracy (%)",
           title=f"torchvision's {len(df)} ImageNet weight sets: accuracy vs compute (marker area grows with parameters)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=1, loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=0.6)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class Latency:
    """Wall-clock time of one forward pass of a batch (median over timed steps), and the throughput it implies."""

    batch_size: int
    input_size: int | tuple[int, int]
    ms_per_batch: float
    ms_min: float
    images_per_s: float
    device: str

    def as_dict(self) -> dict:
        return asdict(self)


def _check_positive_int(name: str, value, minimum: int = 1) -> int:
    return check_int(value, name, minimum)


def _input_shape(input_size) -> tuple[int, int, int]:
    """(C, H, W) from a side length, (H, W) or (C, H, W)."""
    square = isinstance(input_size, int) and not isinstance(input_size, bool)
    size = (input_size, input_size) if square else tuple(input_size) if isinstance(input_size, (tuple, list)) else ()
    if len(size) not in (2, 3) or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise ValueError(f"input_size must be a positive int (square side), (H, W) or (C, H, W); got {input_size!r}.")
    return (3, *size) if len(size) == 2 else size


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so the clock measures the computation and not just its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@torch.inference_mode()
def _timed_forwards(model: nn.Module, x: torch.Tensor, steps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(steps):
        _sync(x.device)
        t0 = time.perf_counter()
        model(x)
        _sync(x.device)
        times.append(time.perf_counter() - t0)
    return times


def measure_latency(model: nn.Module, input_size=224, batch_size: int = 1, steps: int = 10, warmup: int = 2) -> Latency:
    """Time inference on random input on the model's own device (eval mode, no autograd), after `warmup` untimed runs."""
    check_model(model)
    c, h, w = _input_shape(input_size)
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("steps", steps)
    _check_positive_int("warmup", warmup, minimum=0)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.randn(batch_size, c, h, w, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model(x)  # one call outside the clock: fails fast, with a clear message, on a wrong input shape
    except RuntimeError as err:
        raise ValueError(f"{type(model).__name__} does not accept input of shape {tuple(x.shape)}: "
                         f"{str(err).splitlines()[0]}. Check input_size against model.data_config.") from None
    try:
        times = _timed_forwards(model, x, steps, max(warmup - 1, 0))
    finally:
        model.train(was_training)
    median = sorted(times)[len(times) // 2]
    return Latency(batch_size, h if h == w else (h, w), 1e3 * median, 1e3 * min(times), batch_size / median, str(device))


def latency_table(models: Mapping[str, nn.Module], settings: Sequence[tuple[int, int]] = ((224, 1),),
                  steps: int = 5, warmup: int = 2) -> "pandas.DataFrame":
    """Latency of each model at each (input_size, batch_size) setting, one row per pair, with a progress bar."""
    import pandas as pd
    from tqdm.auto import tqdm

    if not isinstance(models, Mapping) or not models:
        raise TypeError(f"models must be a non-empty dict of name -> nn.Module, got {type(models).__name__}"
                        f"{' (empty)' if isinstance(models, Mapping) else ''}.")
    if isinstance(settings, (str, bytes)) or not hasattr(settings, "__iter__"):
        raise TypeError(f"settings must be a list of (input_size, batch_size) pairs, got {settings!r}.")
    settings = list(settings)
    if not settings or any(not isinstance(p, (tuple, list)) or len(p) != 2 for p in settings):
        raise ValueError(f"settings must be a non-empty list of (input_size, batch_size) pairs, e.g. [(224, 1)]; got {settings!r}.")
    for size, bs in settings:
        try:
            _input_shape(size)
            _check_positive_int("batch_size", bs)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"settings: ({size!r}, {bs!r}) is not a valid (input_size, batch_size) pair: {exc}") from None
    jobs = [(name, size, bs) for name in models for size, bs in settings]
    rows = []
    for name, size, bs in tqdm(jobs, desc="timing", leave=False):
        lat = measure_latency(models[name], size, bs, steps=steps, warmup=warmup)
        rows.append({"model": name, **lat.as_dict()})
    return pd.DataFrame(rows)


def count_gmacs(model: nn.Module, input_size=224) -> float:
    """Billions of multiply-accumulates for one image (convolutions and matmuls), measured by tracing a forward pass."""
    from torch.utils.flop_counter import FlopCounterMode

    check_model(model)
    c, h, w = _input_shape(input_size)
    param = next(model.parameters(), None)
    x = torch.randn(1, c, h, w, device=param.device if param is not None else "cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 2 / 1e9  # FlopCounterMode counts a multiply-add as 2 FLOPs
