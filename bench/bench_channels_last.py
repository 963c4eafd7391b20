"""Training a CNN on a CPU in NCHW (PyTorch's default layout) vs channels-last (NHWC, what `utils.fit` does there).

Usage: OMP_NUM_THREADS=1 python bench/bench_channels_last.py [--seeds 2] [--repeats 2]

`utils.fit(channels_last="auto")` trains a convolutional model on a CPU with its weights and activations in NHWC
and hands it back in its own layout. oneDNN's convolutions, depthwise convolutions and max-pooling are faster in
that layout. This script trains the book's three CNN workloads both ways, alternating (a small CNN from scratch,
EfficientNet-Lite0's top two groups on cached activations, and all of Lite0 on 64 px images), and reports the
speed-up of training (`fit` alone; evaluation is not timed). The layout changes the summation order, and training amplifies rounding, so the script reports both
mean accuracies and checks they agree within two points: the ratio compares the same work.
Writes bench/results/bench_channels_last_<cpu|cuda>.json.
"""
from __future__ import annotations

import argparse
import os

from benchlib import digit_workloads, save_results, table, timed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=2, help="runs per workload and layout (one per seed)")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    import torch

    import utils
    from utils import features

    device = torch.device("cpu")
    w = digit_workloads()
    digits, small, test_loader, backbone, k, acts = (w[n] for n in ("digits", "small", "test_loader", "backbone", "k",
                                                                    "acts"))
    digits64 = {s: utils.mnist_digits(s, 64, normalize=False) for s in ("train", "test")}

    def scratch(seed: int, layout) -> tuple[float, float]:  # chapter 4's baseline: a small CNN on 100 digits, batch 16
        rows = utils.subsample_per_class(digits["train"].labels, 10, seed=seed)
        net = utils.small_cnn(10, input_size=32, seed=seed)
        t: dict = {}
        with timed(t, "s"):
            loader = utils.make_loader(digits["train"].subset(rows).with_options(normalize=small), 16, shuffle=True,
                                       seed=seed)
            utils.fit(net, loader, epochs=20, lr=3e-3, schedule="cosine", progress=False, device=device,
                      channels_last=layout)
        return t["s"], utils.evaluate(net, test_loader)["acc"]

    def top_groups(seed: int, layout) -> tuple[float, float]:  # chapters 3, 6 and 13: Lite0's top groups on cached activations
        rows = utils.subsample_per_class(digits["train"].labels, 20, seed=seed)
        utils.seed_everything(seed)
        model = utils.replace_head(utils.create_backbone(), 10)
        utils.unfreeze_last(model, k)
        tail = features.tail(model, k)
        t: dict = {}
        with timed(t, "s"):
            loader = utils.make_loader((acts["train"][rows], digits["train"].labels[rows]), 32, shuffle=True, seed=seed)
            utils.fit(tail, loader, epochs=10, lr=1e-3, progress=False, device=device, channels_last=layout)
        return t["s"], utils.evaluate(tail, utils.make_loader((acts["test"], digits["test"].labels), 500))["acc"]

    def full(seed: int, layout) -> tuple[float, float]:  # chapters 2 and 5: every layer of Lite0 at 64 px
        rows = utils.subsample_per_class(digits64["train"].labels, 10, seed=seed)
        utils.seed_everything(seed)
        model = utils.replace_head(utils.create_backbone(), 10)
        data = digits64["train"].subset(rows).with_options(normalize=model)
        t: dict = {}
        with timed(t, "s"):
            utils.fit(model, utils.make_loader(data, 25, shuffle=True, seed=seed), epochs=3, lr=1e-3, progress=False,
                      device=device, channels_last=layout)
        return t["s"], utils.evaluate(model, utils.make_loader(digits64["test"].with_options(normalize=model), 250))["acc"]

    workloads = {"small CNN from scratch, 32 px": scratch, "Lite0 top 2 groups, cached": top_groups,
                 "Lite0 every layer, 64 px": full}
    layouts = {"NCHW": False, "channels-last": "auto"}
    times = {(w, m): [] for w in workloads for m in layouts}
    accs: dict = {}
    for _ in range(args.repeats):
        for name, fn in workloads.items():
            for mode, layout in layouts.items():
                out = [fn(s, layout) for s in range(args.seeds)]  # (training seconds, test accuracy) per seed
                accs[name, mode] = [acc for _, acc in out]
                times[name, mode].append(sum(sec for sec, _ in out))
    rows, ratios = [], {}
    for name in workloads:
        a, b = accs[name, "NCHW"], accs[name, "channels-last"]
        gap = abs(sum(a) / len(a) - sum(b) / len(b))
        assert gap <= 0.02, f"{name}: the two layouts trained different recipes (accuracies {a} vs {b})"
        best = {m: min(times[name, m]) for m in layouts}
        ratios[name] = round(best["NCHW"] / best["channels-last"], 2)
        rows.append({"workload": name, "NCHW, s": round(best["NCHW"], 1), "channels-last, s": round(best["channels-last"], 1),
                     "speed-up": ratios[name], "mean acc, NCHW": round(sum(a) / len(a), 3),
                     "mean acc, channels-last": round(sum(b) / len(b), 3)})
    print(table(rows, list(rows[0])))
    save_results("bench_channels_last", {
        "setup": {**vars(args), "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()},
        "seconds": {f"{n} | {m}": [round(x, 2) for x in v] for (n, m), v in times.items()},
        "ratios": {f"{n}: NCHW / channels-last": r for n, r in ratios.items()},
        "accuracies": {f"{n} | {m}": v for (n, m), v in accs.items()}})


if __name__ == "__main__":
    main()
