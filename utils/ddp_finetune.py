"""Data-parallel fine-tuning that runs as one process or many: DDP, gradient accumulation, AMP, exact resume.

One process (CPU, one GPU or Apple MPS)::

    python -m utils.ddp_finetune --out runs/ft

Several processes on one machine (DistributedDataParallel; gloo on CPU, nccl on CUDA)::

    torchrun --standalone --nproc_per_node 2 -m utils.ddp_finetune --out runs/ft

The same script under Hugging Face Accelerate's launcher, which sets the same environment variables::

    accelerate launch --multi_gpu --num_processes 2 -m utils.ddp_finetune --out runs/ft

Two machines with 8 GPUs each (run the same line on both; HOST0 is reachable from both)::

    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_id ft1 --rdzv_backend c10d --rdzv_endpoint HOST0:29500 \
        -m utils.ddp_finetune --out /shared/runs/ft

The effective batch is processes x --batch-size x --accum-steps. Every process reads the same seeded permutation
(DistributedSampler) and takes every world-size-th example, so a step sees the same examples whatever the split,
and a model without BatchNorm ends up with the same weights (up to float rounding). Rank 0 saves
`model.safetensors` (weights) and `train_state.pt` (optimizer, schedule, sampler position and every rank's RNG
state; loaded with `weights_only=True`), and `--resume` continues from there exactly, even mid-epoch.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

from .checkpoint import load_checkpoint, read_metadata, save_checkpoint
from .data import mnist_digits, subsample_per_class
from .device import amp_dtype, get_device, seed_everything
from .freeze import frozen_bn_eval, unfreeze_last
from .loaders import make_loader
from .train import evaluate, forward, make_optimizer

__all__ = ["parse_args", "Dist", "setup_distributed", "tiny_cnn", "build_model", "Normalize", "build_data",
           "ResumableSampler", "capture_rng", "restore_rng", "save_state", "load_state", "train_step", "train", "main",
           "free_port", "launch_command", "launch",
           "WEIGHTS", "STATE", "METRICS"]

WEIGHTS, STATE, METRICS = "model.safetensors", "train_state.pt", "metrics.json"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; every one has a default, so `python -m utils.ddp_finetune` alone runs."""
    p = argparse.ArgumentParser(prog="python -m utils.ddp_finetune", description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("effnet", "tiny"), default="effnet",
                   help="effnet: bundled EfficientNet-Lite0 with a new head; tiny: a small CNN without BatchNorm (tests)")
    p.add_argument("--unfreeze", type=int, default=1, help="effnet: backbone blocks to train besides the head (0 = probe)")
    p.add_argument("--train-size", type=_positive, default=500, help="MNIST training images (balanced over 10 classes)")
    p.add_argument("--val-size", type=int, default=200, help="validation images evaluated by rank 0 after each epoch (0: none)")
    p.add_argument("--image-size", type=_positive, default=64)
    p.add_argument("--epochs", type=_positive, default=2)
    p.add_argument("--batch-size", type=_positive, default=16, help="per process and per micro-batch")
    p.add_argument("--accum-steps", type=_positive, default=1, help="micro-batches per optimizer step")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine")
    p.add_argument("--grad-clip", type=float, default=None)
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
    return p.parse_args(argv)


@dataclass
class Dist:
    """Who this process is: its rank among world_size processes, and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str | None = None) -> Dist:
    """Join the process group torchrun/accelerate describe in the environment (WORLD_SIZE...), or run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(0, 1, 0, get_device(device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in (None, "cuda")
    if use_cuda:
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"Local rank {local} but only {torch.cuda.device_count()} GPUs: lower --nproc_per_node.")
        torch.cuda.set_device(local)
    dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world)
    return Dist(rank, world, local, dev)


def tiny_cnn(num_classes: int = 10, seed: int = 0) -> nn.Module:
    """Two conv layers and a linear head, no BatchNorm: DDP then matches one process exactly (up to rounding)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten())
        return nn.Sequential(features, nn.Linear(32 * 4 * 4, num_classes))


def build_model(name: str, num_classes: int, unfreeze: int, seed: int) -> nn.Module:
    """The model to fine-tune, identical on every rank (seeded), with only the chosen blocks trainable."""
    if name == "tiny":
        return tiny_cnn(num_classes, seed)
    from .models import create_backbone

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_backbone("efficientnet_lite0", num_classes=num_classes)
    unfreeze_last(model, unfreeze)
    return model


class Normalize:
    """Per-image (C, H, W) normalisation as a picklable transform (DataLoader workers may need to pickle it)."""

    def __init__(self, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
        self.mean, self.std = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def build_data(train_size: int, val_size: int, image_size: int):
    """Balanced MNIST subsets at `image_size`, normalised the way both models expect (mean = std = 0.5)."""
    train = mnist_digits("train", image_size, transform=Normalize())
    train = train.subset(subsample_per_class(train.labels.numpy(), math.ceil(train_size / 10))[:train_size])
    val = None
    if val_size > 0:
        val = mnist_digits("val", image_size, transform=Normalize())
        val = val.subset(subsample_per_class(val.labels.numpy(), math.ceil(val_size / 10))[:val_size])
    return train, val


class ResumableSampler(DistributedSampler):
    """DistributedSampler (seeded permutation, every world-size-th index) that can start part-way into an epoch."""

    def __init__(self, dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first `start` indices of this rank's share of the epoch (already trained on before a resume)."""
        self.start = start

    def __iter__(self):
        return iter(list(super().__iter__())[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start


def capture_rng() -> dict:
    """This process's RNG states (Python, NumPy, torch CPU and CUDA) in types `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None}


def restore_rng(state: dict) -> None:
    """Put back the RNG states saved by `capture_rng`, so dropout or augmentation continue the same sequence."""
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _gather(obj, d: Dist) -> list:
    if d.world_size == 1:
        return [obj]
    out = [None] * d.world_size
    dist.all_gather_object(out, obj)
    return out


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_state(folder: Path, model: nn.Module, trainer: dict, progress: dict, d: Dist, config: dict) -> None:
    """Rank 0 writes the weights (safetensors) and the rest of the training state; every rank must call it."""
    rngs = _gather(capture_rng(), d)  # a collective: all ranks take part
    if d.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        save_checkpoint(model, folder / WEIGHTS, meta={"step": progress["step"], "config": config})
        state = {k: v.state_dict() for k, v in trainer.items() if v is not None}
        _atomic_torch_save({**state, "progress": progress, "rng": rngs, "world_size": d.world_size, "config": config},
                           folder / STATE)
    if d.world_size > 1:
        dist.barrier()


def _check_compatible(saved: dict, config: dict) -> None:
    for key in ("steps_per_epoch", "effective_batch", "epochs", "train_size", "seed"):
        if saved.get(key) != config[key]:
            raise ValueError(f"The checkpoint was made with {key}={saved.get(key)}, this run has {config[key]}: "
                             f"resume with the same data, epochs, seed and effective batch (processes x batch x accum).")


def load_state(folder: Path, model: nn.Module, trainer: dict, d: Dist, config: dict) -> dict:
    """Load weights, optimizer/schedule/scaler and this rank's RNG from `folder`; returns the saved progress."""
    if not (folder / STATE).is_file():
        raise FileNotFoundError(f"No {STATE} in {folder}: nothing to resume. Run once without --resume first.")
    state = torch.load(folder / STATE, map_location="cpu", weights_only=True)
    if read_metadata(folder / WEIGHTS).get("step") != state["progress"]["step"]:
        raise ValueError(f"{WEIGHTS} and {STATE} in {folder} come from different steps (interrupted while saving?).")
    _check_compatible(state["config"], config)
    load_checkpoint(model, folder / WEIGHTS)
    for key, obj in trainer.items():
        if obj is not None and key in state:  # e.g. no GradScaler state when the checkpoint came from a bf16 run
            obj.load_state_dict(state[key])
    if state["world_size"] == d.world_size:
        restore_rng(state["rng"][d.rank])
    return state["progress"]


def train_step(model: nn.Module, batches, accum: int, optimizer: torch.optim.Optimizer, scaler, device: torch.device,
               amp: torch.dtype | None, channels_last: bool = False, grad_clip: float | None = None,
               ddp=None) -> torch.Tensor:
    """One optimizer step over `accum` micro-batches (no all-reduce until the last one); returns the mean loss (0-d)."""
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=device)
    for i in range(accum):
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        sync = ddp is None or i == accum - 1
        with contextlib.nullcontext() if sync else ddp.no_sync():
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                loss = nn.functional.cross_entropy(forward(model, x).float(), y) / accum
            (scaler.scale(loss) if scaler else loss).backward()
        total += loss.detach()
    if scaler:
        scaler.unscale_(optimizer)
    if grad_clip:
        nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return total


def _mean_over_ranks(value: torch.Tensor, d: Dist) -> float:
    if d.world_size > 1:
        dist.all_reduce(value)
        value = value / d.world_size
    return value.item()


def _schedule(optimizer: torch.optim.Optimizer, kind: str, total_steps: int):
    if kind == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)


def _config(args: argparse.Namespace, d: Dist, steps_per_epoch: int) -> dict:
    keys = ("model", "unfreeze", "train_size", "image_size", "epochs", "batch_size", "accum_steps", "lr", "seed")
    return {**{k: getattr(args, k) for k in keys}, "world_size": d.world_size, "steps_per_epoch": steps_per_epoch,
            "effective_batch": d.world_size * args.batch_size * args.accum_steps}


def _prepare_model(args: argparse.Namespace, d: Dist) -> nn.Module:
    model = build_model(args.model, 10, args.unfreeze, args.seed).to(d.device)
    if args.sync_bn:
        if d.device.type != "cuda":
            raise ValueError("--sync-bn needs CUDA (PyTorch's SyncBatchNorm has no CPU kernel). On CPU use a model "
                             "without BatchNorm (--model tiny) or keep BatchNorm frozen.")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model.to(memory_format=torch.channels_last) if args.channels_last else model


def _make_trainer(args: argparse.Namespace, model: nn.Module, device: torch.device, total_steps: int):
    optimizer = make_optimizer(model, args.lr, args.weight_decay)
    dtype = amp_dtype(device) if args.amp == "auto" else None
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None  # bf16 needs no loss scaling
    return {"optimizer": optimizer, "scheduler": _schedule(optimizer, args.schedule, total_steps), "scaler": scaler}, dtype


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
    seed_everything(args.seed)
    model = _prepare_model(args, d)
    train_ds, val_ds = build_data(args.train_size, args.val_size if d.is_main else 0, args.image_size)
    sampler = ResumableSampler(train_ds, d.world_size, d.rank, args.seed)
    loader = make_loader(train_ds, args.batch_size, sampler=sampler, drop_last=True, device=d.device, num_workers=args.workers)
    steps_per_epoch = len(loader) // args.accum_steps
    if steps_per_epoch == 0:
        raise ValueError(f"{args.train_size} images cannot fill one step of {d.world_size} processes x batch "
                         f"{args.batch_size} x {args.accum_steps} accumulation steps: raise --train-size or lower these.")
    config = _config(args, d, steps_per_epoch)
    trainer, dtype = _make_trainer(args, model, d.device, args.epochs * steps_per_epoch)
    progress = {"step": 0, "losses": [], "val": [], "seconds": 0.0, "images": 0}
    if args.resume:
        progress = load_state(args.out, model, trainer, d, config)
        _log(d, f"resumed from step {progress['step']} in {args.out.name}/")
    net, ddp = _wrap(model, d, args.compile)
    val_loader = make_loader(val_ds, 64, device=d.device, num_workers=0) if val_ds is not None else None
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
    frozen_bn_eval(model)
    for _ in range(done, spe):
        loss = train_step(net, batches, args.accum_steps, trainer["optimizer"], trainer["scaler"], d.device, dtype,
                          args.channels_last, args.grad_clip, ddp)
        trainer["scheduler"].step()
        progress["losses"].append(_mean_over_ranks(loss, d))
        progress["step"] += 1
        if progress["step"] >= stop:
            break
        if args.checkpoint_every and progress["step"] % args.checkpoint_every == 0:
            save_state(args.out, model, trainer, progress, d, config)
    progress["seconds"] += time.perf_counter() - t0
    progress["images"] += (progress["step"] - first) * config["effective_batch"]
    if progress["step"] % spe == 0 and val_loader is not None:
        progress["val"].append({"epoch": epoch + 1, **evaluate(model, val_loader, d.device)})
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


def free_port() -> int:
    """A TCP port nobody listens on right now, on the loopback interface (for a local rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(script_args: list[str], nproc: int = 1, launcher: str = "torchrun") -> list[str]:
    """The command that runs this script in one process, or in `nproc` local ones via torchrun or accelerate."""
    if nproc == 1:
        return [sys.executable, "-m", "utils.ddp_finetune", *script_args]
    if launcher == "torchrun":
        head = ["-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
                "--master_port", str(free_port())]
    elif launcher == "accelerate":
        head = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(nproc), "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    else:
        raise ValueError(f"launcher must be 'torchrun' or 'accelerate', got {launcher!r}.")
    return [sys.executable, *head, "-m", "utils.ddp_finetune", *script_args]


def launch(script_args: list[str], nproc: int = 1, launcher: str = "torchrun", threads: int | None = None,
           timeout: float = 300) -> dict:
    """Run the script in fresh local processes (loopback only) and return its metrics.json plus the printed log."""
    import subprocess

    threads = threads or max(1, (os.cpu_count() or 1) // nproc)  # share the cores instead of oversubscribing them
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if sys.platform == "linux" and Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"  # gloo talks over loopback only
    proc = subprocess.run(launch_command(script_args, nproc, launcher), env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"ddp_finetune failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}")
    metrics = json.loads((parse_args(script_args).out / METRICS).read_text())
    return {**metrics, "log": proc.stdout.strip().splitlines()}


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python -m utils.ddp_finetune` and `torchrun ... -m utils.ddp_finetune`."""
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
