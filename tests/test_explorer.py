"""utils.explorer: run_strategy returns sane results, rejects bad settings clearly, and the widget runs and clears."""
from __future__ import annotations

import pytest

import utils
from utils import explorer

TINY = {"dataset": "faces", "labels_per_class": 2, "epochs": 1, "progress": False}


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    """One cache folder for this module, outside the repository."""
    monkeypatch.setenv("TRANSFER_BOOK_CACHE", str(tmp_path_factory.getbasetemp() / "explorer-cache"))


def test_strategies_start_with_probe_top_block_full():
    assert list(explorer.STRATEGIES)[:3] == ["probe", "top_block", "full"]  # bench/bench_explorer.py relies on it


@pytest.fixture(scope="module")
def trainable_when_open():
    """Trainable parameters of the 2-class model with the head and the top k backbone groups open (computed apart)."""
    model = utils.replace_head(utils.create_backbone(), 2)

    def count(k: int) -> int:
        utils.unfreeze_last(model, k)
        return utils.count_parameters(model).trainable

    return count


@pytest.mark.parametrize("strategy, k", [("probe", 0), ("top_block", 1), ("top_k", 2),
                                         ("gradual", 2)])
def test_run_strategy_returns_a_sane_dict(strategy, k, trainable_when_open):
    r = explorer.run_strategy(strategy, k=2 if strategy in ("top_k", "gradual") else None, **{**TINY, "epochs": 3})
    assert r["strategy"] == strategy and r["k"] == k and r["labels_per_class"] == 2
    assert 0 <= r["val_acc"] <= 1 and 0 <= r["test_acc"] <= 1 and r["seconds"] > 0
    assert len(r["val_curve"]) == len(r["test_curve"]) == 3
    assert r["val_acc"] == r["val_curve"][-1] and r["test_acc"] == r["test_curve"][-1]
    assert r["trainable_params"] == trainable_when_open(k)
    if strategy == "probe":
        assert r["trainable_params"] == 1280 * 2 + 2
    stages = [row.get("stage") for row in r["history"].rows]
    assert stages == ([0, 1, 2] if strategy == "gradual" else [None] * 3)  # head alone, then one more group each


def test_more_blocks_more_trainable_parameters():
    p = [explorer.run_strategy(s, k=3 if s == "top_k" else None, **TINY)["trainable_params"]
         for s in ("top_block", "top_k", "full")]
    assert p == sorted(p) and len(set(p)) == 3 and p[0] > 1280 * 2 + 2  # more than the probe's head alone


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
    assert explorer._stages(4, 3) == ([0, 1, 2, 3], [1, 1, 1, 1])  # (groups open per stage, epochs per stage)
    assert explorer._stages(2, 3) == ([0, 3], [1, 1])
    opens, per = explorer._stages(7, 2)
    assert opens == [0, 1, 2] and sum(per) == 7 and min(per) >= 2


def test_table_and_plot_of_runs():
    runs = [explorer.run_strategy("top_block", **TINY), explorer.run_strategy("top_k", k=2, **TINY)]
    table = explorer.runs_table(runs)
    assert list(table["strategy"]) == ["fine-tune the top block", "fine-tune the top k blocks (k=2)"]
    assert list(table["test_acc"]) == [round(r["test_acc"], 3) for r in runs]
    assert {"val_acc", "test_acc", "trainable_params", "seconds"} <= set(table.columns)
    assert len(explorer.plot_runs(runs).get_lines()) == 2


def test_widget_runs_overlays_and_clears():
    box = explorer.explorer_widget(progress=False)
    c = box.controls
    assert c["strategy"].value == "probe"
    c["dataset"].value, c["labels_per_class"].value, c["epochs"].value = "faces", 5, 1
    c["strategy"].value = "top_block"
    box.run_button.click()
    c["strategy"].value, c["k"].value = "top_k", 2
    box.run_button.click()
    assert [r["strategy"] for r in box.runs] == ["top_block", "top_k"] and box.runs[1]["k"] == 2
    box.clear_button.click()
    assert box.runs == []
