"""GPU fine-tuning throughput: FP32 vs AMP vs AMP + channels_last vs torch.compile, peak memory, loader workers/pinning.

Usage: python bench/bench_gpu.py [--size 224] [--batch-size 128] [--steps 30]
       python bench/bench_gpu.py --cpu-all   # run every configuration at toy size on the CPU (checks the code paths)

Same model (EfficientNet-Lite0, every layer trainable, AdamW), same batches, one after another in one run:
  fp32                        the baseline;
  amp                         autocast to bf16 (fp16 + GradScaler on GPUs without bf16);
  amp+channels_last           NHWC memory layout, which tensor-core convolutions prefer;
  amp+channels_last+compile   torch.compile on top (its compile time is reported separately, not in images/s).
The model-only configurations train on batches already on the GPU. The loader comparison then feeds the best
eager configuration from a CPU-side pipeline (uint8 digits -> float, resize, random flip, normalise per image) with
0 or N workers and with or without pinned memory. Without a GPU the script says so, measures the CPU FP32 baseline
at a small size, writes its results file and exits 0. Writes bench/results/bench_gpu_<cpu|cuda>.json.
"""
from __future__ import annotations

import argparse
import time

from benchlib import peak_memory, reset_peak_memory, save_results, sync, table

CONFIGS = {"fp32": (False, False, False), "amp": (True, False, False), "amp+channels_last": (True, True, False),
           "amp+channels_last+compile": (True, True, True)}  # name -> (amp, channels_last, compile)


class DigitsPipeline:
    """A CPU-bound per-image pipeline (decode-like uint8 -> float, resize, flip, normalise), like a real dataset's."""

    def __init__(self, images, labels, size: int):
        self.images, self.labels, self.size = images, labels, size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        import torch
        import torch.nn.functional as F

        x = (self.images[i].float() / 255).expand(3, -1, -1)[None]
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)[0]
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        return (x - 0.5) / 0.5, self.labels[i]


def build(device, amp: bool, channels_last: bool, compile_model: bool):
    """A fresh full-fine-tuning model, optimizer and one training step for this configuration.

    The step is the book's own `utils.train_step` (the one `utils.fit` and scripts/ddp_finetune.py use), so the
    numbers describe the training loop the chapters run, including its per-step bookkeeping (accuracy counts).
    """
    import torch

    import utils

    torch.manual_seed(0)
    model = utils.create_backbone("efficientnet_lite0", num_classes=10).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    dtype = utils.amp_dtype(device) if device.type == "cuda" else torch.bfloat16
    dtype = dtype if amp else None
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    net = torch.compile(model) if compile_model else model

    def step(x, y):
        return utils.train_step(net, [(x, y)], opt, device=device, amp=dtype, scaler=scaler,
                                channels_last=channels_last).loss

    return step, str(dtype).replace("torch.", "") if dtype else "fp32"


def measure_model(name: str, device, batches, steps: int, warmup: int) -> dict:
    """Images/s over `steps` training steps on batches already on the device, after `warmup` steps (and compiling).

    Peak memory is measured above what was in use before the model was built (the input batches), in MiB.
    """
    amp, cl, comp = CONFIGS[name]
    base = reset_peak_memory(device)
    step, dtype = build(device, amp, cl, comp)
    sync(device)
    t0 = time.perf_counter()
    for i in range(warmup):
        step(*batches[i % len(batches)])
    sync(device)
    t1 = time.perf_counter()
    for i in range(steps):
        loss = step(*batches[i % len(batches)])
    sync(device)
    seconds = time.perf_counter() - t1
    images = steps * len(batches[0][0])
    return {"config": name, "dtype": dtype, "images_per_s": round(images / seconds, 1),
            "warmup_s": round(t1 - t0, 1), "peak_mem_mib": round((peak_memory(device) or base) - base),
            "final_loss": round(loss.item(), 4)}


def measure_loader(device, dataset, batch_size: int, steps: int, workers: int, pin: bool) -> dict:
    """Images/s of the full loop (load + copy + AMP/channels_last step) for one workers/pin_memory setting."""
    import torch
    from torch.utils.data import DataLoader

    from utils.loaders import seed_worker

    step, _ = build(device, True, True, False)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, pin_memory=pin,
                        persistent_workers=workers > 0, worker_init_fn=seed_worker, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    it, warm = iter(loader), 3
    for i in range(warm + steps):
        if i == warm:
            sync(device)
            t0 = time.perf_counter()
        x, y = next(it)
        step(x.to(device, non_blocking=pin), y.to(device, non_blocking=pin))
    sync(device)
    return {"workers": workers, "pin_memory": pin, "images_per_s": round(steps * batch_size / (time.perf_counter() - t0), 1)}


def digits(n: int, size: int, device, batch_size: int):
    """MNIST digits resized to `size` (normalised), as a few fixed batches on the device."""
    import torch.nn.functional as F

    import utils

    data = utils.mnist_digits("train", image_size=None)  # 28 px; resize only the images used
    x = F.interpolate(data.images[:n], size=(size, size), mode="bilinear", align_corners=False)
    x, y = (x - 0.5) / 0.5, data.labels[:n]  # EfficientNet-Lite0's mean = std = 0.5
    return [(x[s:s + batch_size].to(device), y[s:s + batch_size].to(device)) for s in range(0, n - batch_size + 1, batch_size)]


def run_gpu(args, device) -> dict:
    import os

    import torch

    import utils

    batches = digits(args.batch_size * 4, args.size, device, args.batch_size)
    rows = [measure_model(name, device, batches, args.steps, 10 if "compile" in name else 3) for name in CONFIGS]
    print(table(rows, ["config", "dtype", "images_per_s", "peak_mem_mib", "warmup_s"]))
    raw = utils.mnist_digits("train", 64)
    dataset = DigitsPipeline((raw.images[:, 0] * 255).round().to(torch.uint8), raw.labels, args.size)
    n = min(4, os.cpu_count() or 1)
    loader_rows = [measure_loader(device, dataset, args.batch_size, args.steps, w, p) for w, p in ((0, False), (0, True), (n, False), (n, True))]
    print(table(loader_rows, ["workers", "pin_memory", "images_per_s"]))
    base = rows[0]["images_per_s"]
    return {"models": rows, "loaders": loader_rows,
            "ratios_vs_fp32": {r["config"]: round(r["images_per_s"] / base, 2) for r in rows},
            "memory_ratio_amp_vs_fp32": round(rows[1]["peak_mem_mib"] / max(rows[0]["peak_mem_mib"], 1), 2),
            "loader_ratio_best_vs_0_workers_unpinned": round(max(r["images_per_s"] for r in loader_rows) / loader_rows[0]["images_per_s"], 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--cpu-all", action="store_true", help="every configuration on the CPU at toy size (code-path check)")
    args = p.parse_args()
    import torch

    import utils

    utils.seed_everything(0, deterministic=False)  # cudnn.benchmark may pick the fastest kernels
    torch.backends.cudnn.benchmark = True
    if torch.cuda.is_available() or args.cpu_all:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if args.cpu_all:
            args.size, args.batch_size, args.steps = 32, 8, 2
        results = run_gpu(args, device)
        if not args.cpu_all:
            save_results("bench_gpu", {"setup": vars(args), **results})
        return
    print("No GPU present: measuring the CPU FP32 baseline only (64 px, batch 16); run on a CUDA machine for the rest.")
    cpu = torch.device("cpu")
    row = measure_model("fp32", cpu, digits(64, 64, cpu, 16), steps=4, warmup=1)
    print(table([row], ["config", "dtype", "images_per_s", "peak_mem_mib"]))
    save_results("bench_gpu", {"gpu": None, "note": "No GPU present: only the CPU FP32 baseline was measured.",
                               "setup": {"size": 64, "batch_size": 16, "steps": 4, "device": "cpu"}, "models": [row]})


if __name__ == "__main__":
    main()
