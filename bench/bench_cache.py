"""Linear probe for 10 epochs: frozen features cached once vs recomputing the backbone every epoch (time ratio).

Usage: python bench/bench_cache.py [--images 320] [--size 64] [--epochs 10]

A frozen backbone in eval mode maps each image to the same feature vector every epoch, so the probe can train on
stored features. Both paths below see the same batches in the same order and must end with the same head weights
(checked), so the ratio compares the same computation. Three timings:
  recompute  every epoch runs the backbone on every image (what `utils.fit` on a frozen model does);
  cold cache one backbone pass to build the cache, then the epochs on stored features;
  warm cache the cache is already on disk (a re-run, or a second experiment on the same features): load + epochs.
With E epochs the cold ratio cannot exceed E (the backbone still runs once); the warm ratio has no such bound.
Writes bench/results/bench_cache_<cpu|cuda>.json.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchlib import save_results, table, timed


def features(backbone, images, device, batch_size: int):
    """Pooled backbone features for every image (no gradients: the backbone is frozen)."""
    import torch

    import utils

    out = []
    with torch.no_grad():
        for s in range(0, len(images), batch_size):
            x = utils.normalize(images[s:s + batch_size].to(device), backbone.data_config)
            out.append(backbone(x).float())
    return torch.cat(out)


def train_head(head, inputs_for, labels, epochs: int, batch_size: int, seed: int):
    """AdamW on the head; `inputs_for(idx)` returns the head's input for those examples (recomputed or cached)."""
    import torch

    opt = torch.optim.AdamW(head.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(labels), generator=g)
        for s in range(0, len(perm), batch_size):
            idx = perm[s:s + batch_size]
            loss = torch.nn.functional.cross_entropy(head(inputs_for(idx)), labels[idx.to(labels.device)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return loss.item()


def fresh_head(dim: int, device):
    import torch

    torch.manual_seed(0)
    return torch.nn.Linear(dim, 10).to(device)


def feature_cache(backbone, images, device, folder: Path, batch_size: int):
    """Build (or reuse) the book's on-disk feature cache (utils.features), kept in `folder` for this benchmark."""
    import os

    from utils import features as feature_store

    os.environ["TRANSFER_BOOK_CACHE"] = str(folder)
    return feature_store.cached_features(backbone, images, name="bench", batch_size=batch_size, device=device,
                                         progress=False).to(device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=320)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args()
    import torch

    import utils

    utils.seed_everything(0)
    device = utils.get_device()
    data = utils.mnist_digits("train", args.size)
    data = data.subset(utils.subsample_per_class(data.labels.numpy(), args.images // 10))
    images, labels = data.images, data.labels.to(device)
    backbone = utils.create_backbone("efficientnet_lite0").to(device).eval()
    backbone.reset_classifier(0)  # the model now returns pooled 1280-d features
    dim, t = backbone.num_features, {}

    head_r = fresh_head(dim, device)
    recompute = lambda idx: features(backbone, images[idx], device, args.batch_size)  # noqa: E731
    with timed(t, "recompute", device):
        loss_r = train_head(head_r, recompute, labels, args.epochs, args.batch_size, seed=1)

    with tempfile.TemporaryDirectory() as tmp:
        head_c = fresh_head(dim, device)
        with timed(t, "cold_cache", device):
            feats = feature_cache(backbone, images, device, Path(tmp), 64)
            loss_c = train_head(head_c, lambda idx: feats[idx.to(feats.device)], labels, args.epochs, args.batch_size, 1)
        head_w = fresh_head(dim, device)
        with timed(t, "warm_cache", device):
            feats = feature_cache(backbone, images, device, Path(tmp), 64)
            train_head(head_w, lambda idx: feats[idx.to(feats.device)], labels, args.epochs, args.batch_size, 1)

    diff = max((a - b).abs().max().item() for a, b in zip(head_r.parameters(), head_c.parameters()))
    assert diff < 1e-3, f"cached and recomputed probes diverged (max weight difference {diff:.2e}): not the same computation"
    rows = [{"method": k, "seconds": round(v, 2), "speed-up": f"{t['recompute'] / v:.1f}x"} for k, v in t.items()]
    print(table(rows, ["method", "seconds", "speed-up"]))
    print(f"final loss recompute {loss_r:.4f} vs cached {loss_c:.4f}; max head weight difference {diff:.1e}")
    save_results("bench_cache", {
        "setup": {**vars(args), "backbone": "efficientnet_lite0 (frozen, eval)", "device": str(device)},
        "seconds": {k: round(v, 3) for k, v in t.items()},
        "ratios": {"recompute/cold_cache": round(t["recompute"] / t["cold_cache"], 2),
                   "recompute/warm_cache": round(t["recompute"] / t["warm_cache"], 2)},
        "max_head_weight_difference": diff, "goal": ">= 10x (reachable warm; cold is bounded by the epoch count)"})


if __name__ == "__main__":
    main()
