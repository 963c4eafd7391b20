"""utils.explorer: run_strategy returns sane results, rejects bad settings clearly, and the widget runs and clears."""
from __future__ import annotations

import pytest

from utils import explorer

TINY = {"dataset": "faces", "labels_per_class": 2, "epochs": 1, "progress": False}


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    """One cache folder for this module, outside the repository."""
    monkeypatch.setenv("TRANSFER_BOOK_CACHE", str(tmp_path_factory.getbasetemp() / "explorer-cache"))


def test_strategies_start_with_probe_top_block_full():
    assert list(explorer.STRATEGIES)[:3] == ["probe", "top_block", "full"]  # bench/bench_explorer.py relies on it


@pytest.mark.parametrize("strategy, k, trainable", [("probe", 0, 1280 * 2 + 2), ("top_block", 1, None),
                                                     ("top_k", 2, None), ("gradual", 2, None)])
def test_run_strategy_returns_a_sane_dict(strategy, k, trainable):
    r = explorer.run_strategy(strategy, k=2 if strategy in ("top_k", "gradual") else None, **{**TINY, "epochs": 3})
    assert r["strategy"] == strategy and r["k"] == k and r["labels_per_class"] == 2
    assert 0 <= r["val_acc"] <= 1 and 0 <= r["test_acc"] <= 1 and r["seconds"] > 0
    assert len(r["val_curve"]) == 3
    if trainable is not None:
        assert r["trainable_params"] == trainable
    else:
        assert r["trainable_params"] > 1280 * 2 + 2


def test_more_blocks_more_trainable_parameters():
    p = [explorer.run_strategy(s, k=3 if s == "top_k" else None, **TINY)["trainable_params"]
         for s in ("probe", "top_block", "top_k", "full")]
    assert p == sorted(p) and len(set(p)) == 4


def test_scratch_uses_one_learning_rate():
    r = explorer.run_strategy("scratch", lr_mult=0.01, **{**TINY, "labels_per_class": 1})
    assert r["lr_mult"] == 1.0 and r["k"] == 9


@pytest.mark.parametrize("kwargs, match", [({"strategy": "lasso"}, "Unknown strategy"),
                                           ({"strategy": "top_k", "k": 0}, "from 1 to 9"),
                                           ({"strategy": "top_k", "k": 10}, "from 1 to 9"),
                                           ({"strategy": "probe", "labels_per_class": 0}, "labels_per_class"),
                                           ({"strategy": "probe", "labels_per_class": 1000}, "labels_per_class"),
                                           ({"strategy": "probe", "epochs": 0}, "epochs"),
                                           ({"strategy": "probe", "lr_mult": 0.0}, "lr_mult"),
                                           ({"strategy": "probe", "lr": 0}, "lr"),
                                           ({"strategy": "probe", "dataset": "cifar"}, "Unknown dataset")])
def test_bad_settings_give_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        explorer.run_strategy(**{**TINY, **kwargs})


def test_gradual_schedule_opens_one_more_block_per_stage():
    assert explorer._stages(4, 3) == [(0, 1), (1, 1), (2, 1), (3, 1)]
    assert explorer._stages(2, 3) == [(0, 1), (3, 1)]
    assert sum(e for _, e in explorer._stages(7, 2)) == 7


def test_table_and_plot_of_runs():
    runs = [explorer.run_strategy("probe", **TINY), explorer.run_strategy("top_block", **TINY)]
    table = explorer.runs_table(runs)
    assert list(table["strategy"]) == ["linear probe", "fine-tune the top block"]
    assert {"val_acc", "test_acc", "trainable_params", "seconds"} <= set(table.columns)
    assert len(explorer.plot_runs(runs).get_lines()) == 2


def test_widget_runs_overlays_and_clears():
    box = explorer.explorer_widget(progress=False)
    c = box.controls
    c["dataset"].value, c["labels_per_class"].value, c["epochs"].value = "faces", 5, 1
    box.run_button.click()
    c["strategy"].value = "top_block"
    box.run_button.click()
    assert [r["strategy"] for r in box.runs] == ["probe", "top_block"]
    box.clear_button.click()
    assert box.runs == []
