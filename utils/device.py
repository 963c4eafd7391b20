"""Where the code runs: device choice, seeding, and whether the network is reachable."""
from __future__ import annotations

import os
import random
import socket
import sys
import threading
from functools import lru_cache

import numpy as np
import torch

__all__ = ["get_device", "model_device", "seed_everything", "is_online", "ensure_offline_flags", "amp_dtype", "environment",
           "recorded_bench"]


def get_device(prefer: str | None = None) -> torch.device:
    """Pick CUDA, then Apple MPS, then CPU, so every chapter runs unchanged anywhere."""
    if prefer is not None:
        dev = torch.device(prefer)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"Asked for {prefer!r} but CUDA is not available here; call get_device() to pick automatically.")
        if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise RuntimeError(f"Asked for {prefer!r} but MPS is not available here; call get_device() to pick automatically.")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def model_device(model: torch.nn.Module) -> torch.device:
    """Where a model's weights live: inference helpers run there, so a model left on the CPU works on a CUDA machine."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def environment() -> str:
    """One line for a chapter's first output: torch version, device and CPU threads (outputs compare only within one)."""
    dev = get_device()
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else dev.type
    return f"torch {torch.__version__} | device: {name} | {torch.get_num_threads()} CPU thread(s)"


def recorded_bench(name: str, kind: str = "cpu") -> dict | None:
    """The last recorded result of `bench/<name>.py` on a `kind` ("cpu" or "cuda") machine, or None where this copy of
    the book has no `bench/` folder (a Colab install ships only `utils`): chapters quote benches, never re-time them."""
    import json
    from pathlib import Path

    if kind not in ("cpu", "cuda"):
        raise ValueError(f"kind must be 'cpu' or 'cuda', got {kind!r}.")
    path = Path(__file__).resolve().parents[1] / "bench" / "results" / f"{name}_{kind}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def seed_everything(seed: int = 0, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch; on CPU also make kernels deterministic so reruns match."""
    from .checks import check_int

    seed = check_int(seed, "seed", 0, 2**32 - 1)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return torch.Generator().manual_seed(seed)


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype worth using on this device (bf16 if supported, else fp16), or None on CPU/MPS."""
    if device.type != "cuda":
        return None
    # Native bf16 only (Ampere and newer): torch reports emulated bf16 as supported on older GPUs (e.g. a T4), where
    # it is slow; those get float16 with a GradScaler.
    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


def _probe(host: str, port: int, timeout: float, result: list) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            result.append(True)
    except OSError:
        result.append(False)


@lru_cache(maxsize=None)
def is_online(host: str = "huggingface.co", port: int = 443, timeout: float = 3.0) -> bool:
    """True if a model hub answers within `timeout` seconds; never blocks longer (DNS included)."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFER_BOOK_OFFLINE") == "1":
        return False
    result: list[bool] = []
    t = threading.Thread(target=_probe, args=(host, port, timeout, result), daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(result and result[0])


def ensure_offline_flags() -> bool:
    """Set the Hugging Face offline flags when no hub is reachable, so loads fail in seconds, not minutes."""
    online = is_online()
    if not online:
        for flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
            os.environ[flag] = "1"
        hub = sys.modules.get("huggingface_hub.constants")  # read once at import: update it if already imported
        if hub is not None:
            hub.HF_HUB_OFFLINE = True
    return online
