"""utils.evidence: the statistics behind every comparison in the book, checked on synthetic data with known answers."""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
import pandas as pd
import pytest

from utils import evidence as ev


def table(a, b, names=("A", "B"), pair="seed"):
    return pd.DataFrame([{"method": names[0], pair: i, "acc": v} for i, v in enumerate(a)]
                        + [{"method": names[1], pair: i, "acc": v} for i, v in enumerate(b)])


def test_paired_interval_matches_the_textbook_t_interval():
    c = ev.compare(table([0.3, 0.5, 0.7], [0.29, 0.48, 0.67]), "A", "B")  # differences 0.01, 0.02, 0.03
    assert c.n == 3 and c.diff == pytest.approx(0.02) and c.sd == pytest.approx(0.01)
    half = 4.302653 * 0.01 / math.sqrt(3)  # t(0.975, 2) = 4.3027: three seeds give a wide interval
    assert c.ci == pytest.approx((0.02 - half, 0.02 + half), rel=1e-5)
    assert c.verdict == "noise" and c.wins == 3  # A won every seed, yet 3 seeds cannot exclude zero here


def test_a_consistent_difference_is_a_finding_and_pairing_is_what_finds_it():
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0, 0.05, 6)  # seeds differ a lot (data draw, init) ...
    a, b = 0.8 + seed_effect + 0.02, 0.8 + seed_effect + rng.normal(0, 0.003, 6)  # ... A is 2 points better on each
    c = ev.compare(table(a, b), "A", "B")
    assert c.verdict == "a" and c.ci[0] > 0
    # An unpaired view (difference of means against the spread of each method) could not tell them apart:
    s = ev.summarise(table(a, b))
    assert s.loc["A", "ci_low"] < s.loc["B", "mean"] and s.loc["B", "ci_high"] > s.loc["A", "mean"]


def test_p_value_matches_scipy_and_a_barely_clear_verdict_says_it_is_weak():
    from scipy import stats

    a, b = [0.3, 0.5, 0.7, 0.6], [0.29, 0.48, 0.67, 0.6]  # differences 0.01, 0.02, 0.03, 0.00
    c = ev.compare(table(a, b), "A", "B")
    assert c.p == pytest.approx(stats.ttest_rel(a, b).pvalue)
    weak = ev.compare(table([0.80, 0.81, 0.82], [0.79, 0.795, 0.807]), "A", "B")  # differences 0.01, 0.015, 0.013
    assert weak.verdict == "a" and 0.01 < weak.p < 0.05 and weak.weak
    assert weak.sentence().endswith(f"weak evidence, p = {math.floor(weak.p * 1000) / 1000:.3f})")
    class Nearly(ev.Comparison):
        p = 0.04998  # a p-value just under 0.05 must not print as 0.05

    assert "p = 0.049)" in Nearly("A", "B", "acc", weak.diffs, 0.8, 0.79).sentence()
    strong = ev.compare(table([0.80, 0.81, 0.82], [0.79, 0.80, 0.8101]), "A", "B")  # ~1 point on every seed
    assert strong.verdict == "a" and strong.p < 0.01 and not strong.weak and "weak" not in strong.sentence()
    noise = ev.compare(table([0.3, 0.5, 0.7], [0.29, 0.48, 0.67]), "A", "B")
    assert noise.verdict == "noise" and not noise.weak and noise.p > 0.05  # the verdict and the p-value agree
    assert weak.row()["p"] == math.floor(weak.p * 1000) / 1000  # the table prints what the sentence prints


def test_p_text_rounds_down_and_floors_tiny_values():
    assert ev.p_text(0.04998) == "0.049" and ev.p_text(0.0101) == "0.010" and ev.p_text(0.0004) == "< 0.001"


def test_the_95_percent_interval_covers_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(600):
        a = rng.normal(0.7, 0.03, 5)
        b = a - 0.01 + rng.normal(0, 0.02, 5)  # true difference +0.01
        lo, hi = ev.compare(table(a, b), "A", "B").ci
        covered += lo <= 0.01 <= hi
    assert 0.92 <= covered / 600 <= 0.98


def test_no_difference_is_reported_as_within_noise_with_the_numbers():
    c = ev.compare(table([0.70, 0.72, 0.69, 0.71], [0.71, 0.70, 0.70, 0.72], ("fine-tune", "probe")), "fine-tune", "probe")
    assert c.verdict == "noise"
    s = c.sentence()
    assert s.startswith("fine-tune and probe are within noise here") and "4 seeds" in s and "interval" in s


def test_the_sentence_names_the_winner_whoever_it_is():
    c = ev.compare(table([0.60, 0.61, 0.62], [0.80, 0.81, 0.83], ("scratch", "transfer")), "scratch", "transfer")
    assert c.verdict == "b"
    assert c.sentence() == "transfer beats scratch by 20.3 points (81.3 % vs 61.0 %; 95 % interval +18.9 to +21.8 points, 3 seeds)"


def test_nadeau_bengio_correction_widens_the_interval_for_overlapping_folds():
    df = table([0.9, 0.92, 0.91, 0.93, 0.9], [0.88, 0.9, 0.9, 0.9, 0.89], pair="fold")
    plain, corrected = ev.compare(df, "A", "B", pair="fold"), ev.compare(df, "A", "B", pair="fold", cv_ratio=0.25)
    w = lambda c: c.ci[1] - c.ci[0]  # noqa: E731
    assert w(corrected) / w(plain) == pytest.approx(math.sqrt((1 / 5 + 0.25) / (1 / 5)))
    assert "5 folds" in corrected.sentence()


def test_compare_refuses_unpaired_missing_or_too_few_runs():
    df = table([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    with pytest.raises(ValueError, match="only one of"):
        ev.compare(df.drop(index=5), "A", "B")
    with pytest.raises(ValueError, match=r"No rows with method == 'C'.*'A', 'B'"):
        ev.compare(df, "A", "C")
    with pytest.raises(ValueError, match="at least 3"):
        ev.compare(table([0.5, 0.6], [0.4, 0.5]), "A", "B")
    with pytest.raises(ValueError, match="several rows"):
        ev.compare(pd.concat([df, df]), "A", "B")
    with pytest.raises(KeyError, match="no column"):
        ev.compare(df, "A", "B", metric="f1")


def test_where_filters_before_pairing():
    df = pd.concat([table([0.5, 0.6, 0.7], [0.4, 0.5, 0.6]).assign(labels=16),
                    table([0.8, 0.8, 0.8], [0.9, 0.9, 0.9]).assign(labels=64)])
    assert ev.compare(df, "A", "B", labels=16).diff == pytest.approx(0.1)
    assert ev.compare(df, "A", "B", labels=64).row()["labels"] == 64


def test_compare_to_a_constant():
    df = table([0.52, 0.49, 0.51], [0, 0, 0])
    c = ev.compare_to(df, "A", 0.5, "chance")
    assert c.verdict == "noise" and "A and chance are within noise" in c.sentence()
    assert ev.compare_to(table([0.61, 0.63, 0.62], [0, 0, 0]), "A", 0.5).verdict == "a"


def test_summarise_and_describe():
    s = ev.summarise(table([0.1, 0.2, 0.3], [0.5, 0.5, 0.5]))
    assert s.loc["A", "mean"] == pytest.approx(0.2) and s.loc["A", "sd"] == pytest.approx(0.1) and s.loc["A", "n"] == 3
    assert s.loc["B", "sd"] == 0 and s.loc["B", "ci_low"] == s.loc["B", "ci_high"] == pytest.approx(0.5)
    assert ev.describe(table([0.1, 0.2, 0.3], [0.5, 0.5, 0.5])) == "A 20.0 ± 10.0 %, B 50.0 ± 0.0 % (mean ± sd over 3 seeds)"


def test_sweep_runs_every_setting_and_seed():
    calls = []

    def fn(seed, method, labels):
        calls.append((seed, method, labels))
        return {"acc": seed / 10 + labels / 100} if method == "a" else seed

    df = ev.sweep(fn, seeds=range(3), method=["a", "b"], labels=[1, 2], progress=False, workers=1)
    assert len(df) == len(calls) == 12 and set(df.columns) == {"method", "labels", "seed", "acc", "value"}
    assert df[(df.method == "a") & (df.labels == 2) & (df.seed == 1)]["acc"].item() == pytest.approx(0.12)
    fixed = ev.sweep(lambda seed, k: seed * k, seeds=[0, 1, 2], k=3, progress=False)
    assert fixed["value"].tolist() == [0, 3, 6] and (fixed["k"] == 3).all()
    with pytest.raises(ValueError, match="seeds is empty"):
        ev.sweep(fn, seeds=[], method="a", labels=1)


def _seeded_run(seed, scale):
    # seeds itself, as the book's runs do: the same numbers in any process, in any order
    import torch

    torch.manual_seed(seed)
    x = torch.randn(64, 8)
    return {"value": float(scale * x.sum()), "threads": torch.get_num_threads(), "pid": os.getpid()}


def test_parallel_sweep_matches_the_serial_one_and_runs_in_one_thread_workers():
    serial = ev.sweep(_seeded_run, seeds=range(4), scale=[1.0, 2.0], progress=False, workers=1)
    parallel = ev.sweep(_seeded_run, seeds=range(4), scale=[1.0, 2.0], progress=False, workers=2)
    assert serial[["scale", "seed"]].equals(parallel[["scale", "seed"]])  # the same rows, in the same order
    assert np.allclose(serial["value"], parallel["value"])
    assert set(serial["pid"]) == {os.getpid()} and os.getpid() not in set(parallel["pid"])
    assert (parallel["threads"] == 1).all() or len(set(parallel["pid"])) == 1


def test_map_runs_is_deterministic_for_unseeded_runs_and_reports_failures():
    import torch

    draw = lambda i: float(torch.rand(1))  # noqa: E731  (not seeded: each job starts from a fixed state instead)
    jobs = [{"i": i} for i in range(5)]
    assert ev.map_runs(draw, jobs, workers=2, progress=False) == ev.map_runs(draw, jobs, workers=2, progress=False)

    def boom(i):
        raise ValueError(f"bad job {i}")

    with pytest.raises(ValueError, match="bad job"):
        ev.map_runs(boom, jobs, workers=2, progress=False)
    with pytest.raises(TypeError, match="list of dicts"):
        ev.map_runs(draw, [1, 2], workers=2)
    with pytest.raises(ValueError, match="workers"):
        ev.map_runs(draw, jobs, workers=0)
    assert ev.map_runs(draw, [], progress=False) == []


def test_default_workers_follows_threads_and_the_override(monkeypatch):
    import torch

    monkeypatch.setenv("TRANSFER_BOOK_WORKERS", "3")
    assert ev.default_workers() == 3
    monkeypatch.setenv("TRANSFER_BOOK_WORKERS", "zero")
    with pytest.raises(TypeError, match="TRANSFER_BOOK_WORKERS"):
        ev.default_workers()
    monkeypatch.delenv("TRANSFER_BOOK_WORKERS")
    expected = min(ev.MAX_WORKERS, torch.get_num_threads()) if sys.platform.startswith("linux") else 1
    assert ev.default_workers() == (expected if not torch.cuda.is_available() else 1)


def test_cpu_time_counts_finished_workers():
    def spin(i):
        t = time.process_time()
        while time.process_time() - t < 0.3:
            pass
        return i

    t0 = ev.cpu_time()
    assert ev.map_runs(spin, [{"i": 0}, {"i": 1}], workers=2, progress=False) == [0, 1]
    assert ev.cpu_time() - t0 >= 0.5  # both workers' CPU, which time.process_time() in this process misses


def test_repeated_folds_test_every_example_once_per_repeat_stratified():
    labels = np.array([0] * 10 + [1] * 20)
    folds = ev.repeated_folds(labels, n_splits=5, n_repeats=3, seed=0)
    assert len(folds) == 15 and len({f.id for f in folds}) == 15
    for r in range(3):
        tested = np.concatenate([f.test for f in folds if f.repeat == r])
        assert sorted(tested) == list(range(30))
    for f in folds:
        assert set(f.train).isdisjoint(f.test) and np.bincount(labels[f.test]).tolist() == [2, 4]
    with pytest.raises(ValueError, match="smallest class"):
        ev.repeated_folds(np.array([0, 0, 1]), n_splits=3)


def test_claims_assert_with_the_numbers_and_make_the_closing_table():
    claims = ev.Claims()
    good = ev.compare(table([0.8, 0.82, 0.81], [0.6, 0.61, 0.63], ("transfer", "scratch")), "transfer", "scratch")
    claims.expect(good, "better", "transfer beats scratch at 16 labels")
    claims.check(True, "cached features equal recomputed ones", "max difference 0.0")
    with pytest.raises(AssertionError, match=r"Claim failed \('worse' expected\): transfer beats scratch by 19.7 points"):
        claims.expect(good, "worse")
    t = claims.table()
    assert list(t.columns) == ["claim", "measured", "seeds/folds", "holds"]
    assert t["holds"].tolist() == ["yes", "yes", "no"] and t["seeds/folds"].tolist()[0] == 3
    long = "a claim much longer than pandas' fifty-character display cut, which must stay whole"
    claims.check(True, long, "measured")
    assert long in claims.table()._repr_html_() and long in repr(claims.table())  # pandas would cut it at 50
    with pytest.raises(ValueError, match="outcome must be"):
        claims.expect(good, "maybe")


def test_plots_show_every_seed_and_the_spread():
    df = pd.concat([table([0.5, 0.6, 0.7], [0.4, 0.5, 0.6]).assign(labels=n) for n in (5, 20)])
    ax = ev.plot_curves(df, x="labels", y="acc")
    assert len(ax.lines) == 2 and len(ax.collections) == 4  # a band and the seeds' dots per method
    ax = ev.plot_points(df[df.labels == 5], y="acc")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A", "B"]


def test_span_prints_a_range_or_one_number():
    assert ev.span([0.78, 0.8, 0.79], "{:.0%}") == "78%–80%"
    assert ev.span(pd.Series([0.999, 1.0]), "{:.0%}") == "100%"  # not '100%–100%'
    assert ev.span(np.array([[1.5], [0.25]])) == "0.250–1.500"
    with pytest.raises(ValueError, match="at least one"):
        ev.span([])


def test_mcnemar_is_small_when_one_model_wins_most_disagreements_and_one_sided():
    import torch

    truth = np.ones(1000, dtype=bool)
    b = truth.copy()
    b[:60] = False  # b misses 60 examples a gets right
    b[60:70] = True
    a = truth.copy()
    a[60:70] = False  # a misses 10 that b gets right
    p = ev.mcnemar(a, b)
    assert p < 1e-8
    assert ev.mcnemar(b, a) > 0.99  # one-sided: b is not more accurate than a
    assert ev.mcnemar(torch.tensor(a), torch.tensor(b)) == p  # tensors work too
    assert ev.mcnemar(a, a) == 1.0  # no disagreements, no evidence
    assert ev.mcnemar(np.r_[np.ones(10, bool), np.zeros(10, bool)], np.r_[np.zeros(10, bool), np.ones(10, bool)]) > 0.5
    with pytest.raises(ValueError, match="same examples"):
        ev.mcnemar(a, b[:10])
