"""Chapter run times (bench/results/notebook_times.csv) against their budgets: 3 min vision, 4 min sequence and closing chapters, 25 min the book.

Usage: python bench/execute_notebooks.py notebooks/*.ipynb   # re-runs chapters and records their times
       python bench/bench_notebooks.py [--strict]             # summarises them; --strict exits 1 if one is over

A chapter's budget is for 2 CPU cores. Chapters on text (RNNs, BERT, GloVe, MiniLM, sequences) and the two
closing practice chapters (evaluating, shipping: 4 minutes each in their issue) get 4 minutes, all others 3. The whole
book, every chapter summed, gets 25 minutes. Writes bench/results/bench_notebooks_<cpu|cuda>.json.
"""
from __future__ import annotations

import argparse
import csv
import re
import sys

from benchlib import ROOT, RESULTS, save_results, table

VISION_BUDGET_S, SEQUENCE_BUDGET_S, BOOK_BUDGET_S = 180, 240, 25 * 60
SEQUENCE = re.compile(r"rnn|lstm|bert|minilm|glove|word|ulmfit|text|sequence|nlp|language|sentiment|char|evaluating|shipping", re.I)


def budget(notebook: str) -> int:
    """Seconds a chapter may take on 2 CPU cores, judged from its file name."""
    return SEQUENCE_BUDGET_S if SEQUENCE.search(notebook) else VISION_BUDGET_S


def summarise(rows: list[dict]) -> list[dict]:
    """One row per (notebook, device) with its budget, the share of it used, and whether it fits."""
    out = []
    for r in rows:
        seconds, limit = float(r["seconds"]), budget(r["notebook"])
        out.append({"notebook": r["notebook"], "device": r["device"], "seconds": seconds, "budget_s": limit,
                    "used": f"{seconds / limit:.0%}", "ok": seconds <= limit, "date": r.get("date", "")})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--strict", action="store_true", help="exit with status 1 if a chapter is over budget")
    args = p.parse_args()
    path = RESULTS / "notebook_times.csv"
    if not path.exists():
        print(f"No {path.relative_to(ROOT)} yet: run bench/execute_notebooks.py on some chapters first.")
        return
    rows = summarise(list(csv.DictReader(path.open())))
    print(table(rows, ["notebook", "device", "seconds", "budget_s", "used", "ok", "date"]))
    missing = sorted({n.name for n in (ROOT / "notebooks").glob("*.ipynb")} - {r["notebook"] for r in rows})
    over = [r["notebook"] for r in rows if not r["ok"]]
    total = sum(r["seconds"] for r in rows if r["device"].startswith("CPU"))
    print(f"{len(rows)} timings, {len(over)} over budget{': ' + ', '.join(over) if over else ''}; "
          f"CPU total {total / 60:.1f} min of the book's {BOOK_BUDGET_S / 60:.0f}"
          + (f"; not timed yet: {', '.join(missing)}" if missing else ""))
    save_results("bench_notebooks", {"budgets_s": {"vision": VISION_BUDGET_S, "sequence": SEQUENCE_BUDGET_S,
                                                   "book": BOOK_BUDGET_S},
                                     "chapters": rows, "over_budget": over, "not_timed": missing,
                                     "cpu_total_s": round(total, 1), "book_ok": total <= BOOK_BUDGET_S})
    if args.strict and (over or total > BOOK_BUDGET_S):
        sys.exit(1)


if __name__ == "__main__":
    main()
