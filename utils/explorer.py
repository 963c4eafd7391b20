"""The freeze-strategy explorer: train a probe, the top blocks, or everything on the same split, and compare runs.

Every strategy trains `features.tail(model, k)` (the last k blocks + head) on the activations entering those
blocks, read from the on-disk cache, so a probe or top-block run takes a second or two on a laptop CPU. Full
fine-tuning (and the from-scratch baseline) uses k = all blocks, i.e. the whole network on the images.
`run_strategy` is the plain-function entry point; `explorer_widget` wraps it in ipywidgets controls.
"""
from __future__ import annotations

import copy
import time
from functools import lru_cache

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from . import features
from .data import lfw_faces, mnist_digits, subsample_per_class
from .device import get_device, seed_everything
from .freeze import backbone_blocks, count_parameters, freeze
from .models import create_backbone, replace_head
from .train import History, evaluate, fit

__all__ = ["STRATEGIES", "DATASETS", "DEFAULTS", "load_splits", "run_strategy", "default_comparison", "runs_table",
           "plot_runs", "explorer_widget"]

# Order matters: bench/bench_explorer.py times the first three (probe, top block, full fine-tune).
STRATEGIES = {"probe": "linear probe", "top_block": "fine-tune the top block", "full": "full fine-tune",
              "top_k": "fine-tune the top k blocks", "gradual": "gradual unfreezing", "scratch": "from scratch"}
DATASETS = {"digits": mnist_digits, "faces": lfw_faces}
DEFAULTS = {"dataset": "digits", "image_size": 32, "labels_per_class": 20, "epochs": 5, "k": 3, "lr": 1e-2,
            "lr_mult": 0.1, "batch_size": 16, "val_per_class": 20, "test_per_class": 30}
POOL_PER_CLASS = 100  # train examples per class whose activations are cached once; labels_per_class picks from them
CACHED_CUTS = (0, 1, 2, 3)  # small tensors at the top of the network: cached for the whole pool at once


@lru_cache(maxsize=4)
def _pretrained(pretrained: bool = True) -> nn.Module:
    seed_everything(0)
    return create_backbone("efficientnet_lite0", pretrained=pretrained).eval()


@lru_cache(maxsize=8)
def load_splits(dataset: str = "digits", image_size: int = 32, val_per_class: int = 20, test_per_class: int = 30):
    """(train pool, val, test) datasets: at most POOL_PER_CLASS / val / test examples per class, fixed by the seed."""
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}.")
    caps = {"train": POOL_PER_CLASS, "val": val_per_class, "test": test_per_class}
    out = []
    for split, cap in caps.items():
        data = DATASETS[dataset](split, image_size)
        out.append(data.subset(subsample_per_class(data.labels.numpy(), cap)))
    return tuple(out)


def _check(strategy: str, k: int | None, labels_per_class: int, epochs: int, lr_mult: float, n_blocks: int) -> int:
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}.")
    if not isinstance(labels_per_class, int) or not 1 <= labels_per_class <= POOL_PER_CLASS:
        raise ValueError(f"labels_per_class must be an integer from 1 to {POOL_PER_CLASS}, got {labels_per_class!r}.")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}.")
    if not lr_mult > 0:
        raise ValueError(f"lr_mult (backbone learning rate / head learning rate) must be > 0, got {lr_mult!r}.")
    if strategy in ("full", "scratch"):
        return n_blocks
    if strategy in ("probe", "top_block"):
        return {"probe": 0, "top_block": 1}[strategy]
    k = DEFAULTS["k"] if k is None else k
    if not isinstance(k, int) or not 1 <= k <= n_blocks:
        raise ValueError(f"k (blocks to unfreeze) must be an integer from 1 to {n_blocks} for {strategy!r}, got {k!r}.")
    return k


def _inputs(model: nn.Module, data, k: int, name: str, progress: bool) -> torch.Tensor:
    """What enters the trainable tail: normalised images (k = all), or cached activations."""
    n = len(backbone_blocks(model))
    if k == n:
        return features.cached_activations(model, data, (n,), name, progress=progress)[n]
    ks = CACHED_CUTS if k in CACHED_CUTS else (k,)
    return features.cached_activations(model, data, ks, name, progress=progress)[k]


def _optimizer(net: nn.Module, head: nn.Module, lr: float, lr_mult: float) -> torch.optim.Optimizer:
    """AdamW with the head at `lr` and the trainable backbone weights at `lr * lr_mult` (discriminative LRs)."""
    head_ids = {id(p) for p in head.parameters()}
    body = [p for p in net.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [{"params": list(head.parameters()), "lr": lr}] + ([{"params": body, "lr": lr * lr_mult}] if body else [])
    return torch.optim.AdamW(groups, weight_decay=0.01)


def _open(net: features.Tail, n_open: int) -> None:
    """Make the head and the top `n_open` blocks of a tail trainable, the rest frozen."""
    freeze(net)
    net.head.requires_grad_(True)
    for block in list(net.blocks)[len(net.blocks) - n_open:] if n_open else []:
        block.requires_grad_(True)


def _stages(epochs: int, k: int) -> list[tuple[int, int]]:
    """Gradual unfreezing schedule: (blocks open, epochs) — head alone first, then one more block per stage."""
    n_stages = min(k + 1, epochs)
    opens = np.linspace(0, k, n_stages).round().astype(int)
    per = np.diff(np.linspace(0, epochs, n_stages + 1).round().astype(int))
    return [(int(o), int(e)) for o, e in zip(opens, per) if e > 0]


def run_strategy(strategy: str, k: int | None = None, lr_mult: float | None = None, labels_per_class: int | None = None,
                 epochs: int | None = None, dataset: str | None = None, lr: float | None = None, seed: int = 0,
                 progress: bool = True, device: torch.device | None = None) -> dict:
    """Train one strategy on the explorer's fixed split; returns settings, accuracies, trainable params and seconds."""
    d = DEFAULTS
    pick = lambda value, key: d[key] if value is None else value  # noqa: E731  (0 is a value, not "default")
    dataset, lr_mult, lr = pick(dataset, "dataset"), pick(lr_mult, "lr_mult"), pick(lr, "lr")
    labels_per_class, epochs = pick(labels_per_class, "labels_per_class"), pick(epochs, "epochs")
    if not lr > 0:
        raise ValueError(f"lr (the head's learning rate) must be > 0, got {lr!r}.")
    lr_mult = 1.0 if strategy == "scratch" else lr_mult  # nothing pretrained to protect: one learning rate
    t0 = time.perf_counter()
    base = _pretrained(strategy != "scratch")
    k = _check(strategy, k, labels_per_class, epochs, lr_mult, len(backbone_blocks(base)))
    pool, val, test = load_splits(dataset, d["image_size"], d["val_per_class"], d["test_per_class"])
    rows = subsample_per_class(pool.labels.numpy(), labels_per_class)
    name = f"{dataset}-{d['image_size']}px"
    x_tr = _inputs(base, pool, k, f"{name}-train", progress)[torch.as_tensor(rows)]
    x_va, x_te = _inputs(base, val, k, f"{name}-val", progress), _inputs(base, test, k, f"{name}-test", progress)
    seed_everything(seed)
    model = replace_head(copy.deepcopy(base), len(pool.classes))
    device = device or get_device()
    net = features.tail(model, k).to(device)
    gen = torch.Generator().manual_seed(seed)
    train = DataLoader(TensorDataset(x_tr, pool.labels[rows]), d["batch_size"], shuffle=True, generator=gen)
    val_dl = DataLoader(TensorDataset(x_va, val.labels), 256)
    label = STRATEGIES[strategy] + (f" (k={k})" if strategy in ("top_k", "gradual") else "")
    history = History(label)
    stages = _stages(epochs, k) if strategy == "gradual" else [(k, epochs)]
    test_dl, test_curve = DataLoader(TensorDataset(x_te, test.labels), 256), []
    bar = tqdm(total=epochs, desc=label, unit="epoch", disable=not progress, leave=False)
    for n_open, n_epochs in stages:
        _open(net, n_open)
        opt = _optimizer(net, net.head, lr, lr_mult)
        for _ in range(n_epochs):  # one epoch per call (same optimizer, same shuffling) to score the test set each epoch
            fit(net, train, val_dl, 1, opt, device=device, label=label, progress=False, history=history)
            test_curve.append(evaluate(net, test_dl, device)["acc"])
            bar.update()
    bar.close()
    test_acc = test_curve[-1]
    _open(net, k)
    return {"strategy": strategy, "label": label, "dataset": dataset, "k": k, "lr_mult": lr_mult,
            "labels_per_class": labels_per_class, "epochs": epochs, "val_acc": history.last["val_acc"],
            "test_acc": test_acc, "trainable_params": count_parameters(net).trainable,
            "seconds": time.perf_counter() - t0, "val_curve": history["val_acc"], "test_curve": test_curve,
            "history": history}


def default_comparison(strategies=("probe", "top_block", "top_k", "gradual", "full", "scratch"), **settings) -> list[dict]:
    """The explorer's default runs, one per strategy with DEFAULTS: the static figure shown beside the widget."""
    return [run_strategy(s, **settings) for s in strategies]


def runs_table(runs: list[dict]):
    """One row per run: strategy, settings, val/test accuracy, trainable parameters, seconds."""
    import pandas as pd

    cols = ["label", "dataset", "labels_per_class", "epochs", "lr_mult", "val_acc", "test_acc", "trainable_params", "seconds"]
    df = pd.DataFrame([{c: r[c] for c in cols} for r in runs], columns=cols)
    return df.rename(columns={"label": "strategy", "labels_per_class": "labels/class"}).round(3)


def plot_runs(runs: list[dict], ax=None):
    """Validation-accuracy curves of several runs, overlaid on one axis."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    for i, r in enumerate(runs):
        curve = r["val_curve"]
        ax.plot(range(1, len(curve) + 1), curve, marker="o", label=f"{i + 1}. {r['label']}, {r['labels_per_class']}/class")
    ax.set(xlabel="epoch", ylabel="validation accuracy", title="freeze strategies on the same split")
    ax.grid(alpha=0.3)
    if runs:
        ax.legend(fontsize=8)
    return ax


def explorer_widget(progress: bool = True):
    """Controls + Run/Clear buttons; every run is overlaid on the previous ones (curves and a table)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    n = len(backbone_blocks(_pretrained(True)))
    style = {"description_width": "150px"}
    c = {"strategy": widgets.Dropdown(options=[(v, s) for s, v in STRATEGIES.items()], value="probe",
                                      description="strategy", style=style),
         "k": widgets.IntSlider(value=DEFAULTS["k"], min=1, max=n, description="blocks (top k / gradual)", style=style),
         "lr_mult": widgets.FloatLogSlider(value=DEFAULTS["lr_mult"], base=10, min=-3, max=0, description="backbone LR ×", style=style),
         "labels_per_class": widgets.Dropdown(options=[5, 10, 20, 50, 100], value=DEFAULTS["labels_per_class"],
                                              description="labels per class", style=style),
         "epochs": widgets.IntSlider(value=DEFAULTS["epochs"], min=1, max=15, description="epochs", style=style),
         "dataset": widgets.Dropdown(options=list(DATASETS), value=DEFAULTS["dataset"], description="dataset", style=style)}
    run_b, clear_b = widgets.Button(description="Run", button_style="primary"), widgets.Button(description="Clear")
    log, plot_out, table_out = widgets.Output(), widgets.Output(), widgets.Output()
    box = widgets.VBox([widgets.HBox([widgets.VBox(list(c.values())), widgets.VBox([run_b, clear_b])]), log, plot_out, table_out])
    box.runs, box.controls, box.run_button, box.clear_button = [], c, run_b, clear_b

    def redraw():
        for out in (plot_out, table_out):
            out.clear_output(wait=True)
        if box.runs:
            with plot_out:
                plot_runs(box.runs)
                plt.show()
            with table_out:
                display(runs_table(box.runs))

    def on_run(_):
        settings = {name: w.value for name, w in c.items()}
        log.clear_output()
        with log:
            try:
                box.runs.append(run_strategy(settings.pop("strategy"), progress=progress, **settings))
            except ValueError as err:
                print(f"Not run: {err}")
        redraw()

    def on_clear(_):
        box.runs.clear()
        log.clear_output()
        redraw()

    run_b.on_click(on_run)
    clear_b.on_click(on_clear)
    return box
