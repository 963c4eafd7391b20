"""Data-parallel fine-tuning that runs as one process or many: DDP, gradient accumulation, AMP, exact resume.

One process (CPU, one GPU or Apple MPS)::

    python scripts/ddp_finetune.py --out runs/ft

Several processes on one machine (DistributedDataParallel; gloo on CPU, nccl on CUDA)::

    torchrun --standalone --nproc_per_node 2 scripts/ddp_finetune.py --out runs/ft

The same script under Hugging Face Accelerate's launcher, which sets the same environment variables::

    accelerate launch --multi_gpu --num_processes 2 scripts/ddp_finetune.py --out runs/ft

Two machines with 8 GPUs each (run the same line on both; HOST0 is reachable from both)::

    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_id ft1 --rdzv_backend c10d --rdzv_endpoint HOST0:29500 \
        scripts/ddp_finetune.py --out /shared/runs/ft

The effective batch is processes x --batch-size x --accum-steps. Every process reads the same seeded permutation
(DistributedSampler) and takes every world-size-th example, so a step sees the same examples whatever the split,
and a model without BatchNorm ends up with the same weights (up to float rounding). Rank 0 saves
`model.safetensors` (weights) and `train_state.pt` (optimizer, schedule, sampler position and every rank's RNG
state; loaded with `weights_only=True`), and `--resume` continues from there exactly, even mid-epoch.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

import utils
from utils.distributed import (METRICS, STATE, WEIGHTS, Dist, ResumableSampler, load_state, mean_over_ranks, save_state,
                               setup_distributed)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; every one has a default, so `python scripts/ddp_finetune.py` alone runs."""
    p = argparse.ArgumentParser(prog="scripts/ddp_finetune.py", description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("effnet", "tiny"), default="effnet",
                   help="effnet: bundled EfficientNet-Lite0 with a new head; tiny: a small utils.SmallCNN without BatchNorm, "
                        "pooled to 4 x 4 (equivalence demos and tests)")
    p.add_argument("--unfreeze", type=int, default=1, help="effnet: backbone blocks to train besides the head (0 = probe)")
    p.add_argument("--train-size", type=_positive, default=500, help="MNIST training images (balanced over 10 classes)")
    p.add_argument("--val-size", type=int, default=200, help="validation images evaluated by rank 0 after each epoch (0: none)")
    p.add_argument("--image-size", type=_positive, default=64)
    p.add_argument("--epochs", type=_positive, default=2)
    p.add_argument("--batch-size", type=_positive, default=16, help="per process and per micro-batch")
    p.add_argument("--accum-steps", type=_positive, default=1, help="micro-batches per optimizer step")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw",
                   help="sgd (momentum 0.9) reacts to the gradient's scale: a check that DDP averages, not sums")
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine")
    p.add_argument("--grad-clip", type=float, default=None)
    p.add_argument("--dropout", type=float, default=0.0,
                   help="dropout before the classifier; it draws from the RNG, so an exact resume needs the RNG state back")
    p.add_argument("--amp", choices=("auto", "off"), default="auto", help="auto: bf16 (or fp16 + GradScaler) on CUDA only")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory layout (faster convolutions on tensor cores)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (pays off on long GPU runs)")
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across processes (CUDA only)")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: best available)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: utils.loaders' choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/ddp_finetune"), help="folder for checkpoint and metrics")
    p.add_argument("--checkpoint-every", type=int, default=0, help="also checkpoint every N optimizer steps (0: at the end)")
    p.add_argument("--stop-after", type=int, default=0, help="simulate an interruption: checkpoint and exit after N steps")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--no-rng-restore", action="store_true",
                   help="a control only: resume without the saved RNG states (dropout then draws other masks)")
    return p.parse_args(argv)


def build_model(name: str, num_classes: int, unfreeze: int, seed: int, dropout: float = 0.0) -> nn.Module:
    """The model to fine-tune, identical on every rank (seeded), with only the chosen groups trainable."""
    if name == "tiny":  # no BatchNorm: data-parallel runs then match one process exactly (up to rounding)
        model = utils.small_cnn(num_classes, widths=(16, 32), input_size=16, seed=seed, norm=False, dropout=dropout)
        # Without BatchNorm, a global average pool over two blocks learns digits slowly (near chance after 3 epochs),
        # and a run that does not learn is a poor test of equivalence. Pooling to 4 x 4 keeps where the strokes are.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model.pool, model.classifier = nn.AdaptiveAvgPool2d(4), nn.Linear(model.num_features * 16, num_classes)
        model.num_features *= 16
        return model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = utils.create_backbone("efficientnet_lite0", num_classes=num_classes)
        if dropout:
            model = utils.replace_head(model, num_classes, dropout=dropout)
    utils.unfreeze_last(model, unfreeze)
    return model


def build_data(train_size: int, val_size: int, image_size: int):
    """Balanced MNIST subsets at `image_size`, normalised the way both models expect (mean = std = 0.5)."""
    cfg = utils.DataConfig((0.5,) * 3, (0.5,) * 3, image_size)
    train = utils.mnist_digits("train", image_size).with_options(normalize=cfg)
    train = train.subset(utils.subsample_per_class(train.labels.numpy(), math.ceil(train_size / 10))[:train_size])
    val = None
    if val_size > 0:
        val = utils.mnist_digits("val", image_size).with_options(normalize=cfg)
        val = val.subset(utils.subsample_per_class(val.labels.numpy(), math.ceil(val_size / 10))[:val_size])
    return train, val


def _config(args: argparse.Namespace, d: Dist, steps_per_epoch: int) -> dict:
    keys = ("model", "unfreeze", "train_size", "image_size", "epochs", "batch_size", "accum_steps", "lr", "seed", "dropout")
    return {**{k: getattr(args, k) for k in keys}, "world_size": d.world_size, "steps_per_epoch": steps_per_epoch,
            "effective_batch": d.world_size * args.batch_size * args.accum_steps}


def _prepare_model(args: argparse.Namespace, d: Dist) -> nn.Module:
    model = build_model(args.model, 10, args.unfreeze, args.seed, args.dropout).to(d.device)
    if args.sync_bn:
        if d.device.type != "cuda":
            raise ValueError("--sync-bn needs CUDA (PyTorch's SyncBatchNorm has no CPU kernel). On CPU use a model "
                             "without BatchNorm (--model tiny) or keep BatchNorm frozen.")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model.to(memory_format=torch.channels_last) if args.channels_last else model


def _make_trainer(args: argparse.Namespace, model: nn.Module, device: torch.device, total_steps: int):
    optimizer = utils.make_optimizer(model, args.lr, args.weight_decay)
    if args.optimizer == "sgd":  # the same parameter groups (no decay on biases and norms), plain SGD with momentum
        groups = [{k: g[k] for k in ("params", "lr", "weight_decay")} for g in optimizer.param_groups]
        optimizer = torch.optim.SGD(groups, lr=args.lr, momentum=0.9)
    dtype = utils.amp_dtype(device) if args.amp == "auto" else None
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None  # bf16 needs no loss scaling
    # A constant schedule still gets a scheduler object, so the saved training state has the same keys either way.
    scheduler = (utils.make_scheduler(optimizer, "cosine", total_steps) if args.schedule == "cosine"
                 else torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0))
    return {"optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}, dtype


def _wrap(model: nn.Module, d: Dist, compile_model: bool):
    ddp = None
    if d.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    net = ddp or model
    return (torch.compile(net) if compile_model else net), ddp


def _log(d: Dist, text: str) -> None:
    if d.is_main:
        print(text, flush=True)


def train(args: argparse.Namespace) -> dict:
    """Fine-tune as `parse_args` describes; returns the metrics that rank 0 also writes to `--out/metrics.json`."""
    d = setup_distributed(args.device)
    try:
        return _run(args, d)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def _run(args: argparse.Namespace, d: Dist) -> dict:
    utils.seed_everything(args.seed)
    model = _prepare_model(args, d)
    train_ds, val_ds = build_data(args.train_size, args.val_size if d.is_main else 0, args.image_size)
    sampler = ResumableSampler(train_ds, d.world_size, d.rank, args.seed)
    loader = utils.make_loader(train_ds, args.batch_size, sampler=sampler, drop_last=True, device=d.device, num_workers=args.workers)
    steps_per_epoch = len(loader) // args.accum_steps
    if steps_per_epoch == 0:
        raise ValueError(f"{args.train_size} images cannot fill one step of {d.world_size} processes x batch "
                         f"{args.batch_size} x {args.accum_steps} accumulation steps: raise --train-size or lower these.")
    config = _config(args, d, steps_per_epoch)
    trainer, dtype = _make_trainer(args, model, d.device, args.epochs * steps_per_epoch)
    progress = {"step": 0, "losses": [], "val": [], "seconds": 0.0, "images": 0}
    if args.resume:
        progress = load_state(args.out, model, trainer, d, config, rng=not args.no_rng_restore)
        _log(d, f"resumed from step {progress['step']} in {args.out.name}/")
    net, ddp = _wrap(model, d, args.compile)
    val_loader = utils.make_loader(val_ds, 64, device=d.device, num_workers=0) if val_ds is not None else None
    _log(d, f"{d.world_size} process(es) on {d.device.type}, effective batch {config['effective_batch']}, "
            f"{steps_per_epoch} steps/epoch, amp={dtype}")
    stop = min(args.epochs * steps_per_epoch, args.stop_after or math.inf)
    while progress["step"] < stop:
        _run_epoch(args, d, net, ddp, model, loader, sampler, trainer, dtype, progress, config, stop, val_loader)
    save_state(args.out, model, trainer, progress, d, config)
    return _finish(args, d, progress, config, stop)


def _run_epoch(args, d, net, ddp, model, loader, sampler, trainer, dtype, progress, config, stop, val_loader) -> None:
    spe = config["steps_per_epoch"]
    epoch, done = divmod(progress["step"], spe)
    sampler.set_epoch(epoch)  # the permutation depends on (seed, epoch) only: the same on every rank and every run
    sampler.set_start(done * args.accum_steps * args.batch_size)
    batches, t0, first = iter(loader), time.perf_counter(), progress["step"]
    model.train()
    utils.frozen_bn_eval(model)
    for _ in range(done, spe):
        micro = [next(batches) for _ in range(args.accum_steps)]
        step = utils.train_step(net, micro, trainer["optimizer"], device=d.device, amp=dtype, scaler=trainer["scaler"],
                                grad_clip=args.grad_clip, ddp=ddp, channels_last=args.channels_last)
        trainer["scheduler"].step()
        progress["losses"].append(mean_over_ranks(step.loss, d))
        progress["step"] += 1
        if progress["step"] >= stop:
            break
        if args.checkpoint_every and progress["step"] % args.checkpoint_every == 0:
            save_state(args.out, model, trainer, progress, d, config)
    progress["seconds"] += time.perf_counter() - t0
    progress["images"] += (progress["step"] - first) * config["effective_batch"]
    if progress["step"] % spe == 0 and val_loader is not None:
        progress["val"].append({"epoch": epoch + 1, **utils.evaluate(model, val_loader)})
    val = f", val acc {progress['val'][-1]['acc']:.3f}" if progress["val"] and progress["step"] % spe == 0 else ""
    steps = f"steps {first + 1}-{progress['step']}"
    _log(d, f"epoch {epoch + 1}: {steps}, mean loss {np.mean(progress['losses'][first:]):.4f}{val}")


def _finish(args: argparse.Namespace, d: Dist, progress: dict, config: dict, stop: float) -> dict:
    metrics = {"config": config, "device": str(d.device), "steps": progress["step"],
               "stopped_early": progress["step"] < args.epochs * config["steps_per_epoch"],
               "losses": progress["losses"], "val": progress["val"],
               "images_per_second": progress["images"] / max(progress["seconds"], 1e-9)}
    if d.is_main:
        (args.out / METRICS).write_text(json.dumps(metrics, indent=1))
        _log(d, f"saved {WEIGHTS} and {STATE} at step {progress['step']} in {args.out.name}/ "
                f"({metrics['images_per_second']:.0f} images/s over all processes)")
    return metrics


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python scripts/ddp_finetune.py`, `torchrun ... scripts/ddp_finetune.py` and `accelerate launch`."""
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
