"""Execute chapter notebooks top to bottom in a fresh kernel (cwd = notebooks/), save outputs in place, log the time.

Usage: python bench/execute_notebooks.py notebooks/01_pretrained_models.ipynb [...]
Writes bench/results/notebook_times.csv (one row per notebook, this machine), which bench/README.md explains.
Committed outputs all come from one environment: the kernel runs with TRANSFER_BOOK_THREADS torch threads
(default 2, the book's reference machine of 2 CPU cores), which every chapter prints in its first output.
"""
from __future__ import annotations

import csv
import os
import platform
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "notebook_times.csv"
NOISE = ("execution", "collapsed", "scrolled", "ExecuteTime")  # metadata that changes every run


def device_label() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU x{os.cpu_count()} ({platform.machine()})"


def run(path: Path, timeout: int | None = None) -> float:
    """Execute in place; a cell may take TRANSFER_BOOK_CELL_TIMEOUT seconds (default 1800: a shared machine is slow)."""
    timeout = timeout or int(os.environ.get("TRANSFER_BOOK_CELL_TIMEOUT", "1800"))
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - t0
    for cell in nb.cells:
        for key in NOISE:
            cell.metadata.pop(key, None)
    nbformat.write(nb, path)
    return seconds


def record(name: str, seconds: float) -> None:
    rows = list(csv.DictReader(RESULTS.open())) if RESULTS.exists() else []
    dev = device_label()
    rows = [r for r in rows if not (r["notebook"] == name and r["device"] == dev)]
    rows.append({"notebook": name, "device": dev, "seconds": f"{seconds:.1f}", "date": time.strftime("%Y-%m-%d")})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["notebook", "device", "seconds", "date"])
        w.writeheader()
        w.writerows(sorted(rows, key=lambda r: (r["notebook"], r["device"])))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    threads = os.environ.get("TRANSFER_BOOK_THREADS", "2")
    os.environ.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    os.environ.pop("MPLBACKEND", None)  # a kernel started with MPLBACKEND=Agg draws no inline figures
    for arg in sys.argv[1:]:
        p = Path(arg)
        secs = run(p)
        record(p.name, secs)
        print(f"{p.name}: {secs:.1f} s")
