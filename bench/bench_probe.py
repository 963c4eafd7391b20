"""linear_probe with one BLAS thread vs the BLAS default, right after torch work (time ratio, same fitted probe).

Usage: OMP_NUM_THREADS=2 python bench/bench_probe.py [--per-class 100] [--repeats 2]

scikit-learn's L-BFGS fit calls NumPy's BLAS (OpenBLAS) for small matrix products, while torch keeps its own OpenMP
thread pool. With both pools sized to the cores, the two compete right after torch has run (its OpenMP threads
still spinning), and each product waits. `utils.linear_probe` therefore fits under
`threadpoolctl.threadpool_limits(1, "blas")`. This script times the probe both ways, alternating, on the same
features and labels, after the same burst of torch work, and checks that both pick the same C with validation
scores within one example in a hundred (the summation order differs), so the ratio compares the same computation.
Writes bench/results/bench_probe_<cpu|cuda>.json.
"""
from __future__ import annotations

import argparse
import contextlib

from benchlib import save_results, table, timed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-class", type=int, default=100, help="labelled digits per class for the probe")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    import torch
    import threadpoolctl

    import utils

    utils.seed_everything(0)
    backbone = utils.create_backbone("efficientnet_lite0").eval()
    backbone.reset_classifier(0)
    train, val = utils.mnist_digits("train", 64), utils.mnist_digits("val", 64)
    train = train.subset(utils.subsample_per_class(train.labels.numpy(), args.per_class))
    val = val.subset(utils.subsample_per_class(val.labels.numpy(), 30))
    with torch.no_grad():
        ftr, fva = (torch.cat([backbone(utils.normalize(d.images[s:s + 100], backbone.data_config))
                               for s in range(0, len(d), 100)]) for d in (train, val))
    net = utils.small_cnn(10)

    def torch_work():  # what a chapter does just before a probe: some training steps on torch's thread pool
        x = torch.randn(64, 3, 32, 32)
        for _ in range(5):
            net(x).sum().backward()

    real_limits = threadpoolctl.threadpool_limits
    times: dict[str, list[float]] = {"one BLAS thread": [], "BLAS default": []}
    probes = {}
    for _ in range(args.repeats):
        for mode in times:
            # linear_probe imports threadpool_limits when called: a no-op stand-in times the BLAS default
            threadpoolctl.threadpool_limits = real_limits if mode == "one BLAS thread" else (
                lambda limits=None, user_api=None: contextlib.nullcontext())
            torch_work()
            t: dict = {}
            with timed(t, "s"):
                probes[mode] = utils.linear_probe(ftr, train.labels, fva, val.labels, standardize=False)
            times[mode].append(t["s"])
    threadpoolctl.threadpool_limits = real_limits
    a, b = probes["one BLAS thread"], probes["BLAS default"]
    gap = max(abs(a.val_scores[c] - b.val_scores[c]) for c in a.val_scores)  # BLAS sums in another order: rounding
    assert a.c == b.c and gap <= 0.01, f"the two probes differ (C {a.c} vs {b.c}, validation gap {gap}): not the same fit"
    best = {k: min(v) for k, v in times.items()}
    rows = [{"BLAS": k, "best seconds": round(v, 2), "all": [round(x, 2) for x in times[k]]} for k, v in best.items()]
    print(table(rows, ["BLAS", "best seconds", "all"]))
    ratio = best["BLAS default"] / best["one BLAS thread"]
    print(f"BLAS default / one BLAS thread: {ratio:.1f}x (torch threads {torch.get_num_threads()})")
    save_results("bench_probe", {
        "setup": {**vars(args), "features": "EfficientNet-Lite0 pooled, digits 64 px", "train_examples": len(train),
                  "pools": [(i["internal_api"], i["num_threads"]) for i in threadpoolctl.threadpool_info()]},
        "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "ratios": {"blas_default/one_blas_thread": round(ratio, 2)}, "chosen_c": a.c, "largest_validation_score_gap": gap})


if __name__ == "__main__":
    main()
