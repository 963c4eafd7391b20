"""The diagnosis rules on synthetic histories whose verdict is obvious from the numbers."""
import math

import numpy as np

import matplotlib
import pytest

matplotlib.use("Agg")

from utils import History  # noqa: E402
from utils import diagnose as dg  # noqa: E402


def make(train_loss, train_acc, val_loss, val_acc, label="run", clean_loss=None, clean_acc=None):
    rows = [{"epoch": i + 1, "train_loss": a, "train_acc": b, "val_loss": c, "val_acc": d, "seconds": 0.1}
            for i, (a, b, c, d) in enumerate(zip(train_loss, train_acc, val_loss, val_acc))]
    if clean_loss is not None:
        for r, cl, ca in zip(rows, clean_loss, clean_acc):
            r.update(clean_loss=cl, clean_acc=ca)
    return History(label, rows)


OVER = make([2.0, 1.0, 0.5, 0.2, 0.05, 0.01], [0.4, 0.7, 0.85, 0.95, 0.99, 1.0],
            [2.0, 1.2, 0.9, 1.0, 1.3, 1.6], [0.35, 0.6, 0.7, 0.7, 0.69, 0.68], "over")
UNDER = make([2.30, 2.29, 2.29, 2.28, 2.28], [0.10, 0.12, 0.12, 0.13, 0.14],
             [2.30, 2.29, 2.29, 2.28, 2.28], [0.10, 0.11, 0.12, 0.12, 0.13], "under")
OK = make([2.0, 1.0, 0.6, 0.45, 0.4], [0.5, 0.75, 0.85, 0.88, 0.9],
          [1.9, 1.0, 0.7, 0.6, 0.58], [0.5, 0.72, 0.8, 0.83, 0.84], "ok")
UNSTABLE = make([2.0, 1.0, 3.5, 1.5, 2.5], [0.4, 0.7, 0.3, 0.5, 0.4],
                [2.0, 1.1, 3.0, 1.8, 2.4], [0.4, 0.6, 0.3, 0.5, 0.4], "unstable")


@pytest.mark.parametrize("history, verdict", [(OVER, "overfitting"), (UNDER, "underfitting"), (OK, "ok"),
                                              (UNSTABLE, "unstable")])
def test_clear_cases(history, verdict):
    d = dg.diagnose(history, num_classes=10)
    assert d.verdict == verdict, str(d)
    assert d.suggestions == dg.SUGGESTIONS[verdict] and d.reasons and d.label == history.label


def test_evidence_numbers():
    e = dg.evidence(OVER, 10)
    assert e["best_epoch"] == 3 and e["best_val_loss"] == 0.9
    smoothed = [(2.0 + 1.2 + 0.9) / 3, (1.2 + 0.9 + 1.0) / 3, (0.9 + 1.0 + 1.3) / 3, (1.0 + 1.3 + 1.6) / 3]
    assert math.isclose(e["val_loss_rise"], (smoothed[-1] - smoothed[1]) / smoothed[1])
    assert math.isclose(e["val_loss_rise_abs"], smoothed[-1] - smoothed[1])
    assert math.isclose(dg.evidence(OVER, 10, smooth=1)["val_loss_rise"], (1.6 - 0.9) / 0.9)  # smooth=1: raw losses
    assert math.isclose(e["gap"], 0.32) and math.isclose(e["train_skill"], 1.0)
    assert math.isclose(dg.evidence(UNDER, 10)["train_skill"], (0.14 - 0.1) / 0.9)


def test_gap_alone_flags_overfitting():
    wide = make([1.0, 0.3, 0.05], [0.7, 0.95, 1.0], [1.0, 0.9, 0.9], [0.5, 0.6, 0.6])  # val loss flat, gap 0.4
    d = dg.diagnose(wide, 2)
    assert d.verdict == "overfitting" and "gap" in d.reasons[0] and "memorised" in d.reasons[0]
    assert dg.diagnose(wide, 2, max_gap=0.5).verdict == "ok"  # thresholds are parameters


def test_gap_needs_a_memorised_training_set():
    # Still learning: train accuracy ahead of validation, but the training loss is not far below the validation loss.
    learning = make([2.0, 1.2, 0.6], [0.4, 0.7, 0.85], [2.0, 1.3, 1.0], [0.4, 0.6, 0.68])
    assert dg.evidence(learning, 10)["gap"] > 0.1 and dg.diagnose(learning, 10).verdict == "ok"
    assert dg.diagnose(learning, 10, min_loss_ratio=1.5).verdict == "overfitting"


def test_one_epoch_spike_is_not_a_rising_val_loss():
    # Flat validation loss with noise and one spike in the last epoch (a constant-LR run): not a trend.
    spike = make([1.0, 0.3, 0.2, 0.15, 0.12, 0.1, 0.1], [0.7, 0.9, 0.93, 0.95, 0.96, 0.97, 0.97],
                 [0.2, 0.15, 0.14, 0.15, 0.13, 0.14, 0.19], [0.93, 0.95, 0.95, 0.95, 0.96, 0.95, 0.94])
    assert dg.diagnose(spike, 10).verdict == "ok"
    assert dg.diagnose(spike, 10, smooth=1, min_rise=0.0).verdict == "overfitting"  # the old, unsmoothed relative rule


def test_small_absolute_rise_is_not_overfitting():
    # +25 % relative, but only +0.03 in absolute terms for 10 classes (ln 10 = 2.3): below min_rise * ln K.
    small = make([1.0, 0.3, 0.2, 0.15, 0.1, 0.1], [0.7, 0.9, 0.93, 0.95, 0.96, 0.97],
                 [0.2, 0.12, 0.12, 0.12, 0.15, 0.15], [0.93, 0.95, 0.95, 0.95, 0.95, 0.95])
    e = dg.evidence(small, 10)
    assert e["val_loss_rise"] > 0.15 and e["val_loss_rise_abs"] < 0.05 * math.log(10)
    assert dg.diagnose(small, 10).verdict == "ok"
    assert dg.diagnose(small, 10, min_rise=0.0).verdict == "overfitting"


def test_clean_training_metrics_are_preferred():
    # Running train-mode accuracy (augmented views) 0.85 looks close to val 0.80; the eval-mode pass says 1.00.
    aug = make([1.5, 0.8, 0.5], [0.5, 0.75, 0.85], [1.2, 0.8, 0.7], [0.6, 0.75, 0.80],
               clean_loss=[1.0, 0.2, 0.02], clean_acc=[0.7, 0.97, 1.0])
    e = dg.evidence(aug, 10)
    assert e["clean"] == 1.0 and e["train_acc"] == 1.0 and math.isclose(e["gap"], 0.2) and e["train_loss"] == 0.02
    d = dg.diagnose(aug, 10)
    assert d.verdict == "overfitting" and "eval-mode" in d.reasons[0]
    running = make([1.5, 0.8, 0.5], [0.5, 0.75, 0.85], [1.2, 0.8, 0.7], [0.6, 0.75, 0.80])
    assert dg.evidence(running, 10)["clean"] == 0.0 and dg.diagnose(running, 10).verdict == "ok"


def test_chance_level_depends_on_classes():
    h = make([0.7, 0.69], [0.5, 0.55], [0.7, 0.69], [0.5, 0.55])  # 55 % train accuracy
    assert dg.diagnose(h, 2).verdict == "underfitting"  # barely above a coin flip
    assert dg.evidence(h, 100)["train_skill"] > 0.5


def test_nan_is_unstable():
    h = make([1.0, float("nan")], [0.5, 0.5], [1.0, 1.0], [0.5, 0.5])
    assert dg.diagnose(h, 2).verdict == "unstable"


def test_bad_input_errors():
    with pytest.raises(ValueError, match="no epochs"):
        dg.diagnose(History("empty"), 10)
    no_val = History("x", [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "seconds": 0.1}])
    with pytest.raises(ValueError, match="val_loader"):
        dg.diagnose(no_val, 10)
    with pytest.raises(TypeError, match="utils.History"):
        dg.diagnose({"train_loss": [1.0]}, 10)
    with pytest.raises(ValueError, match="num_classes"):
        dg.diagnose(OK, 1)


def test_table_and_plot():
    table = dg.diagnose_table([OVER, UNDER, OK], 10)
    assert list(table["verdict"]) == ["overfitting", "underfitting", "ok"]
    assert table.loc["over", "best epoch"] == 3
    fig = dg.plot_diagnosis([OVER, UNDER, OK, UNSTABLE], 10, ncols=2)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0].endswith("overfitting") and titles[2].endswith("ok") and "unstable" in titles[3]
    assert any(line.get_xdata()[0] == 3 for line in fig.axes[0].lines if line.get_linestyle() == ":")
    with pytest.raises(ValueError, match="at least one"):
        dg.plot_diagnosis([], 10)


def test_str_lists_reasons_and_suggestions():
    text = str(dg.diagnose(OVER, 10))
    assert text.startswith("over: OVERFITTING") and "early stopping" in text


def test_plot_clips_huge_early_losses():
    spiky = make([40.0, 2.0, 1.0, 0.5], [0.2, 0.6, 0.8, 0.9], [45.0, 1.5, 1.0, 1.1], [0.2, 0.6, 0.7, 0.7])
    ax = dg.plot_diagnosis(spiky, 10).axes[0]
    assert ax.get_ylim()[1] < 5 and ax.get_title().endswith("(y-axis clipped)")
    assert not dg.plot_diagnosis(OK, 10).axes[0].get_title().endswith("clipped")


def _toy_problem(flip_val: bool):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, 0] > 0).long()
    val_y = 1 - y if flip_val else y  # flipped labels: the better it learns, the worse it validates
    train = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=g)
    return train, DataLoader(TensorDataset(x, val_y), batch_size=64)


def test_fit_keep_best_returns_best_epoch_weights():
    import torch

    from utils import evaluate

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    train, val = _toy_problem(flip_val=True)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    history, best = dg.fit_keep_best(model, train, val, epochs=6, optimizer=opt, progress=False,
                                     device=torch.device("cpu"))
    assert len(history) == 6 and history["epoch"] == [1, 2, 3, 4, 5, 6]
    assert history["val_loss"][-1] > min(history["val_loss"])  # it really got worse after the best epoch
    assert not math.isclose(evaluate(model, val)["loss"], min(history["val_loss"]), rel_tol=1e-3)  # the last weights
    model.load_state_dict(best)
    assert math.isclose(evaluate(model, val)["loss"], min(history["val_loss"]), rel_tol=1e-5)


def test_fit_keep_best_default_optimizer_trains_a_head_only_model():
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    train, val = _toy_problem(flip_val=False)
    history, _ = dg.fit_keep_best(model, train, val, epochs=3, lr=0.1, progress=False, device=torch.device("cpu"))
    assert history["val_loss"][-1] < history["val_loss"][0]


def test_fit_keep_best_patience_and_errors():
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    train, val = _toy_problem(flip_val=True)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    history, _ = dg.fit_keep_best(model, train, val, epochs=20, optimizer=opt, patience=2, progress=False,
                                  device=torch.device("cpu"))
    best_epoch = dg.evidence(history, 2)["best_epoch"]
    assert len(history) == best_epoch + 2 < 20
    with pytest.raises(ValueError, match="val_loader"):
        dg.fit_keep_best(model, train, None, epochs=2)
    with pytest.raises(ValueError, match="patience"):
        dg.fit_keep_best(model, train, val, epochs=2, patience=0)
    with pytest.raises(ValueError, match="epochs"):
        dg.fit_keep_best(model, train, val, epochs=0)


def _toy_loaders(seed: int = 0):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, 0] + 0.5 * torch.randn(64, generator=g) > 0).long()
    train = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(seed))
    return train, DataLoader(TensorDataset(x, y), batch_size=64)


@pytest.mark.parametrize("schedule, warmup", [("cosine", 0.0), ("linear", 0.25), ("constant", 0.25)])
def test_fit_keep_best_schedule_spans_all_epochs(schedule, warmup):
    import torch

    from utils import fit

    runs = []
    for keep_best in (False, True):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 2)
        train, val = _toy_loaders()
        opt = torch.optim.AdamW(model.parameters(), lr=0.1)
        if keep_best:
            h, _ = dg.fit_keep_best(model, train, val, epochs=4, optimizer=opt, schedule=schedule, warmup=warmup,
                                    progress=False, device=torch.device("cpu"))
        else:
            h = fit(model, train, val, epochs=4, optimizer=opt, schedule=schedule, warmup=warmup, progress=False,
                    device=torch.device("cpu"))
        runs.append((h["val_loss"], opt.param_groups[0]["lr"]))
    assert runs[0][0] == pytest.approx(runs[1][0], rel=1e-6)  # the same training as one fit call
    assert runs[0][1] == pytest.approx(runs[1][1])  # and the schedule ended where one fit call's ends
    if schedule != "constant":
        assert runs[1][1] < 0.1 * 0.01  # decayed to ~0 at the end of all epochs, not restarted every epoch


def test_fit_keep_best_eval_model_scores_shared_weights():
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from utils import evaluate

    torch.manual_seed(0)
    frozen, head = torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)
    frozen.requires_grad_(False)
    model = torch.nn.Sequential(frozen, head)
    train, val = _toy_loaders()
    x, y = val.dataset.tensors
    with torch.no_grad():
        feats = frozen(x)
    val_feats = DataLoader(TensorDataset(feats, y), batch_size=64)  # what a cache of the frozen part would hold
    opt = torch.optim.AdamW(head.parameters(), lr=0.1)
    h, best = dg.fit_keep_best(model, train, val_feats, epochs=3, optimizer=opt, eval_model=head,
                               eval_loaders={"clean": val_feats}, progress=False, device=torch.device("cpu"))
    assert math.isclose(h["val_loss"][-1], evaluate(model, val)["loss"], rel_tol=1e-5)  # scored through the shared head
    assert h["clean_loss"] == h["val_loss"] and set(best) == {"weight", "bias"}  # best weights are the head's


def test_fit_keep_best_can_keep_the_most_accurate_epoch():
    import torch

    from utils import evaluate

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    train, val = _toy_problem(flip_val=False)
    opt = torch.optim.AdamW(model.parameters(), lr=0.3)
    history, best = dg.fit_keep_best(model, train, val, epochs=6, optimizer=opt, monitor="val_acc", progress=False,
                                     device=torch.device("cpu"))
    first_best = int(np.argmax(history["val_acc"]))  # ties: the first epoch that reached the highest accuracy
    assert first_best != int(np.argmin(history["val_loss"]))  # here the two rules pick different epochs
    model.load_state_dict(best)
    assert evaluate(model, val)["acc"] == history["val_acc"][first_best]
    assert evaluate(model, val)["loss"] == pytest.approx(history["val_loss"][first_best], rel=1e-5)
    with pytest.raises(ValueError, match="monitor"):
        dg.fit_keep_best(model, train, val, epochs=2, monitor="accuracy")
