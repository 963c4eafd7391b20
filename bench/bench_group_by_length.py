"""Training on short reviews: random batches vs length-grouped batches (`group_by_length=True`).

Usage: OMP_NUM_THREADS=1 python bench/bench_group_by_length.py [--seeds 3] [--repeats 3] [--epochs 2]

`utils.bert.text_loader` pads each batch to its longest review. Rotten Tomatoes snippets run from a handful of
tokens to the 64-token cap, so a random batch of 16 is almost half padding. With `group_by_length=True` the loader's
`LengthGroupedSampler` (transformers' `get_length_grouped_indices`, the `Trainer`'s option of the same name)
shuffles, cuts the order into mega-batches of four batches and sorts each by length. This script trains chapter
10's plain fine-tuning both ways on each seed's 128 reviews (64 per class, batches of 16), alternating, and reports
the share of real tokens in the batches and the speed-up of training (`fit` alone). Both runs see the same reviews
for the same number of steps; only the batch mix differs, so the accuracies are reported, not required to agree.
A second workload does the same for chapter 8's word-level BiLSTM (`utils.text.text_loader`; packed sequences, so no
padding is computed, but each batch runs as many time steps as its longest review), for `--lstm-epochs` epochs.
Writes bench/results/bench_group_by_length_<cpu|cuda>.json.
"""
from __future__ import annotations

import argparse
import copy
import os

from benchlib import save_results, table, timed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3, help="runs per batching and repeat (one per seed's draw)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2, help="MiniLM epochs per run (8 steps each)")
    p.add_argument("--lstm-epochs", type=int, default=20, help="word-LSTM epochs per run (8 steps each)")
    args = p.parse_args()
    import numpy as np
    import torch

    import utils
    from utils import bert

    device = torch.device("cpu")
    tok, encoder = utils.load_minilm()
    full = {s: utils.rotten_tomatoes(s) for s in ("train", "test")}
    test = full["test"].subset(utils.subsample_per_class(full["test"].labels, 100, seed=0))
    test = test.subset(np.argsort([len(t) for t in test.texts], kind="stable"))
    test_loader = bert.text_loader(test, tok, 64, batch_size=64)
    trains = {s: full["train"].subset(utils.subsample_per_class(full["train"].labels, 64, seed=s)) for s in range(args.seeds)}

    def run(seed: int, grouped: bool) -> tuple[float, float, float]:
        """(training seconds, share of real tokens in the batches, test accuracy) of one fine-tuning run."""
        utils.seed_everything(seed)
        model = bert.MeanPoolClassifier(copy.deepcopy(encoder), num_labels=2)
        optimizer = utils.make_optimizer(model, lr=3e-3, backbone_mult=5e-5 / 3e-3)
        loader = bert.text_loader(trains[seed], tok, 64, batch_size=16, shuffle=True, seed=seed, group_by_length=grouped)
        mask = [x["attention_mask"] for _ in range(args.epochs) for x, _ in loader]  # the same batches fit will draw
        loader = bert.text_loader(trains[seed], tok, 64, batch_size=16, shuffle=True, seed=seed, group_by_length=grouped)
        t: dict = {}
        with timed(t, "s"):
            utils.fit(model, loader, epochs=args.epochs, optimizer=optimizer, schedule="linear", warmup=0.1,
                      device=device, progress=False)
        real = sum(float(m.sum()) for m in mask) / sum(m.numel() for m in mask)
        return t["s"], real, utils.evaluate(model, test_loader)["acc"]

    from utils.text import LSTMClassifier, Vocab, text_loader

    vocab = Vocab(full["train"].texts, min_freq=2)
    word_test = text_loader(test, vocab, 64, batch_size=256)

    def lstm(seed: int, grouped: bool) -> tuple[float, float, float]:
        """(training seconds, share of time steps that hold a real token, test accuracy) of chapter 8's word BiLSTM."""
        utils.seed_everything(seed)
        model = LSTMClassifier(len(vocab), emb_dim=50, hidden=48, dropout=0.3)
        loader = text_loader(trains[seed], vocab, 64, batch_size=16, shuffle=True, seed=seed, group_by_length=grouped)
        lengths = [l for _ in range(args.lstm_epochs) for (_, l), _ in loader]  # the batches fit will draw
        loader = text_loader(trains[seed], vocab, 64, batch_size=16, shuffle=True, seed=seed, group_by_length=grouped)
        t: dict = {}
        with timed(t, "s"):
            utils.fit(model, loader, epochs=args.lstm_epochs, lr=3e-3, device=device, progress=False)
        real = sum(float(l.sum()) for l in lengths) / sum(len(l) * int(l.max()) for l in lengths)
        return t["s"], real, utils.evaluate(model, word_test)["acc"]

    workloads = {"MiniLM fine-tuning (ch10)": run, "word BiLSTM (ch08)": lstm}
    modes = {"random batches": False, "group_by_length": True}
    times = {(w, m): [] for w in workloads for m in modes}
    fill: dict = {}
    accs: dict = {}
    for _ in range(args.repeats):
        for w, fn in workloads.items():
            for mode, grouped in modes.items():
                out = [fn(s, grouped) for s in range(args.seeds)]
                times[w, mode].append(sum(sec for sec, _, _ in out))
                fill[w, mode] = [real for _, real, _ in out]
                accs[w, mode] = [acc for _, _, acc in out]
    rows, ratios = [], {}
    for w in workloads:
        best = {m: min(times[w, m]) for m in modes}
        ratios[w] = round(best["random batches"] / best["group_by_length"], 2)
        rows += [{"workload": w, "batching": m, "train s (best repeat)": round(best[m], 1),
                  "real tokens": round(float(np.mean(fill[w, m])), 2),
                  "mean test acc": round(float(np.mean(accs[w, m])), 3)} for m in modes]
    print(table(rows, list(rows[0])))
    print("speed-up of training with group_by_length: " + "; ".join(f"{w} {r}x" for w, r in ratios.items()))
    save_results("bench_group_by_length", {
        "setup": {**vars(args), "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                  "reviews per run": len(trains[0]), "test reviews": len(test), "batch_size": 16, "max_length": 64},
        "seconds": {f"{w} | {m}": [round(x, 2) for x in v] for (w, m), v in times.items()},
        "real_token_share": {f"{w} | {m}": [round(x, 3) for x in v] for (w, m), v in fill.items()},
        "accuracies": {f"{w} | {m}": v for (w, m), v in accs.items()},
        "ratios": {f"{w}: random batches / group_by_length": r for w, r in ratios.items()}})


if __name__ == "__main__":
    main()
