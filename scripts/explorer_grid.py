"""Precompute the chapter-2 freeze-strategy explorer for the static book page (no kernel needed to read it).

Usage (from the repository root, with the project's environment):
    python scripts/explorer_grid.py            # the full grid (the one the published book shows)
    python scripts/explorer_grid.py --small    # a small grid for development (a few minutes)
    python scripts/explorer_grid.py --estimate # time a few short runs and predict the full grid's cost

Every choice is trained with `utils.explorer.run_strategy` (the function behind the live widget) for several seeds,
recording the per-epoch validation and test accuracy. With a constant learning rate and a fixed seed the first E
epochs of a longer run are exactly an E-epoch run (checked below before the grid starts), so one run of
`max_epochs` fills every epoch choice of a strategy; gradual unfreezing spreads its stages over the total number
of epochs, so each of its epoch choices is a run of its own.

Writes book/_static/explorer/grid.json (and grid.js, the same data for pages opened from disk), and the grid's
size and generation time to bench/results/explorer_grid_<cpu|cuda>.json. Runs on one thread.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import itertools
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "book" / "_static" / "explorer"
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

# The full grid: the live widget's controls, at the values a budget of about an hour of one CPU thread allows
# (`--estimate` predicts about 50 CPU-minutes; bench/README.md has the measured time). Per strategy, the settings
# that change its result (k and the backbone LR multiplier mean nothing for some); the page offers exactly these.
# Fine-tuning the whole network is the costly part: 100 labels per class only for it and for the scratch baseline,
# so the reader can see both catch up with the frozen features when labels are plentiful.
FULL = {
    "datasets": ["digits", "faces"],
    "seeds": [0, 1, 2],
    "max_epochs": 15,
    "strategies": {
        "probe": {"labels_per_class": [5, 10, 20, 50, 100]},
        "top_block": {"labels_per_class": [5, 10, 20, 50, 100], "lr_mult": [0.01, 0.1, 1.0]},
        "top_k": {"k": [2, 3, 5], "labels_per_class": [5, 20], "lr_mult": [0.1, 1.0]},
        "gradual": {"k": [3], "labels_per_class": [5, 20], "lr_mult": [0.1], "epochs": [5, 10, 15]},
        "full": {"labels_per_class": [5, 20, 100], "lr_mult": [0.1, 1.0]},
        "scratch": {"labels_per_class": [5, 20, 100]},
    },
}
# For development and the browser test: every strategy and control, few values, short runs.
SMALL = {
    "datasets": ["digits", "faces"],
    "seeds": [0, 1, 2],
    "max_epochs": 6,
    "strategies": {
        "probe": {"labels_per_class": [5, 20]},
        "top_block": {"labels_per_class": [5, 20], "lr_mult": [0.1, 1.0]},
        "top_k": {"k": [2, 3], "labels_per_class": [5], "lr_mult": [0.1]},
        "gradual": {"k": [3], "labels_per_class": [5], "lr_mult": [0.1], "epochs": [3, 6]},
        "full": {"labels_per_class": [5], "lr_mult": [0.1]},
        "scratch": {"labels_per_class": [5]},
    },
}


def settings(grid: dict):
    """(strategy, dataset, labels_per_class, k, lr_mult, epochs) of every run the grid needs (seeds apart)."""
    from utils import explorer

    for strategy, axes in grid["strategies"].items():
        fixed_k = {"probe": 0, "top_block": 1, "full": None, "scratch": None}  # None: all blocks
        ks = axes.get("k", [fixed_k.get(strategy)])
        lrs = axes.get("lr_mult", [None])  # None: the strategy has no backbone weights at a separate rate
        epochs = axes.get("epochs", [grid["max_epochs"]])
        for dataset, labels, k, lr_mult, e in itertools.product(grid["datasets"], axes["labels_per_class"], ks, lrs, epochs):
            yield {"strategy": strategy, "dataset": dataset, "labels_per_class": labels, "k": k, "lr_mult": lr_mult,
                   "epochs": e, "label": explorer.STRATEGIES[strategy]}


def n_train(dataset: str, labels_per_class: int) -> int:
    """How many training images `labels_per_class` gives (faces has fewer than 100 per class)."""
    from utils import explorer
    from utils.data import subsample_per_class

    d = explorer.DEFAULTS
    pool = explorer.load_splits(dataset, d["image_size"], d["val_per_class"], d["test_per_class"])[0]
    return len(subsample_per_class(pool.labels.numpy(), labels_per_class))


def run(s: dict, seed: int, epochs: int | None = None) -> dict:
    from utils import explorer

    return explorer.run_strategy(s["strategy"], k=s["k"] or None, lr_mult=s["lr_mult"], labels_per_class=s["labels_per_class"],
                                 epochs=epochs or s["epochs"], dataset=s["dataset"], seed=seed, progress=False)


def check_prefix_property() -> None:
    """The premise of reusing one long run for every shorter epoch choice, tested on cheap runs."""
    for strategy in ("probe", "top_block", "top_k"):
        s = {"strategy": strategy, "dataset": "faces", "labels_per_class": 5, "k": 2 if strategy == "top_k" else None,
             "lr_mult": 0.1}
        long, short = run(s, seed=1, epochs=4), run(s, seed=1, epochs=2)
        assert long["val_curve"][:2] == short["val_curve"] and long["test_curve"][:2] == short["test_curve"], (
            f"{strategy}: the first 2 epochs of a 4-epoch run differ from a 2-epoch run; the grid cannot reuse runs")
    print("checked: the first epochs of a longer run equal a shorter run (probe, top block, top k)", flush=True)


def epoch_cpu_seconds(r: dict) -> list[float]:
    """CPU seconds of training + validation per epoch: each epoch's share of the run's wall time, applied to the
    run's CPU time (on one thread CPU time is the cost; wall time also counts other jobs on a shared machine)."""
    walls = [row["seconds"] for row in r["history"].rows]
    return [w * r["cpu_seconds"] / r["seconds"] for w in walls]


def summarise(curves: list[list[float]]) -> dict:
    """Per-epoch mean, sample standard deviation, min and max over seeds."""
    by_epoch = list(zip(*curves))
    r4 = lambda xs: [round(x, 4) for x in xs]
    return {"mean": r4(statistics.fmean(v) for v in by_epoch),
            "sd": r4(statistics.stdev(v) if len(v) > 1 else 0.0 for v in by_epoch),
            "min": r4(min(v) for v in by_epoch), "max": r4(max(v) for v in by_epoch)}


def generate(grid: dict, small: bool) -> dict:
    import torch

    from utils import explorer

    torch.set_num_threads(1)
    t0, cpu_start = time.perf_counter(), time.process_time()
    check_prefix_property()
    todo = list(settings(grid))
    n_runs = len(todo) * len(grid["seeds"])
    print(f"{len(todo)} settings x {len(grid['seeds'])} seeds = {n_runs} runs", flush=True)
    records, done = [], 0
    for s in todo:
        per_seed = []
        for seed in grid["seeds"]:
            cpu0 = time.process_time()
            r = run(s, seed)
            r["cpu_seconds"] = time.process_time() - cpu0
            done += 1
            per_seed.append(r)
            print(f"[{done}/{n_runs}] {s['strategy']} {s['dataset']} {s['labels_per_class']}/class k={r['k']} "
                  f"lr_mult={s['lr_mult']} epochs={s['epochs']} seed={seed}: val {r['val_acc']:.3f} test {r['test_acc']:.3f} "
                  f"({r['cpu_seconds']:.1f} CPU s)", flush=True)
        val, test = [r["val_curve"] for r in per_seed], [r["test_curve"] for r in per_seed]
        assert all(len(c) == s["epochs"] for c in val + test), "a run returned a curve of the wrong length"
        records.append({**s, "k": per_seed[0]["k"], "n_train": n_train(s["dataset"], s["labels_per_class"]),
                        "trainable_params": per_seed[0]["trainable_params"], "seeds": grid["seeds"],
                        "val": [[round(x, 4) for x in c] for c in val], "test": [[round(x, 4) for x in c] for c in test],
                        "val_summary": summarise(val), "test_summary": summarise(test),
                        "epoch_seconds": [round(statistics.fmean(v), 3) for v in zip(*map(epoch_cpu_seconds, per_seed))],
                        "run_cpu_seconds": [round(r["cpu_seconds"], 2) for r in per_seed]})
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu_start
    strategies = {}
    for name in (s for s in explorer.STRATEGIES if s in grid["strategies"]):  # the live widget's order
        axes, mine = grid["strategies"][name], [r for r in records if r["strategy"] == name]
        strategies[name] = {
            "label": explorer.STRATEGIES[name], "prefix_epochs": "epochs" not in axes,
            "axes": {"dataset": grid["datasets"], "labels_per_class": axes["labels_per_class"],
                     "k": sorted({r["k"] for r in mine}), "lr_mult": axes.get("lr_mult", [None]),
                     "epochs": axes.get("epochs", list(range(1, grid["max_epochs"] + 1)))}}
    d = explorer.DEFAULTS
    return {"version": 1, "small": small, "max_epochs": grid["max_epochs"], "seeds": grid["seeds"],
            "strategies": strategies, "runs": records,
            "defaults": {"strategy": "probe", "dataset": d["dataset"], "labels_per_class": d["labels_per_class"],
                         "epochs": d["epochs"], "k": d["k"], "lr_mult": d["lr_mult"]},
            "split": {"image_size": d["image_size"], "val_per_class": d["val_per_class"],
                      "test_per_class": d["test_per_class"], "head_lr": d["lr"], "batch_size": d["batch_size"]},
            "generated": {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "seconds": round(seconds, 1),
                          "cpu_seconds": round(cpu_seconds, 1),
                          "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                          "command": "python scripts/explorer_grid.py" + (" --small" if small else "")}}


def write(data: dict, out: Path) -> tuple[Path, int]:
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, separators=(",", ":"))
    out.write_text(text + "\n")
    # The same data as a script, for a page opened from disk (file://), where browsers refuse to fetch JSON.
    out.with_suffix(".js").write_text(f"window.STATIC_EXPLORER_GRIDS=window.STATIC_EXPLORER_GRIDS||{{}};"
                                      f"window.STATIC_EXPLORER_GRIDS[{json.dumps(out.name)}]={text};\n")
    return out, len(text.encode())


def estimate(grid: dict) -> dict:
    """Predict the grid's CPU time from 1- and 3-epoch runs of each distinct (strategy, k, dataset, labels) (seed 0).

    Gradual unfreezing is costed like training all its k blocks every epoch (its early stages are cheaper).
    """
    import torch

    torch.set_num_threads(1)
    todo = list(settings(grid))
    kind = lambda s: (s["strategy"], s["k"], s["dataset"], s["labels_per_class"])
    costs = {}
    for s in {kind(s): s for s in todo}.values():
        run(s, 0, epochs=1)  # warm-up: builds this cut's activation cache if it is missing
        t = time.process_time()
        run(s, 0, epochs=1)
        t1 = time.process_time() - t
        t = time.process_time()
        run(s, 0, epochs=3)
        per_epoch = max((time.process_time() - t - t1) / 2, 0.0)
        costs[kind(s)] = (max(t1 - per_epoch, 0.0), per_epoch)
        print(f"{kind(s)}: setup {costs[kind(s)][0]:.2f} s, {per_epoch:.2f} s/epoch", flush=True)
    cost = lambda s: len(grid["seeds"]) * (costs[kind(s)][0] + costs[kind(s)][1] * s["epochs"])
    return {"settings": len(todo), "runs": len(todo) * len(grid["seeds"]),
            "estimated_seconds": round(sum(map(cost, todo)), 1),
            "by_strategy_s": {name: round(sum(cost(s) for s in todo if s["strategy"] == name), 1) for name in grid["strategies"]}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="the small development grid")
    p.add_argument("--estimate", action="store_true", help="only predict the full grid's cost from short timed runs")
    p.add_argument("--out", type=Path, default=OUT / "grid.json")
    args = p.parse_args()
    from benchlib import RESULTS, device_kind, hardware, save_results

    results = {}
    if args.estimate:
        est = estimate(FULL)
        print(f"full grid: {est['runs']} runs, estimated {est['estimated_seconds'] / 60:.1f} CPU-minutes on one thread")
        results["full_estimate"] = {**est, "hardware": hardware(), "date": time.strftime("%Y-%m-%d %H:%M")}
    else:
        grid = SMALL if args.small else FULL
        data = generate(grid, args.small)
        out, size = write(data, args.out)
        prefix = lambda r: data["strategies"][r["strategy"]]["prefix_epochs"]
        summary = {"settings": len(data["runs"]), "seeds": len(grid["seeds"]), "runs": len(data["runs"]) * len(grid["seeds"]),
                   "choices": sum(data["max_epochs"] if prefix(r) else 1 for r in data["runs"]),
                   "max_epochs": grid["max_epochs"], "seconds": data["generated"]["seconds"],
                   "cpu_seconds": data["generated"]["cpu_seconds"], "json_bytes": size,
                   "file": str(out.relative_to(ROOT)), "hardware": hardware(), "date": data["generated"]["date"]}
        print(f"wrote {out.relative_to(ROOT)} ({size / 1024:.0f} KiB): {summary['choices']} choices from "
              f"{summary['runs']} runs in {summary['cpu_seconds'] / 60:.1f} CPU-minutes ({summary['seconds'] / 60:.1f} min wall)")
        results["small" if args.small else "full"] = summary
    path = RESULTS / f"explorer_grid_{device_kind()}.json"  # keep the other grids' entries
    old = json.loads(path.read_text()) if path.exists() else {}
    kept = {k: old[k] for k in ("small", "full", "full_estimate") if k in old and k not in results}
    save_results("explorer_grid", {"script": "scripts/explorer_grid.py", **kept, **results})


if __name__ == "__main__":
    main()
