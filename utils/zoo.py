"""Choosing a backbone: torchvision's model zoo as a table (accuracy, compute, size), its Pareto front, and latency
measured with PyTorch's own benchmark timer (`torch.utils.benchmark`)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .checks import check_int, check_model, check_number

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


def _front_step(front_x: "np.ndarray", front_y: "np.ndarray"):
    """The Pareto front as a step function in display coordinates: the best score among points at most this costly."""
    import numpy as np

    def f(x: float) -> float:
        i = np.searchsorted(front_x, x, side="right") - 1
        return -np.inf if i < 0 else float(front_y[i])
    return f


def _marker_circles(ax) -> "np.ndarray":
    """(x, y, radius) in display pixels of every scatter marker on the axes, so labels can keep off them."""
    import numpy as np

    rows = []
    for coll in ax.collections:
        offsets, sizes = coll.get_offsets(), coll.get_sizes()
        if len(offsets) == 0 or len(sizes) == 0:
            continue
        centres = coll.get_offset_transform().transform(offsets)
        radii = np.sqrt(np.broadcast_to(sizes, (len(offsets),))) / 2 * ax.figure.dpi / 72
        rows.append(np.column_stack([centres, radii]))
    return np.concatenate(rows) if rows else np.zeros((0, 3))


def _hits_a_marker(bb, circles: "np.ndarray") -> bool:
    """Whether a box (display pixels) intersects any marker circle."""
    import numpy as np

    if not len(circles):
        return False
    nx = np.clip(circles[:, 0], bb.x0, bb.x1)
    ny = np.clip(circles[:, 1], bb.y0, bb.y1)
    return bool(((circles[:, 0] - nx) ** 2 + (circles[:, 1] - ny) ** 2 < circles[:, 2] ** 2).any())


def _place_front_labels(ax, front: "pandas.DataFrame", cost: str = "gflops", score: str = "acc1", label: str = "model",
                       fontsize: float = 7, pad: float = 2.0) -> list:
    """Label each front point in the empty region above the front's staircase, where no data point can lie (nothing
    is cheaper and more accurate than a front point), moving a label up (with a leader line) until it overlaps no other
    label or marker and stays inside the axes. Returns the text artists."""
    import numpy as np

    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    order = front.sort_values(cost)
    data_xy = np.column_stack([order[cost].to_numpy(float), order[score].to_numpy(float)])
    pts = ax.transData.transform(data_xy)
    step = _front_step(pts[:, 0], pts[:, 1])
    box = ax.get_window_extent(renderer)
    circles = _marker_circles(ax)
    placed, texts = [], []
    for (px, py), xy, name in zip(pts, data_xy, order[label].astype(str)):
        chosen = None
        for dy in np.arange(3, 200, 4.0):
            for dx, ha in ((-3, "right"), (3, "left")):
                t = ax.annotate(name, (0, 0), xycoords="figure pixels", xytext=(0, 0), textcoords="offset points",
                                fontsize=fontsize, ha=ha, va="bottom")
                t.xy = (px + dx * fig.dpi / 72, py + dy * fig.dpi / 72)
                bb = t.get_window_extent(renderer).expanded(1.0, 1.0)
                t.remove()
                clear = (bb.y0 > step(bb.x1) + pad and bb.x0 >= box.x0 and bb.x1 <= box.x1 and bb.y1 <= box.y1
                         and not any(bb.overlaps(o) for o in placed) and not _hits_a_marker(bb, circles))
                if clear:
                    chosen = (dx, dy, ha, bb)
                    break
            if chosen:
                break
        if chosen is None:  # no free spot found: label next to the point all the same
            chosen = (3, 3, "left", None)
        dx, dy, ha, bb = chosen
        far = dy > 8
        t = ax.annotate(name, tuple(xy), xytext=(dx, dy),
                        textcoords="offset points", fontsize=fontsize, ha=ha, va="bottom",
                        arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5", "shrinkA": 0, "shrinkB": 2} if far else None)
        if bb is not None:
            placed.append(bb)
        texts.append(t)
    return texts


def plot_zoo(df: "pandas.DataFrame", front: "pandas.DataFrame | None" = None, label_front: bool = True):
    """Accuracy vs compute (log x), marker area growing with parameters, one colour per family, Pareto front as a line;
    front labels sit above the front (where there is no data) without overlapping, the legend outside the axes."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6.5))
    colours = plt.get_cmap("tab20").colors
    for i, (family, group) in enumerate(df.groupby("family", sort=True)):
        ax.scatter(group["gflops"], group["acc1"], s=6 + group["params_m"], color=colours[i % 20], alpha=0.75,
                   edgecolor="white", linewidth=0.5, label=family)
    if front is not None:
        ax.step(front["gflops"], front["acc1"], where="post", color="black", lw=1, zorder=0, label="Pareto front")
        ax.scatter(front["gflops"], front["acc1"], s=10, color="black", zorder=3)
    ax.set(xscale="log", xlabel="GFLOPs per image (torchvision's count, log scale)", ylabel="ImageNet top-1 accuracy (%)",
           title=f"torchvision's {len(df)} ImageNet weight sets: accuracy vs compute\n(marker area grows with parameters)")
    lo, hi = df["gflops"].min(), df["gflops"].max()
    ax.set_xlim(lo / 8, hi * 3)  # room to the left of the cheapest point and above the front for the labels
    ax.set_ylim(df["acc1"].min() - 2, df["acc1"].max() + 4)
    ax.grid(alpha=0.3, which="both")
    legend = ax.legend(fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    for handle in legend.legend_handles:  # one marker size in the legend, whatever the family's models weigh
        if hasattr(handle, "set_sizes"):
            handle.set_sizes([25])
    fig.tight_layout()
    if front is not None and label_front:
        _place_front_labels(ax, front)
    return fig


@dataclass(frozen=True)
class Latency:
    """Time of one forward pass of a batch as `torch.utils.benchmark` measured it (median and interquartile range over
    its timed blocks), the throughput the median implies, and the conditions (threads, device, forward passes timed)."""

    batch_size: int
    input_size: int | tuple[int, int]
    ms_per_batch: float
    ms_iqr: float
    images_per_s: float
    runs: int
    threads: int
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


def _quiet_benchmark():
    """`torch.utils.benchmark`, imported without cpp_extension's "No CUDA runtime is found" warning on CPU machines
    (it prints the local install path into a notebook's output and says nothing the reader can act on)."""
    import logging

    log = logging.getLogger("torch.utils.cpp_extension")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        from torch.utils import benchmark
    finally:
        log.setLevel(level)
    return benchmark


def measure_latency(model: nn.Module, input_size=224, batch_size: int = 1, min_run_time: float = 0.2,
                    warmup: int = 1, num_threads: int | None = None, min_runs: int = 5) -> Latency:
    """Time inference on random input on the model's own device (eval mode, `torch.inference_mode`) with PyTorch's
    benchmark timer, `torch.utils.benchmark.Timer(...).blocked_autorange(min_run_time)`.

    The timer picks a block size that makes its own overhead negligible (running the model while it does: a warm-up),
    times blocks until `min_run_time` seconds have passed, and synchronises the accelerator around each block (CUDA
    calls return before the work is done). `warmup` untimed passes come first. It runs at `num_threads` CPU threads,
    by default the current `torch.get_num_threads()` (the Timer's own default is one thread). A slow model that fits
    fewer than `min_runs` timed blocks into `min_run_time` is timed again for long enough to get them, so its median
    and interquartile range never rest on one or two numbers.
    """
    benchmark = _quiet_benchmark()
    check_model(model)
    c, h, w = _input_shape(input_size)
    _check_positive_int("batch_size", batch_size)
    min_run_time = check_number(min_run_time, "min_run_time", 0, 60, lo_open=True,
                                hint="(seconds of timed runs, e.g. 0.2)")
    _check_positive_int("warmup", warmup, minimum=0)
    _check_positive_int("min_runs", min_runs)
    threads = torch.get_num_threads() if num_threads is None else _check_positive_int("num_threads", num_threads)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.randn(batch_size, c, h, w, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            try:
                model(x)  # one call outside the clock: fails fast, with a clear message, on a wrong input shape
            except RuntimeError as err:
                raise ValueError(f"{type(model).__name__} does not accept input of shape {tuple(x.shape)}: "
                                 f"{str(err).splitlines()[0]}. Check input_size against model.data_config.") from None
            for _ in range(warmup):
                model(x)
            timer = benchmark.Timer(stmt="model(x)", globals={"model": model, "x": x}, num_threads=threads,
                                    label=type(model).__name__, description=f"batch {batch_size} x {c}x{h}x{w}")
            parts = [timer.blocked_autorange(min_run_time=min_run_time)]
            while sum(len(p.raw_times) for p in parts) < min_runs:  # slow blocks: time more of the same size, pool
                parts.append(timer.timeit(number=parts[0].number_per_run))
            runs = sum(p.number_per_run * len(p.raw_times) for p in parts)  # forward passes timed
            m = parts[0] if len(parts) == 1 else benchmark.Measurement.merge(parts)[0]
    finally:
        model.train(was_training)
    return Latency(batch_size, h if h == w else (h, w), 1e3 * m.median, 1e3 * m.iqr, batch_size / m.median, runs,
                   threads, str(device))


def latency_table(models: Mapping[str, nn.Module], settings: Sequence[tuple[int, int]] = ((224, 1),),
                  min_run_time: float = 0.2, warmup: int = 1, num_threads: int | None = None) -> "pandas.DataFrame":
    """`measure_latency` of each model at each (input_size, batch_size) setting, one row per pair, with a progress bar."""
    import pandas as pd
    from .progress import progress_bar

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
    for name, size, bs in progress_bar(jobs, desc="timing", leave=False):
        lat = measure_latency(models[name], size, bs, min_run_time=min_run_time, warmup=warmup, num_threads=num_threads)
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
