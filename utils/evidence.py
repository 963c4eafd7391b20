"""Evidence a reader can trust: run a recipe over seeds (or folds), summarise with spread, compare paired by seed, and
write the sentence from the numbers.

The book's results standard, as code:

* every comparison rests on >= 3 seeds (or repeated folds for tiny data): `sweep` runs them into a tidy table, in
  parallel worker processes on a multi-core CPU (`map_runs`, `default_workers`);
* every method is summarised with its spread: `summarise` (mean, sd, 95 % interval of the mean);
* two methods are compared *paired by seed* (same data draw, same initial head): `compare` gives the mean paired
  difference with a t-interval; a difference whose interval contains 0 is "within noise", never a finding;
* a chapter states the direction its lesson depends on and `Claims.expect` asserts it, with the numbers in the
  failure message; `Claims.table()` is the chapter's closing "What this chapter measured" table.

For repeated k-fold cross-validation the folds overlap, so the plain paired t-interval is too narrow; pass
`cv_ratio = n_test / n_train` to use Nadeau and Bengio's corrected variance.
"""
from __future__ import annotations

import functools
import itertools
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["sweep", "map_runs", "default_workers", "cpu_time", "repeated_folds", "Fold", "summarise", "describe", "span",
           "Comparison", "compare", "compare_to", "p_text", "mcnemar", "Claims", "plot_curves", "plot_points", "MIN_PAIRS"]

MIN_PAIRS = 3  # the book's standard: no comparison on fewer than three seeds or folds


def _t(level: float, dof: int) -> float:
    from scipy import stats

    return float(stats.t.ppf((1 + level) / 2, dof))


# --- Running ---------------------------------------------------------------------------------------------------
MAX_WORKERS = 4  # each worker holds its own model, optimiser and activations: memory, not cores, limits more


def default_workers() -> int:
    """How many runs to train at once: one per torch thread (at most 4) on a Linux CPU, else 1.

    Small models use two threads poorly (measured in `bench/bench_workers.py`), so two one-thread processes train two
    seeds in well under twice the time of one. On CUDA/MPS, or where `fork` is unavailable, runs stay in this process.
    Set TRANSFER_BOOK_WORKERS to choose (1: every run in this process).
    """
    import torch

    from .checks import check_int
    from .device import get_device

    env = os.environ.get("TRANSFER_BOOK_WORKERS", "").strip()
    if env:
        return check_int(int(env) if env.lstrip("-").isdigit() else env, "TRANSFER_BOOK_WORKERS", 1,
                         hint="(a whole number of worker processes; 1 runs everything in this process)")
    if not sys.platform.startswith("linux") or get_device().type != "cpu":
        return 1
    return max(1, min(MAX_WORKERS, torch.get_num_threads()))


_PENDING: tuple | None = None  # (fn, jobs) for the forked workers of `map_runs`; they inherit it, nothing is pickled


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    try:  # NumPy's and scikit-learn's BLAS/OpenMP pools too, or the workers oversubscribe the cores
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass


def _worker_call(i: int):
    from .device import seed_everything

    fn, jobs = _PENDING
    seed_everything(10_007 * (i + 1) % 2**31)  # a fixed state per job, whichever worker runs it: reruns match
    return fn(**jobs[i])


def map_runs(fn: Callable, jobs: Sequence[dict], workers: int | None = None, progress: bool = True,
             desc: str = "runs") -> list:
    """`[fn(**job) for job in jobs]`, run in `workers` forked one-thread processes when there is more than one.

    Seeded runs are independent, so they can train side by side. In a worker, `fn`'s side effects (a dict it fills, a
    model it keeps) stay in the worker: return what you need, or pass `workers=1`. Results must be picklable. A job
    that fails raises here with the worker's traceback. Each job starts from a fixed random state, so a function that
    seeds itself (as the book's do) gives the same numbers at any worker count, up to float rounding of thread counts.
    """
    from .checks import check_int
    from .progress import progress_bar

    if not callable(fn):
        raise TypeError(f"fn must be a function that takes the job's keywords, got {type(fn).__name__}.")
    jobs = list(jobs)
    if any(not isinstance(j, dict) for j in jobs):
        raise TypeError("jobs must be a list of dicts of keyword arguments, e.g. [{'seed': 0}, {'seed': 1}].")
    workers = default_workers() if workers is None else check_int(workers, "workers", 1, hint="(1 runs in this process)")
    workers = min(workers, len(jobs))
    with progress_bar(total=len(jobs), desc=desc, disable=not progress, leave=False) as bar:
        if workers <= 1:
            out = []
            for job in jobs:
                out.append(fn(**job))
                bar.update()
            return out
        import multiprocessing

        import torch

        global _PENDING
        threads = max(1, torch.get_num_threads() // workers)
        _PENDING, out = (fn, jobs), []
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
                pool = multiprocessing.get_context("fork").Pool(workers, _worker_init, (threads,))
            with pool:
                for result in pool.imap(_worker_call, range(len(jobs)), chunksize=1):
                    out.append(result)
                    bar.update()
                pool.close()
                pool.join()  # reaped workers: their CPU time shows in `cpu_time()`
        finally:
            _PENDING = None
        return out


def cpu_time() -> float:
    """CPU seconds used by this process and its finished worker processes (`time.process_time` misses the workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def sweep(fn: Callable[..., float | dict], seeds: Sequence[int], progress: bool = True, desc: str = "runs",
          workers: int | None = None, **axes):
    """Call `fn(seed=s, **setting)` for every combination of the `axes` values and every seed; one row per call.

    `fn` returns a number (stored as `value`) or a dict of metrics. Axes given a single value (not a list) are held
    fixed. Returns a pandas DataFrame with one column per axis, `seed`, and the metrics. The runs train side by side
    in `workers` processes (default: `default_workers()`; see `map_runs` for what that asks of `fn`).
    """
    import pandas as pd

    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: pass e.g. range(3) (the book's minimum is 3 seeds per comparison).")
    names = list(axes)
    values = [v if isinstance(v, (list, tuple, range)) else [v] for v in axes.values()]
    jobs = [{**dict(zip(names, combo)), "seed": s} for combo in itertools.product(*values) for s in seeds]
    outs = map_runs(fn, jobs, workers=workers, progress=progress, desc=desc)
    return pd.DataFrame([{**job, **(out if isinstance(out, dict) else {"value": out})} for job, out in zip(jobs, outs)])


@dataclass(frozen=True)
class Fold:
    """One train/test split of a repeated stratified k-fold: which repeat, which fold, and the row indices."""

    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray

    @property
    def id(self) -> int:
        return self.repeat * 1000 + self.fold


def repeated_folds(labels, n_splits: int = 5, n_repeats: int = 3, seed: int = 0) -> list[Fold]:
    """Repeated stratified k-fold over *all* examples: every example is tested once per repeat (for tiny datasets)."""
    from sklearn.model_selection import RepeatedStratifiedKFold

    from .checks import check_int, check_labels, check_seed

    labels = check_labels(labels, "labels").numpy()
    if len(labels) == 0:
        raise ValueError("labels is empty: pass one class index per example.")
    n_splits = check_int(n_splits, "n_splits", 2)
    n_repeats = check_int(n_repeats, "n_repeats", 1)
    seed = check_seed(seed)
    counts = np.bincount(labels)
    if min(counts[counts > 0]) < n_splits:
        raise ValueError(f"n_splits must be >= 2 and at most the smallest class size ({min(counts[counts > 0])}); got {n_splits}.")
    rskf = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    return [Fold(i // n_splits, i % n_splits, tr, te) for i, (tr, te) in enumerate(rskf.split(np.zeros(len(labels)), labels))]


# --- Summaries -------------------------------------------------------------------------------------------------
def summarise(df, metric: str = "acc", by: str | Sequence[str] = "method", level: float = 0.95):
    """Mean, sd, n, min, max and a t-interval of the mean of `metric` for each group of `by` (one row per group)."""
    import pandas as pd

    _need(df, [metric, *([by] if isinstance(by, str) else by)])

    def row(v: pd.Series) -> pd.Series:
        v = v.dropna().astype(float)
        n, m = len(v), float(v.mean())
        sd = float(v.std(ddof=1)) if n > 1 else float("nan")
        half = _t(level, n - 1) * sd / math.sqrt(n) if n > 1 else float("nan")
        return pd.Series({"mean": m, "sd": sd, "n": n, "ci_low": m - half, "ci_high": m + half,
                          "min": float(v.min()), "max": float(v.max())})

    out = df.groupby(by, sort=False)[metric].apply(row).unstack()
    out["n"] = out["n"].astype(int)
    return out


def describe(df, metric: str = "acc", by: str = "method", scale: float = 100, unit: str = "%", digits: int = 1) -> str:
    """'A 87.3 ± 1.2 %, B 80.1 ± 2.0 % (mean ± sd over 5 seeds)': a summary sentence generated from the table."""
    s = summarise(df, metric, by)
    parts = [f"{name} {r['mean'] * scale:.{digits}f} ± {r['sd'] * scale:.{digits}f}{' ' if unit == '%' else ''}{unit}"
             for name, r in s.iterrows()]
    ns = sorted(set(s["n"]))
    return ", ".join(parts) + f" (mean ± sd over {'/'.join(map(str, ns))} {_pair_word('seed', max(ns))})"


def span(values, fmt: str = "{:.3f}") -> str:
    """'0.78–0.80' over seeds, or one number when the range prints as one ('100%', not '100%–100%')."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        raise ValueError("span needs at least one value.")
    lo, hi = fmt.format(v.min()), fmt.format(v.max())
    return lo if lo == hi else f"{lo}–{hi}"


def _need(df, cols: Iterable[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"The results table has no column(s) {missing}; it has {list(df.columns)}.")


def _pair_word(pair: str | Sequence[str], n: int) -> str:
    key = pair if isinstance(pair, str) else "fold" if "fold" in pair else pair[0]
    word = {"seed": "seed", "fold": "fold", "draw": "draw"}.get(key, "pair")
    return word if n == 1 else word + "s"


def _p_floor(p: float) -> float:
    return math.floor(p * 1000) / 1000 if p == p else p  # nan stays nan


def p_text(p: float) -> str:
    """A p-value as the book prints it: rounded *down* to 3 decimals (0.04998 never reads 0.05), "< 0.001" below."""
    return "< 0.001" if p < 0.001 else f"{_p_floor(p):.3f}"


# --- Paired comparisons ----------------------------------------------------------------------------------------
@dataclass
class Comparison:
    """A paired comparison of method `a` against `b`: mean difference (a - b), its interval, and the verdict."""

    a: str
    b: str
    metric: str
    diffs: np.ndarray
    mean_a: float
    mean_b: float
    level: float = 0.95
    cv_ratio: float | None = None
    scale: float = 100
    unit: str = "points"
    pair: str = "seed"
    where: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def diff(self) -> float:
        return float(self.diffs.mean())

    @property
    def sd(self) -> float:
        return float(self.diffs.std(ddof=1)) if self.n > 1 else float("nan")

    @property
    def _se(self) -> float:
        """Standard error of the mean difference; Nadeau-Bengio's (1/J + n_test/n_train) * s^2 when cv_ratio is set."""
        return self.sd * math.sqrt(1 / self.n + (self.cv_ratio or 0.0))

    @property
    def ci(self) -> tuple[float, float]:
        half = _t(self.level, self.n - 1) * self._se if self.n > 1 else float("inf")
        return self.diff - half, self.diff + half

    @property
    def p(self) -> float:
        """Two-sided p-value of the paired t-test (with the same corrected variance as `ci`); nan for one pair."""
        if self.n < 2:
            return float("nan")
        se = self._se
        if se == 0:
            return 0.0 if self.diff != 0 else 1.0
        from scipy import stats

        return float(2 * stats.t.sf(abs(self.diff) / se, self.n - 1))

    @property
    def weak(self) -> bool:
        """A verdict that clears 0 at the chosen level but not at 1 %: the interval only just excludes no difference."""
        return self.verdict != "noise" and self.p > 0.01

    @property
    def wins(self) -> int:
        """In how many pairs (seeds, folds) `a` came out ahead."""
        return int((self.diffs > 0).sum())

    @property
    def verdict(self) -> str:
        """'a' (a is better), 'b' (b is better) or 'noise' (the interval contains 0)."""
        lo, hi = self.ci
        return "a" if lo > 0 else "b" if hi < 0 else "noise"

    def _num(self, v: float, sign: bool = False, unit: bool = False) -> str:
        text = f"{v * self.scale:{'+' if sign else ''}.1f}"
        return f"{text} {self.unit}" if unit and self.unit else text

    def _tail(self, flip: bool = False) -> str:
        lo, hi = (-self.ci[1], -self.ci[0]) if flip else self.ci
        return (f"{self.level * 100:.0f} % interval {self._num(lo, True)} to {self._num(hi, True, unit=True)}, "
                f"{self.n} {_pair_word(self.pair, self.n)}")

    def _means(self, flip: bool = False) -> str:
        first, second = (self.mean_b, self.mean_a) if flip else (self.mean_a, self.mean_b)
        if self.scale == 100 and self.unit == "points":
            return f"{first * 100:.1f} % vs {second * 100:.1f} %"
        return f"{first * self.scale:#.3g} vs {second * self.scale:#.3g}"

    def sentence(self) -> str:
        """The finding in words, generated from the numbers (never hand-written), from the winner's side."""
        if self.verdict == "noise":
            return (f"{self.a} and {self.b} are within noise here ({self._means()}; difference "
                    f"{self._num(self.diff, True, unit=True)}, {self._tail()})")
        flip = self.verdict == "b"
        win, lose, d = (self.b, self.a, -self.diff) if flip else (self.a, self.b, self.diff)
        verb = "beats" if self.unit == "points" else "exceeds"  # "beats" only where higher is better (accuracy)
        weak = f"; weak evidence, p = {p_text(self.p)}" if self.weak else ""
        return f"{win} {verb} {lose} by {self._num(d, unit=True)} ({self._means(flip)}; {self._tail(flip)}{weak})"

    def row(self) -> dict:
        """The comparison as a table row; `p` rounded down to 3 decimals, as the sentences print it."""
        lo, hi = self.ci
        return {"a": self.a, "b": self.b, **self.where, "mean a": self.mean_a, "mean b": self.mean_b,
                "difference": self.diff, "ci low": lo, "ci high": hi, "p": _p_floor(self.p), "n": self.n,
                "a wins": f"{self.wins}/{self.n}",
                "verdict": {"a": f"{self.a} better", "b": f"{self.b} better", "noise": "within noise"}[self.verdict]}

    def __str__(self) -> str:
        return self.sentence()


def _check_level(level: float) -> float:
    if not 0.5 <= level < 1:
        raise ValueError(f"level must be a confidence level in [0.5, 1), e.g. 0.95; got {level!r}.")
    return level


def compare(df, a: str, b: str, metric: str = "acc", by: str = "method", pair: str | Sequence[str] = "seed",
            level: float = 0.95, cv_ratio: float | None = None, scale: float = 100, unit: str = "points",
            min_pairs: int = MIN_PAIRS, **where) -> Comparison:
    """Compare method `a` with `b` (values of column `by`) on `metric`, paired on `pair` (seed, or repeat+fold).

    `where` filters the table first (e.g. `labels=16`). Pairs present for only one method are an error: an unpaired
    seed would silently bias the comparison.
    """
    _check_level(level)
    pairs = [pair] if isinstance(pair, str) else list(pair)
    _need(df, [metric, by, *pairs, *where])
    for col, val in where.items():
        df = df[df[col] == val]
    sides = {}
    for name in (a, b):
        part = df[df[by] == name].set_index(pairs)[metric].astype(float)
        if part.empty:
            raise ValueError(f"No rows with {by} == {name!r}{' and ' + str(where) if where else ''}; "
                             f"{by} values present: {sorted(map(str, df[by].unique()))}.")
        if part.index.duplicated().any():
            raise ValueError(f"{name!r} has several rows per {pairs}; filter the table (e.g. labels=...) so each "
                             "pair appears once.")
        sides[name] = part
    common = sides[a].index.intersection(sides[b].index)
    lonely = sides[a].index.symmetric_difference(sides[b].index)
    if len(lonely):
        raise ValueError(f"{len(lonely)} {pairs} value(s) appear for only one of {a!r} and {b!r} (e.g. {list(lonely)[:3]}); "
                         "run both methods on the same seeds.")
    if len(common) < min_pairs:
        raise ValueError(f"Only {len(common)} paired {_pair_word(pair, len(common))}; the book compares methods on "
                         f"at least {min_pairs}.")
    da, db = sides[a].loc[common], sides[b].loc[common]
    return Comparison(a, b, metric, (da - db).to_numpy(), float(da.mean()), float(db.mean()), level, cv_ratio, scale,
                      unit, pairs[0] if len(pairs) == 1 else "fold", dict(where))


def compare_to(df, a: str, value: float, name: str = "chance", metric: str = "acc", by: str = "method",
               level: float = 0.95, scale: float = 100, unit: str = "points", min_pairs: int = MIN_PAIRS,
               **where) -> Comparison:
    """Compare method `a` with a fixed number (chance, a majority-class rate): a one-sample interval over its seeds."""
    _check_level(level)
    _need(df, [metric, by, *where])
    for col, val in where.items():
        df = df[df[col] == val]
    vals = df[df[by] == a][metric].astype(float).to_numpy()
    if len(vals) < min_pairs:
        raise ValueError(f"{a!r} has {len(vals)} runs{' with ' + str(where) if where else ''}; need at least {min_pairs}.")
    return Comparison(a, name, metric, vals - value, float(vals.mean()), float(value), level, None, scale, unit, "seed",
                      dict(where))


def mcnemar(correct_a, correct_b) -> float:
    """Exact one-sided McNemar p-value that model `a` is more accurate than `b` on the same test examples.

    One trained model against another (e.g. a float model and its int8 copy): of the examples where exactly one is
    right, how surprising is `a`'s share if each were equally likely? This is the test-set noise for one pair of
    models; whether a *recipe* helps across seeds is `compare`'s question, not this one.
    """
    from scipy.stats import binomtest

    a, b = (np.asarray(getattr(x, "numpy", lambda: x)(), dtype=bool).ravel() for x in (correct_a, correct_b))
    if a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b must score the same examples; got {a.size} and {b.size}.")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5, alternative="greater").pvalue)


# --- Claims: what a chapter asserts, and its closing table -------------------------------------------------------
_EXPECT = {"better": ("a",), "worse": ("b",), "noise": ("noise",), "not worse": ("a", "noise"), "not better": ("b", "noise")}


class Claims:
    """The claims a chapter makes about its own numbers, each checked when made; `table()` lists them at the end."""

    def __init__(self):
        self.rows: list[dict] = []

    def expect(self, comparison: Comparison, outcome: str, claim: str = "") -> Comparison:
        """Assert that `a` is 'better', 'worse', 'not worse', 'not better' than `b`, or 'noise' (within noise).

        Asserting 'noise' or 'not worse' is only a claim if the chapter also shows a control that the method runs
        correctly (otherwise a broken method would pass); say which in `claim`.
        """
        if outcome not in _EXPECT:
            raise ValueError(f"outcome must be one of {list(_EXPECT)}, got {outcome!r}.")
        holds = comparison.verdict in _EXPECT[outcome]
        self.rows.append({"claim": claim or f"{comparison.a} {outcome} than {comparison.b}".replace("noise than", "within noise of"),
                          "measured": comparison.sentence(), "n": comparison.n, "holds": holds})
        if not holds:
            raise AssertionError(f"Claim failed ({outcome!r} expected): {comparison.sentence()}. "
                                 f"Paired differences: {np.round(comparison.diffs * comparison.scale, 2).tolist()}.")
        return comparison

    def check(self, condition: bool, claim: str, measured: str) -> None:
        """A claim that is not a two-method comparison (e.g. 'the cache returns identical tensors'), asserted."""
        self.rows.append({"claim": claim, "measured": measured, "n": None, "holds": bool(condition)})
        if not condition:
            raise AssertionError(f"Claim failed: {claim} — measured: {measured}")

    def table(self):
        """The chapter's closing table: claim, what was measured, how many seeds/folds, verdict."""
        import pandas as pd

        df = pd.DataFrame(self.rows, columns=["claim", "measured", "n", "holds"])
        df["n"] = df["n"].astype("Int64")
        df["holds"] = df["holds"].map({True: "yes", False: "no"})
        return _wide(df.rename(columns={"n": "seeds/folds", "holds": "holds"}))


@functools.cache
def _wide_table() -> type:
    """A DataFrame that displays without pandas' 50-character cut (a claim cut in half is not a claim)."""
    import pandas as pd

    class WideTable(pd.DataFrame):
        @property
        def _constructor(self):
            return WideTable

        def _repr_html_(self):
            with pd.option_context("display.max_colwidth", None):
                return super()._repr_html_()

        def __repr__(self):
            with pd.option_context("display.max_colwidth", None):
                return super().__repr__()

    return WideTable


def _wide(df):
    """The same DataFrame, shown in full."""
    return _wide_table()(df)


# --- Plots that show the spread ----------------------------------------------------------------------------------
def plot_curves(df, x: str, y: str = "acc", by: str = "method", ax=None, band: str = "sd", logx: bool = False,
                scale: float = 1.0, legend_outside: bool = True):
    """Mean of `y` against `x` for each method, with a band (sd or min-max over seeds) and each seed as a faint dot."""
    import matplotlib.pyplot as plt

    if band not in ("sd", "minmax"):
        raise ValueError(f"band must be 'sd' or 'minmax', got {band!r}.")
    _need(df, [x, y, by])
    ax = ax or plt.subplots(figsize=(6.8, 4))[1]
    for i, (name, part) in enumerate(df.groupby(by, sort=False)):
        g = part.groupby(x)[y]
        m, lo, hi = g.mean() * scale, None, None
        if band == "sd":
            sd = g.std(ddof=1).fillna(0) * scale
            lo, hi = m - sd, m + sd
        else:
            lo, hi = g.min() * scale, g.max() * scale
        ax.plot(m.index, m.values, marker="o", color=f"C{i}", label=str(name))
        ax.fill_between(m.index, lo.values, hi.values, color=f"C{i}", alpha=0.18, lw=0)
        ax.scatter(part[x], part[y] * scale, color=f"C{i}", s=8, alpha=0.35, lw=0)
    if logx:
        import matplotlib.ticker as mticker

        ax.set_xscale("log")
        ax.set_xticks(sorted(df[x].unique()), [f"{v:g}" for v in sorted(df[x].unique())])  # the measured points
        ax.xaxis.set_minor_formatter(mticker.NullFormatter())  # no "2×10¹" labels crowding them
    ax.set(xlabel=x, ylabel=y)
    ax.grid(alpha=0.3)
    if legend_outside:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize=8)
    return ax


def plot_points(df, y: str = "acc", by: str = "method", ax=None, scale: float = 1.0, order: Sequence[str] | None = None):
    """One row per method: every seed as a dot, the mean as a bar tick with ± sd, so the spread is visible."""
    import matplotlib.pyplot as plt

    _need(df, [y, by])
    names = list(order) if order is not None else list(dict.fromkeys(df[by]))
    ax = ax or plt.subplots(figsize=(6.5, 0.45 * len(names) + 1.2))[1]
    for i, name in enumerate(names):
        v = df[df[by] == name][y].astype(float).to_numpy() * scale
        ax.scatter(v, np.full(len(v), i), color=f"C{i}", s=18, alpha=0.6, zorder=3)
        if len(v):
            sd = v.std(ddof=1) if len(v) > 1 else 0.0
            ax.errorbar(v.mean(), i, xerr=sd, fmt="|", color="black", ms=14, capsize=3, zorder=4)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set(xlabel=y)
    ax.grid(alpha=0.3, axis="x")
    return ax
