"""Render the latest bench/results/*.json as Markdown into bench/README.md (between the results markers).

Usage: python bench/report.py          # rewrite the "Latest results" section of bench/README.md
       python bench/report.py --print  # only print it
"""
from __future__ import annotations

import argparse
import json

from benchlib import RESULTS, ROOT

START, END = "<!-- results:start -->", "<!-- results:end -->"


def md_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("—" if r.get(c) is None else str(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def where(res: dict) -> str:
    hw = res["hardware"]
    gpu = f", GPU {hw['gpu']['name']}" if hw.get("gpu") else ", no GPU"
    load = f"; load average {hw['load_avg_1min']} when it ran" if hw.get("load_avg_1min") is not None else ""
    return (f"*{res['date']}; {hw['cpu']} ({hw['cpu_count']} cores, {hw['torch_threads']} torch threads){gpu}; "
            f"torch {hw['torch']}{load}.*")


def cache_section(res: dict) -> str:
    s = res["seconds"]
    rows = [{"method": k, "seconds": v, "speed-up vs recompute": f"{s['recompute'] / v:.1f}x"} for k, v in s.items()]
    setup = res["setup"]
    return (f"{setup['images']} images at {setup['size']} px, {setup['epochs']} epochs. " + where(res) + "\n\n"
            + md_table(rows, ["method", "seconds", "speed-up vs recompute"])
            + f"\n\nCached and recomputed probes end with the same head weights (max difference "
              f"{res['max_head_weight_difference']:.1e}).")


def probe_section(res: dict) -> str:
    rows = [{"BLAS threads": k, "seconds (best)": min(v), "all runs": ", ".join(map(str, v))} for k, v in res["seconds"].items()]
    st = res["setup"]
    return (f"{st['train_examples']} labelled digits, {st['features']}; pools {st['pools']}. " + where(res) + "\n\n"
            + md_table(rows, ["BLAS threads", "seconds (best)", "all runs"])
            + f"\n\nBLAS default / one BLAS thread: {res['ratios']['blas_default/one_blas_thread']}x, same C chosen "
              f"({res['chosen_c']:.3g}).")


def workers_section(res: dict) -> str:
    st = res["setup"]
    rows = [{"workload": k.split(" | ")[0], "mode": k.split(" | ")[-1], "seconds (best)": min(v),
             "all runs": ", ".join(map(str, v))} for k, v in res["seconds"].items()]
    return (f"{st['seeds']} seeded runs per workload, {st['torch_threads']} torch threads in one process vs "
            f"{st['workers']} one-thread workers. " + where(res) + "\n\n"
            + md_table(rows, ["workload", "mode", "seconds (best)", "all runs"]) + "\n\nSpeed-up of the workers: "
            + "; ".join(f"{k.split(':')[0]} {v}x" for k, v in res["ratios"].items()) + " (mean accuracies agree within 0.02, checked; thread counts change float rounding, so the models differ slightly).")


def channels_last_section(res: dict) -> str:
    st = res["setup"]
    rows = [{"workload": k.split(" | ")[0], "layout": k.split(" | ")[-1], "training seconds (best)": min(v),
             "all runs": ", ".join(map(str, v))} for k, v in res["seconds"].items()]
    return (f"{st['seeds']} seeded runs per workload and layout, {st['torch_threads']} torch thread(s); `fit` timed "
            "alone. " + where(res) + "\n\n" + md_table(rows, ["workload", "layout", "training seconds (best)", "all runs"])
            + "\n\nSpeed-up of channels-last: " + "; ".join(f"{k.split(':')[0]} {v}x" for k, v in res["ratios"].items())
            + " (mean accuracies agree within 0.02, checked; the layout changes float rounding, so the models differ slightly).")


def group_by_length_section(res: dict) -> str:
    st = res["setup"]
    rows = [{"workload": k.split(" | ")[0], "batching": k.split(" | ")[1], "training seconds (best)": min(v),
             "all runs": ", ".join(map(str, v)),
             "real tokens": f"{sum(res['real_token_share'][k]) / len(res['real_token_share'][k]):.0%}",
             "mean test acc": round(sum(res["accuracies"][k]) / len(res["accuracies"][k]), 3)} for k, v in res["seconds"].items()]
    return (f"{st['seeds']} draws of {st['reviews per run']} reviews per repeat, batches of {st['batch_size']}, "
            f"{st['torch_threads']} torch thread(s); `fit` timed alone. " + where(res) + "\n\n"
            + md_table(rows, ["workload", "batching", "training seconds (best)", "all runs", "real tokens", "mean test acc"])
            + "\n\nSpeed-up of `group_by_length=True`: " + "; ".join(f"{k.split(':')[0]} {v}x" for k, v in res["ratios"].items())
            + " (the batch mix changes the training path, so accuracies are reported, not required to match).")


def gpu_section(res: dict) -> str:
    out = where(res) + "\n\n"
    if res.get("gpu") is None and "loaders" not in res:
        return out + f"{res['note']}\n\n" + md_table(res["models"], ["config", "dtype", "images_per_s", "peak_mem_mib"])
    out += md_table(res["models"], ["config", "dtype", "images_per_s", "peak_mem_mib", "warmup_s"]) + "\n\n"
    out += md_table(res["loaders"], ["workers", "pin_memory", "images_per_s"])
    return out + "\n\nRatios vs FP32: " + ", ".join(f"{k} {v}x" for k, v in res["ratios_vs_fp32"].items()) + "."


def minilm_section(res: dict) -> str:
    st = res["setup"]
    return (f"{st['texts']} reviews, max length {st['max_length']}, {st['epochs']} epochs. " + where(res) + "\n\n"
            + md_table(res["methods"], ["method", "extract_s", "epoch_s", "epoch_vs_full", "trainable", "peak_mib"]))


def notebooks_section(res: dict) -> str:
    book = res.get("budgets_s", {}).get("book")
    total = (f"\n\nThe book, every chapter summed: {res['cpu_total_s'] / 60:.1f} min"
             + (f" of its {book / 60:.0f}-minute budget." if book else "."))
    return where(res) + "\n\n" + md_table(res["chapters"], ["notebook", "device", "seconds", "budget_s", "used", "ok"]) + total


def explorer_section(res: dict) -> str:
    if res.get("status") != "measured":
        return where(res) + f"\n\nSkipped: {res.get('reason')}."
    return where(res) + "\n\n" + md_table(res["results"], ["strategy", "first_s", "median_s", "repeats"])


def explorer_grid_section(res: dict) -> str:
    """Size and generation time of the static explorer's precomputed grid (scripts/explorer_grid.py)."""
    rows, notes = [], []
    for kind in ("full", "small"):
        g = res.get(kind)
        if g:
            hw = g["hardware"]
            rows.append({"grid": kind, "settings": g["settings"], "runs": g["runs"], "choices": g["choices"],
                         "max epochs": g["max_epochs"], "CPU min": round(g["cpu_seconds"] / 60, 1),
                         "wall min": round(g["seconds"] / 60, 1),
                         "JSON KiB": round(g["json_bytes"] / 1024), "load avg": hw.get("load_avg_1min"), "date": g["date"]})
    est = res.get("full_estimate")
    if est:
        hw = est["hardware"]
        notes.append(f"Full grid, predicted from short timed runs: {est['runs']} runs, "
                     f"{est['estimated_seconds'] / 60:.0f} CPU-minutes on one thread ({hw['cpu']}, load average "
                     f"{hw.get('load_avg_1min')} when measured; " + ", ".join(f"{k} {v / 60:.1f}" for k, v in est["by_strategy_s"].items())
                     + " min).")
    if "full" not in res:
        notes.append("The full grid has not been generated yet: `python scripts/explorer_grid.py`.")
    return "One torch thread; CPU time is the cost (wall time also counts other jobs on a shared machine).\n\n" + md_table(
        rows, ["grid", "settings", "runs", "choices", "max epochs", "CPU min", "wall min",
                                                         "JSON KiB", "load avg", "date"]) + ("\n\n" + " ".join(notes) if notes else "")


SECTIONS = {"bench_cache": ("Feature cache vs recomputing the backbone", cache_section),
            "bench_probe": ("Linear probe: one BLAS thread vs the default next to torch", probe_section),
            "bench_workers": ("Seeded runs: one process vs one-thread workers side by side", workers_section),
            "bench_channels_last": ("CNN training on a CPU: NCHW vs channels-last", channels_last_section),
            "bench_group_by_length": ("Text models: random vs length-grouped batches", group_by_length_section),
            "bench_gpu": ("GPU fine-tuning throughput", gpu_section),
            "bench_minilm": ("MiniLM: probe vs full fine-tuning vs LoRA", minilm_section),
            "bench_explorer": ("Explorer answer time", explorer_section),
            "bench_notebooks": ("Chapter run times vs budgets", notebooks_section),
            "explorer_grid": ("Static explorer grid: size and generation time", explorer_grid_section)}


def render() -> str:
    parts = []
    for name, (title, fn) in SECTIONS.items():
        for path in sorted(RESULTS.glob(f"{name}_*.json")):
            parts.append(f"### {title} (`{path.name}`)\n\n{fn(json.loads(path.read_text()))}")
    return "\n\n".join(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--print", action="store_true", help="print only; leave README.md alone")
    args = p.parse_args()
    text = render()
    if args.print:
        print(text)
        return
    readme = ROOT / "bench" / "README.md"
    doc = readme.read_text()
    if START not in doc or END not in doc:
        raise SystemExit(f"bench/README.md lacks the markers {START} ... {END}")
    head, rest = doc.split(START, 1)
    readme.write_text(head + START + "\n\n" + text + "\n\n" + END + rest.split(END, 1)[1])
    print("bench/README.md updated")


if __name__ == "__main__":
    main()
