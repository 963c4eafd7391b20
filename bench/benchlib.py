"""Shared plumbing for the bench/ scripts: hardware description, timing, peak memory, and writing results files."""
from __future__ import annotations

import gc
import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:  # `python bench/x.py` puts bench/ first on the path, not the repo
    sys.path.insert(0, str(ROOT))


def cpu_name() -> str:
    """The CPU model as the OS reports it (e.g. 'AMD EPYC 7B13'), or the architecture if it does not say."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict:
    """Where the numbers come from: CPU, cores, threads, GPU (if any), versions, and how busy the machine was."""
    import torch

    info = {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(terse=True), "python": platform.python_version(), "torch": torch.__version__,
            "gpu": None, "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                       "capability": f"{props.major}.{props.minor}", "bf16": torch.cuda.is_bf16_supported()}
    return info


def device_kind() -> str:
    """'cuda' when a GPU is present, else 'cpu': results files are kept per kind so a GPU run keeps the CPU one."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def save_results(name: str, results: dict) -> Path:
    """Write bench/results/<name>_<cpu|cuda>.json with the hardware description and the date."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}_{device_kind()}.json"
    payload = {"script": f"bench/{name}.py", "date": time.strftime("%Y-%m-%d %H:%M"), "hardware": hardware(), **results}
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    print(f"results written to {path.relative_to(ROOT)}")
    return path


def sync(device) -> None:
    """Wait for queued GPU work, so a timer measures the work and not just its launch."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()


@contextmanager
def timed(out: dict, key: str, device="cpu"):
    """Store the wall time of the block in out[key] (seconds), synchronising the GPU at both ends."""
    sync(device)
    t0 = time.perf_counter()
    yield
    sync(device)
    out[key] = time.perf_counter() - t0


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_memory(device) -> float:
    """Start a new peak-memory window; returns the memory in use now (MiB): GPU allocations, or process RSS on CPU."""
    import torch

    gc.collect()  # free the previous configuration's model first
    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset the RSS high-water mark (VmHWM)
    except OSError:
        pass
    return (_status_kib("VmRSS") or 0) / 1024


def peak_memory(device) -> float | None:
    """Peak memory (MiB) since `reset_peak_memory`: GPU allocations, or process RSS on Linux (None where unknown)."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    hwm = _status_kib("VmHWM")
    return hwm / 1024 if hwm is not None else None


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table for the console (and for pasting into bench/README.md)."""
    cells = [["-" if r.get(c) is None else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def digit_workloads(k: int = 2) -> dict:
    """The data the training benches share: 32 px digits, the small CNN's input convention and a test loader for it,
    EfficientNet-Lite0 (10-class head) and its activations at group `k`, cached on disk."""
    import utils
    from utils import features

    digits = {s: utils.mnist_digits(s, 32, normalize=False) for s in ("train", "test")}
    small = utils.small_cnn(10)  # its input convention (mean = std = 0.5)
    backbone = utils.create_backbone(num_classes=10).eval()
    acts = {s: features.cached_activations(backbone, digits[s].with_options(normalize=backbone), [k],
                                           name="bench-workers-32px", split=s, progress=False)[k]
            for s in ("train", "test")}
    return {"digits": digits, "small": small, "test_loader": utils.make_loader(digits["test"].with_options(normalize=small), 500),
            "backbone": backbone, "k": k, "acts": acts}
