"""Seeded runs in one process with every thread vs side by side in one-thread workers (`evidence.map_runs`).

Usage: OMP_NUM_THREADS=2 python bench/bench_workers.py [--seeds 4] [--repeats 2]

The book's chapters train many small models: a small CNN from scratch, the top groups of EfficientNet-Lite0 on
cached activations. Such models use a second thread poorly (their ops are too small to split well), so two
one-thread processes train two seeds in much less than twice the time of one. This script trains the same seeded runs
both ways, alternating. The thread count changes the summation order, and training amplifies such rounding, so the
two ways end with slightly different models: the script reports both mean accuracies and checks they agree within
two points (the same recipe), so the ratio compares the same work.
Writes bench/results/bench_workers_<cpu|cuda>.json.
"""
from __future__ import annotations

import argparse
import os

from benchlib import digit_workloads, save_results, table, timed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=4, help="runs per workload (one per seed)")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    import torch

    import utils
    from utils import evidence, features

    threads = torch.get_num_threads()
    if threads < 2:
        raise SystemExit("Give torch at least two threads (e.g. OMP_NUM_THREADS=2): with one there is nothing to compare.")
    w = digit_workloads()
    digits, small, test_loader, backbone, k, acts = (w[n] for n in ("digits", "small", "test_loader", "backbone", "k",
                                                                    "acts"))

    def scratch(seed: int) -> float:  # chapter 4's baseline: a small CNN on 100 digits, 40 epochs of batch 16
        rows = utils.subsample_per_class(digits["train"].labels, 10, seed=seed)
        utils.seed_everything(seed)
        net = utils.small_cnn(10, input_size=32, seed=seed)
        utils.fit(net, utils.make_loader(digits["train"].subset(rows).with_options(normalize=small), 16, shuffle=True,
                                         seed=seed), epochs=40,
                  lr=3e-3, schedule="cosine", progress=False)
        return utils.evaluate(net, test_loader)["acc"]

    def top_groups(seed: int) -> float:  # chapters 3 and 6: the top two groups of Lite0 on cached activations
        rows = utils.subsample_per_class(digits["train"].labels, 20, seed=seed)
        utils.seed_everything(seed)
        model = utils.replace_head(utils.create_backbone(), 10)
        utils.unfreeze_last(model, k)
        tail = features.tail(model, k)
        utils.fit(tail, utils.make_loader((acts["train"][rows], digits["train"].labels[rows]), 32, shuffle=True,
                                          seed=seed), epochs=20, lr=1e-3, progress=False)
        return utils.evaluate(tail, utils.make_loader((acts["test"], digits["test"].labels), 500))["acc"]

    workloads = {"small CNN from scratch": scratch, "Lite0 top 2 groups, cached": top_groups}
    jobs = [{"seed": s} for s in range(args.seeds)]
    times = {(w, mode): [] for w in workloads for mode in ("one process", "workers")}
    accs = {}
    for _ in range(args.repeats):
        for name, fn in workloads.items():
            for mode, workers in (("one process", 1), ("workers", threads)):
                t: dict = {}
                with timed(t, "s"):
                    accs[name, mode] = evidence.map_runs(fn, jobs, workers=workers, progress=False)
                times[name, mode].append(t["s"])
    rows, ratios = [], {}
    for name in workloads:
        a, b = accs[name, "one process"], accs[name, "workers"]
        gap = abs(sum(a) / len(a) - sum(b) / len(b))
        assert gap <= 0.02, f"{name}: the two ways trained different recipes (accuracies {a} vs {b})"
        best = {mode: min(times[name, mode]) for mode in ("one process", "workers")}
        ratios[name] = round(best["one process"] / best["workers"], 2)
        rows.append({"workload": name, "one process, s": round(best["one process"], 1),
                     f"{threads} workers, s": round(best["workers"], 1), "speed-up": ratios[name],
                     "mean acc, one process": round(sum(a) / len(a), 3), "mean acc, workers": round(sum(b) / len(b), 3)})
    print(table(rows, list(rows[0])))
    save_results("bench_workers", {
        "setup": {**vars(args), "torch_threads": threads, "workers": threads, "cpu_count": os.cpu_count()},
        "seconds": {f"{n} | {m}": [round(x, 2) for x in v] for (n, m), v in times.items()},
        "ratios": {f"{n}: one process / workers": r for n, r in ratios.items()},
        "accuracies": {f"{n} | {m}": v for (n, m), v in accs.items()}})


if __name__ == "__main__":
    main()
