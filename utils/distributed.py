"""Data-parallel training plumbing the distributed fine-tuning script uses: joining the process group that torchrun or
`accelerate launch` describe, a sampler that can resume mid-epoch, exact save/resume of the whole training state, and
launching local processes (loopback only).

The script itself lives outside the package, in `scripts/ddp_finetune.py`; its training step is `utils.train_step`.
"""
from __future__ import annotations

import json
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

from .cache import atomic_path
from .checkpoint import load_checkpoint, read_metadata, save_checkpoint
from .device import get_device

__all__ = ["Dist", "setup_distributed", "ResumableSampler", "capture_rng", "restore_rng", "gather", "mean_over_ranks",
           "save_state", "load_state", "free_port", "SCRIPT", "load_script", "launch_command", "launch", "WEIGHTS", "STATE",
           "METRICS"]

WEIGHTS, STATE, METRICS = "model.safetensors", "train_state.pt", "metrics.json"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ddp_finetune.py"  # in a checkout of the book


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


def gather(obj, d: Dist) -> list:
    """Every rank's copy of a picklable object (a collective: all ranks must call it)."""
    if d.world_size == 1:
        return [obj]
    out = [None] * d.world_size
    dist.all_gather_object(out, obj)
    return out


def save_state(folder: Path, model: nn.Module, trainer: dict, progress: dict, d: Dist, config: dict) -> None:
    """Rank 0 writes the weights (safetensors) and the rest of the training state; every rank must call it."""
    rngs = gather(capture_rng(), d)  # a collective: all ranks take part
    if d.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        save_checkpoint(model, folder / WEIGHTS, meta={"step": progress["step"], "config": config})
        state = {k: v.state_dict() for k, v in trainer.items() if v is not None}
        with atomic_path(folder / STATE) as tmp:
            torch.save({**state, "progress": progress, "rng": rngs, "world_size": d.world_size, "config": config}, tmp)
    if d.world_size > 1:
        dist.barrier()


def _check_compatible(saved: dict, config: dict) -> None:
    for key in ("steps_per_epoch", "effective_batch", "epochs", "train_size", "seed"):
        if saved.get(key) != config[key]:
            raise ValueError(f"The checkpoint was made with {key}={saved.get(key)}, this run has {config[key]}: "
                             f"resume with the same data, epochs, seed and effective batch (processes x batch x accum).")


def load_state(folder: Path, model: nn.Module, trainer: dict, d: Dist, config: dict, rng: bool = True) -> dict:
    """Load weights, optimizer/schedule/scaler and this rank's RNG from `folder`; returns the saved progress.

    `rng=False` exists as a control: it shows what an exact resume owes to the saved RNG states."""
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
    if rng and state["world_size"] == d.world_size:
        restore_rng(state["rng"][d.rank])
    return state["progress"]


def mean_over_ranks(value: torch.Tensor, d: Dist) -> float:
    """The mean of a 0-d tensor over all ranks (a collective)."""
    if d.world_size > 1:
        dist.all_reduce(value)
        value = value / d.world_size
    return value.item()


def free_port() -> int:
    """A TCP port nobody listens on right now, on the loopback interface (for a local rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_script(script: Path = SCRIPT):
    """The training script as a module (it lives outside the package), to read or call its parts without running it."""
    import importlib.util

    if not Path(script).is_file():
        raise FileNotFoundError(f"No script at {script}: it ships with the book's repository (scripts/ddp_finetune.py); "
                                "clone the repository, or pass script= the path of your copy.")
    spec = importlib.util.spec_from_file_location(Path(script).stem, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def launch_command(script_args: list[str], nproc: int = 1, launcher: str = "torchrun", script: Path = SCRIPT) -> list[str]:
    """The command that runs the script in one process, or in `nproc` local ones via torchrun or accelerate."""
    if not Path(script).is_file():
        raise FileNotFoundError(f"No script at {script}: it ships with the book's repository (scripts/ddp_finetune.py); "
                                "clone the repository, or pass script= the path of your copy.")
    if nproc == 1:
        return [sys.executable, str(script), *script_args]
    if launcher == "torchrun":
        head = ["-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
                "--master_port", str(free_port())]
    elif launcher == "accelerate":
        head = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(nproc), "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    else:
        raise ValueError(f"launcher must be 'torchrun' or 'accelerate', got {launcher!r}.")
    return [sys.executable, *head, str(script), *script_args]


def launch(script_args: list[str], nproc: int = 1, launcher: str = "torchrun", threads: int | None = None,
           timeout: float = 300, script: Path = SCRIPT) -> dict:
    """Run the script in fresh local processes (loopback only) and return its metrics.json plus the printed log."""
    import subprocess

    threads = threads or max(1, (os.cpu_count() or 1) // nproc)  # share the cores instead of oversubscribing them
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if sys.platform == "linux" and Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"  # gloo talks over loopback only
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    proc = subprocess.run(launch_command(script_args, nproc, launcher, script), env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(script).name} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}")
    out = Path(script_args[script_args.index("--out") + 1]) if "--out" in script_args else Path("runs/ddp_finetune")
    metrics = json.loads((out / METRICS).read_text())
    return {**metrics, "log": proc.stdout.strip().splitlines()}
