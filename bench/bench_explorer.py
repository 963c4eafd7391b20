"""How long the chapter-2 explorer takes to answer: probe, top block and full fine-tune (median over repeats, CPU).

Usage: python bench/bench_explorer.py [--repeats 3]

The explorer (utils/explorer.py) answers an interactive question ("what if I fine-tune the top block?") by
training or looking up a result; a reader waits for it, so its answer time is the number that matters. Each
strategy is asked `--repeats` times in this process; the median is reported (the first call may include
building a feature cache; it is reported separately). If utils/explorer.py is not there yet, or its entry point
is not one this script knows, the script says so, records that, and exits 0.
Writes bench/results/bench_explorer_<cpu|cuda>.json.
"""
from __future__ import annotations

import argparse
import statistics
import time

from benchlib import save_results, table

STRATEGIES = ("probe", "top_block", "full")
ENTRY_POINTS = ("answer", "explore", "run_strategy", "run")  # names the explorer's main function might have


def find_entry():
    """(module, callable) of the explorer, or (None, reason) when it is missing or unrecognised."""
    import importlib.util

    if importlib.util.find_spec("utils.explorer") is None:
        return None, "utils/explorer.py does not exist yet; nothing to measure"
    from utils import explorer

    for name in ENTRY_POINTS:
        fn = getattr(explorer, name, None)
        if callable(fn):
            return explorer, fn
    return None, f"utils.explorer has none of {ENTRY_POINTS}; update ENTRY_POINTS in bench/bench_explorer.py"


def strategy_names(explorer) -> list[str]:
    """The explorer's own names for probe / top block / full fine-tune, if it lists them."""
    names = getattr(explorer, "STRATEGIES", None)
    if isinstance(names, dict):
        names = list(names)
    return list(names)[:3] if names else list(STRATEGIES)


def time_calls(fn, strategy: str, repeats: int) -> dict:
    """First-call time and median of the following calls for one strategy."""
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        fn(strategy)
        times.append(time.perf_counter() - t0)
    return {"strategy": strategy, "first_s": round(times[0], 2), "median_s": round(statistics.median(times[1:]), 3),
            "repeats": repeats}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    import utils

    utils.seed_everything(0)
    explorer, fn = find_entry()
    if explorer is None:
        print(f"Skipped: {fn}.")
        save_results("bench_explorer", {"status": "skipped", "reason": fn})
        return
    rows = [time_calls(fn, s, args.repeats) for s in strategy_names(explorer)]
    print(table(rows, ["strategy", "first_s", "median_s", "repeats"]))
    save_results("bench_explorer", {"status": "measured", "entry_point": fn.__name__, "results": rows})


if __name__ == "__main__":
    main()
