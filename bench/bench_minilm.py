"""MiniLM on Rotten Tomatoes: probe on cached embeddings vs full fine-tuning vs LoRA, time per epoch and peak memory.

Usage: python bench/bench_minilm.py [--texts 128] [--epochs 2] [--max-length 48]

Each method runs in its own fresh process (so one method's freed memory cannot hide another's peak):
  probe  encode the texts once with the frozen encoder (cached), then train a linear head on the vectors;
  full   every MiniLM weight trains (AdamW, lr 2e-5);
  lora   rank-8 LoRA adapters on query/value plus the head (utils.bert.add_lora).
Time per epoch is the mean over the epochs; peak memory is the growth over the process's memory after loading the
model (RSS on CPU, allocated memory on CUDA). Writes bench/results/bench_minilm_<cpu|cuda>.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

from benchlib import ROOT, peak_memory, reset_peak_memory, save_results, table

METHODS = ("probe", "full", "lora")


def data(n: int):
    """The first n/2 rotten and n/2 fresh training reviews (balanced, fixed)."""
    import numpy as np

    import utils

    ds = utils.rotten_tomatoes("train")
    labels = ds.labels.numpy()
    idx = np.sort(np.concatenate([np.flatnonzero(labels == c)[: n // 2] for c in (0, 1)]))
    return ds.subset(idx)


def run_probe(args, device) -> dict:
    """Frozen encoder -> cached [CLS] vectors -> linear head trained for `epochs` on the cached vectors."""
    import torch

    import utils
    from utils import bert
    from utils.loaders import make_loader

    ds = data(args.texts)
    tok, enc = utils.load_minilm()
    enc.to(device)
    base = reset_peak_memory(device)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        x = bert.cached_encode(tok, enc, ds.texts, args.max_length, folder=tmp, progress=False).to(device)
    extract = time.perf_counter() - t0
    head = torch.nn.Linear(x.shape[1], 2).to(device)
    loader = make_loader(torch.utils.data.TensorDataset(x, ds.labels.to(device)), 16, shuffle=True, device="cpu")
    hist = utils.fit(head, loader, epochs=args.epochs, device=device, progress=False, amp=False)
    return {"extract_s": round(extract, 2), "epoch_s": round(sum(hist["seconds"]) / len(hist), 4),
            "trainable": sum(p.numel() for p in head.parameters()), "peak_mib": (peak_memory(device) or base) - base}


def run_finetune(args, device, lora: bool) -> dict:
    """Full fine-tuning, or LoRA adapters, trained with utils.fit on tokenised batches."""
    import utils
    from utils import bert

    ds = data(args.texts)
    tok, model = utils.load_minilm(num_labels=2)
    if lora:
        model = bert.add_lora(model, r=8, alpha=16)
    model.to(device)
    base = reset_peak_memory(device)
    loader = bert.text_loader(ds, tok, args.max_length, batch_size=16, shuffle=True, seed=0)
    hist = utils.fit(model, loader, epochs=args.epochs, lr=2e-5 if not lora else 5e-4, device=device, progress=False)
    return {"extract_s": None, "epoch_s": round(sum(hist["seconds"]) / len(hist), 2),
            "trainable": utils.count_parameters(model).trainable, "peak_mib": (peak_memory(device) or base) - base}


def child(args) -> None:
    """Run one method in this (fresh) process and print its result as one JSON line."""
    import utils

    utils.seed_everything(0)
    device = utils.get_device()
    res = run_probe(args, device) if args.method == "probe" else run_finetune(args, device, args.method == "lora")
    print("RESULT " + json.dumps({"method": args.method, "device": str(device), **res}))


def parent(args) -> None:
    rows = []
    for method in METHODS:
        cmd = [sys.executable, __file__, "--method", method, "--texts", str(args.texts), "--epochs", str(args.epochs),
               "--max-length", str(args.max_length)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            sys.exit(f"{method} failed:\n{proc.stderr[-3000:]}")
        out = proc.stdout
        rows.append(json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:]))
        rows[-1]["peak_mib"] = round(rows[-1]["peak_mib"])
    full = next(r for r in rows if r["method"] == "full")
    for r in rows:
        ratio = full["epoch_s"] / max(r["epoch_s"], 1e-9)
        r["epoch_vs_full"] = "1x" if r is full else f"{ratio:.1f}x faster" if ratio < 10 else f"{ratio:.0f}x faster"
    print(table(rows, ["method", "extract_s", "epoch_s", "epoch_vs_full", "trainable", "peak_mib"]))
    save_results("bench_minilm", {"setup": {k: v for k, v in vars(args).items() if k != "method"}, "methods": rows,
                                  "ratios": {f"full/{r['method']} epoch time": round(full["epoch_s"] / max(r["epoch_s"], 1e-9), 1)
                                             for r in rows if r is not full}})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--texts", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--max-length", type=int, default=48)
    p.add_argument("--method", choices=METHODS, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    child(args) if args.method else parent(args)


if __name__ == "__main__":
    main()
