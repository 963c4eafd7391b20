"""utils.train: one training step under fit, the LR finder and DDP; history; exact evaluation on the model's own device;
gradual unfreezing and LP-FT."""
from __future__ import annotations

import contextlib
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import utils

CPU = torch.device("cpu")


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))


def test_fit_drives_loss_down_and_accuracy_up(blobs):
    train, val = blobs()
    model = _mlp()
    start = utils.evaluate(model, val)
    h = utils.fit(model, train, val, epochs=15, lr=0.05, device=CPU, progress=False)
    assert h["train_loss"][-1] < 0.5 * h["train_loss"][0]
    assert h.last["val_loss"] < 0.5 * start["loss"]
    assert h.last["val_acc"] >= 0.9 > start["acc"] + 0.2


def test_history_fields_and_continuation(blobs):
    train, val = blobs()
    model = _mlp()
    h = utils.fit(model, train, val, epochs=2, device=CPU, progress=False, label="probe")
    assert h.label == "probe" and len(h) == 2 and h["epoch"] == [1, 2]
    assert set(h.last) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"}
    assert all(0 <= a <= 1 for a in h["train_acc"] + h["val_acc"]) and all(s > 0 for s in h["seconds"])
    h2 = utils.fit(model, train, val, epochs=1, device=CPU, progress=False, history=h)
    assert h2 is h and h["epoch"] == [1, 2, 3]
    assert h.best("val_acc") == max(h["val_acc"]) and h.best("val_loss") == min(h["val_loss"])
    frame = h.to_frame()
    assert list(frame.index) == [1, 2, 3] and "val_acc" in frame.columns
    assert utils.History().last == {}


def test_history_without_validation_has_no_val_columns(blobs):
    train, _ = blobs()
    h = utils.fit(_mlp(), train, epochs=1, device=CPU, progress=False)
    assert "val_loss" not in h.last and h["val_acc"] == [None]


class _Fixed(nn.Module):
    """Logits are the input itself: a model whose loss and accuracy we can compute by hand."""

    def forward(self, x):
        return x


def test_evaluate_matches_hand_computed_loss_and_accuracy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 0.5], [1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 0, 0])  # correct, correct, wrong, wrong, correct
    loader = DataLoader(TensorDataset(logits, labels), batch_size=2)  # uneven last batch: weighting must be per example
    out = utils.evaluate(_Fixed(), loader)
    expected = -torch.log_softmax(logits, 1)[torch.arange(5), labels].mean().item()
    assert out["acc"] == pytest.approx(3 / 5)
    assert out["loss"] == pytest.approx(expected, rel=1e-6)


def test_evaluate_restores_training_mode():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
    utils.evaluate(model, [(torch.zeros(1, 2), torch.tensor([0]))])
    assert model.training


def test_evaluate_on_an_empty_loader_is_a_clear_error():
    with pytest.raises(ValueError, match="yields no batches: is its dataset empty"):
        utils.evaluate(_Fixed(), DataLoader(TensorDataset(torch.zeros(0, 2), torch.zeros(0).long())))


def test_predict_returns_probabilities_and_labels():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    probs, labels = utils.predict(_Fixed(), DataLoader(TensorDataset(logits, torch.tensor([0, 1, 1])), batch_size=2))
    assert torch.allclose(probs, logits.softmax(1)) and labels.tolist() == [0, 1, 1]


def test_fit_with_zero_epochs_is_rejected(blobs):
    train, _ = blobs()
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, got 0"):
        utils.fit(_mlp(), train, epochs=0, device=CPU, progress=False)


def test_make_optimizer_only_takes_trainable_parameters():
    model = _mlp()
    model[0].requires_grad_(False)
    opt = utils.make_optimizer(model, lr=0.01)
    params = [p for g in opt.param_groups for p in g["params"]]
    assert len(params) == 2 and all(p.requires_grad for p in params) and {g["lr"] for g in opt.param_groups} == {0.01}


def test_make_optimizer_with_everything_frozen_says_what_to_unfreeze():
    model = _mlp().requires_grad_(False)
    with pytest.raises(ValueError, match=r"Every parameter is frozen.*unfreeze_last\(model, k\)"):
        utils.make_optimizer(model)


def test_scheduler_steps_once_per_batch(blobs):
    train, _ = blobs(n=60, batch_size=10)  # 30 training examples -> 3 batches per epoch
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 ** step)
    utils.fit(model, train, epochs=2, optimizer=opt, scheduler=sched, device=CPU, progress=False)
    assert sched.last_epoch == 6 and opt.param_groups[0]["lr"] == pytest.approx(0.5 ** 6)


def test_to_device_moves_nested_structures():
    batch = {"input_ids": torch.ones(2, 3), "extra": [torch.zeros(1), (torch.zeros(2), "keep")], "name": "x"}
    moved = utils.to_device(batch, torch.device("meta"))
    assert moved["input_ids"].device.type == "meta" and moved["extra"][0].device.type == "meta"
    assert moved["extra"][1][0].device.type == "meta" and isinstance(moved["extra"][1], tuple)
    assert moved["extra"][1][1] == "keep" and moved["name"] == "x"
    assert batch["input_ids"].device.type == "cpu"  # the original is untouched


class _TinyHF(nn.Module):
    """Mimics a Hugging Face classifier: keyword tensors in, an object with `.logits` out."""

    def __init__(self, vocab: int = 10, classes: int = 2):
        super().__init__()
        self.embed, self.head = nn.Embedding(vocab, 8), nn.Linear(8, classes)

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1)
        return SimpleNamespace(logits=self.head(pooled))


def test_fit_and_evaluate_a_hugging_face_style_model():
    torch.manual_seed(0)
    ids = torch.randint(0, 10, (40, 6))
    labels = (ids < 5).sum(1).gt(3).long()  # learnable from the tokens
    rows = [({"input_ids": i, "attention_mask": torch.ones(6, dtype=torch.long)}, y) for i, y in zip(ids, labels)]
    loader = DataLoader(rows, batch_size=8, shuffle=True)
    model = _TinyHF()
    h = utils.fit(model, loader, loader, epochs=12, lr=0.05, device=CPU, progress=False)
    assert h["train_loss"][-1] < h["train_loss"][0] and h.last["val_acc"] >= 0.8
    probs, ys = utils.predict(model, loader)
    assert probs.shape == (40, 2) and torch.allclose(probs.sum(1), torch.ones(40)) and sorted(ys.tolist()) == sorted(labels.tolist())
    assert not math.isnan(utils.evaluate(model, loader)["loss"])


def test_evaluate_and_predict_run_on_the_models_own_device(monkeypatch):
    """A CPU model on a machine whose default device is elsewhere (here: meta) must still evaluate on the CPU."""
    from utils import train

    monkeypatch.setattr(train, "get_device", lambda *a: torch.device("meta"))
    loader = DataLoader(TensorDataset(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])), batch_size=2)
    assert utils.evaluate(_Fixed(), loader)["acc"] == 1.0
    model = nn.Linear(2, 2)
    assert utils.evaluate(model, loader)["loss"] > 0 and utils.predict(model, loader)[0].device.type == "cpu"


def test_train_step_with_accumulation_equals_one_big_batch():
    torch.manual_seed(0)
    x, y = torch.randn(8, 2), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    grads = []
    for micro in ([(x, y)], [(x[:4], y[:4]), (x[4:], y[4:])]):
        model = _mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        step = utils.train_step(model, micro, opt)
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        assert step.seen == 8 and 0 <= step.correct <= 8
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_a_label_the_head_cannot_predict_is_a_clear_error(blobs):
    loader = DataLoader(TensorDataset(torch.randn(4, 2), torch.tensor([0, 1, 2, 3])), batch_size=4)
    with pytest.raises(ValueError, match=r"label is 3, but the model has 3 outputs.*replace_head"):
        utils.fit(_mlp(), loader, epochs=1, device=CPU, progress=False)
    with pytest.raises(ValueError, match="label is 3"):
        utils.evaluate(_mlp(), loader)


def test_fit_on_an_empty_loader_is_a_clear_error():
    empty = DataLoader(TensorDataset(torch.zeros(0, 2), torch.zeros(0).long()))
    with pytest.raises(ValueError, match="train_loader yields no batches"):
        utils.fit(_mlp(), empty, device=CPU, progress=False)
    with pytest.raises(ValueError, match="yields no batches"):
        utils.predict(_mlp(), empty)


def test_fit_reports_extra_loaders_and_named_schedules(blobs):
    train, val = blobs()
    model = _mlp()
    opt = utils.make_optimizer(model, 0.05)
    h = utils.fit(model, train, val, epochs=3, optimizer=opt, schedule="linear", warmup=0.2, device=CPU,
                  progress=False, eval_loaders={"test": val})
    assert h["test_acc"] == h["val_acc"] and h["test_loss"] == h["val_loss"]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)  # linear decay ends at zero


def _tiny_cnn():
    return utils.small_cnn(3, widths=(4, 8, 8), input_size=8, seed=0)


def _toy(n=24, batch=8):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch)


def test_gradual_unfreeze_opens_groups_stage_by_stage_with_one_optimiser(monkeypatch):
    model = _tiny_cnn()
    first = model.features[0][0].weight.detach().clone()
    opened, optimisers = [], []
    real_fit = utils.train.fit

    def spy(model, *a, optimizer=None, **k):
        opened.append(sorted({n.split(".")[0] + "." + n.split(".")[1] if n.startswith("features") else n.split(".")[0]
                              for n, p in model.named_parameters() if p.requires_grad}))
        optimisers.append(optimizer)
        return real_fit(model, *a, optimizer=optimizer, **k)

    monkeypatch.setattr(utils.train, "fit", spy)
    h = utils.gradual_unfreeze(model, _toy(), _toy(), stages=[0, 1, None], lr=1e-2, device=CPU, progress=False)
    assert opened == [["classifier"], ["classifier", "features.2"], ["classifier", "features.0", "features.1", "features.2"]]
    assert optimisers[0] is optimisers[1] is optimisers[2]  # the head keeps its AdamW moments across stages
    assert h["epoch"] == [1, 2, 3] and h["stage"] == [0, 1, 2] and h.label == "gradual unfreezing"
    assert not torch.equal(first, model.features[0][0].weight)  # the first group trained in the last stage


def test_gradual_unfreeze_first_stage_leaves_the_backbone_alone_and_fresh_optimiser_is_the_control(monkeypatch):
    model = _tiny_cnn()
    top = model.features[2][0].weight.detach().clone()
    utils.gradual_unfreeze(model, _toy(), stages=[0], device=CPU, progress=False)
    assert torch.equal(top, model.features[2][0].weight)
    seen = []
    real_fit = utils.train.fit
    monkeypatch.setattr(utils.train, "fit", lambda m, *a, optimizer=None, **k: seen.append(optimizer) or real_fit(m, *a, optimizer=optimizer, **k))
    utils.gradual_unfreeze(_tiny_cnn(), _toy(), stages=[0, None], fresh_optimizer=True, device=CPU, progress=False)
    assert seen[0] is not seen[1]


@contextlib.contextmanager
def _recording_head_rates(rates: list):
    """Within the block, utils.optim.make_optimizer builds an AdamW that appends the head's rate at every step."""
    import utils.optim as optim

    class Record(torch.optim.AdamW):
        def step(self, *a, **k):
            rates.append(self.param_groups[-1]["lr"])
            return super().step(*a, **k)

    orig = optim.make_optimizer
    optim.make_optimizer = lambda *a, **k: Record(optim.param_groups(*a[:1], a[1], *a[3:5], a[2], k.get("trainable_only", True)))
    try:
        yield
    finally:
        optim.make_optimizer = orig


def test_gradual_unfreeze_warms_up_every_stage():
    model = _tiny_cnn()
    rates = []
    with _recording_head_rates(rates):
        utils.gradual_unfreeze(model, _toy(n=32), stages=[0, None], epochs=1, lr=1.0, warmup=0.5, device=CPU, progress=False)
    assert len(rates) == 8 and rates[0] < rates[1] <= rates[2] == 1.0 and rates[4] < rates[5] <= rates[6] == 1.0


def test_gradual_unfreeze_linear_schedule_warms_up_and_decays_every_stage():
    """schedule="linear": ULMFiT's slanted triangular rate in each stage (up over the warm-up, then down towards 0)."""
    model = _tiny_cnn()
    rates = []
    with _recording_head_rates(rates):
        utils.gradual_unfreeze(model, _toy(n=32), stages=[0, None], epochs=2, lr=1.0, warmup=0.25, schedule="linear",
                               device=CPU, progress=False)
    assert len(rates) == 16
    for stage in (rates[:8], rates[8:]):  # 8 steps, 2 of warm-up: 0, 0.5, then 1.0 falling linearly to 1/6
        assert stage[0] == 0.0 and stage[1] == pytest.approx(0.5) and stage[2] == pytest.approx(1.0)
        assert all(a > b for a, b in zip(stage[2:], stage[3:])) and stage[-1] == pytest.approx(1 / 6)


@pytest.mark.parametrize("stages,epochs", [([], 1), ([2, 1], 1), ([0, 9], 1), ([0, 1], [1]), ([0], 0), ([0.5], 1)])
def test_gradual_unfreeze_bad_plans(stages, epochs):
    with pytest.raises((ValueError, TypeError)):
        utils.gradual_unfreeze(_tiny_cnn(), _toy(), stages=stages, epochs=epochs, device=CPU, progress=False)


def test_fine_tune_is_lp_ft():
    model = _tiny_cnn()
    h = utils.fine_tune(model, _toy(), _toy(), epochs=2, freeze_epochs=1, lr=1e-2, device=CPU, progress=False)
    assert h["stage"] == [0, 1, 1] and all(p.requires_grad for p in model.parameters())
    h0 = utils.fine_tune(_tiny_cnn(), _toy(), epochs=1, freeze_epochs=0, device=CPU, progress=False)
    assert h0["stage"] == [0]


def test_amp_dtype_given_explicitly_is_used_on_cpu():
    """fit(amp=torch.bfloat16) on a CPU trains under bf16 autocast ("auto" keeps a CPU in float32)."""
    from utils.train import resolve_amp

    cpu = torch.device("cpu")
    assert resolve_amp(torch.bfloat16, cpu) is torch.bfloat16
    assert resolve_amp("auto", cpu) is None and resolve_amp(False, cpu) is None
    with pytest.raises(ValueError, match="autocast dtype"):
        resolve_amp(torch.float64, cpu)
    with pytest.raises(ValueError, match="amp must be"):
        resolve_amp("fast", cpu)


def test_evaluate_builds_no_autograd_graph():
    """evaluate runs under torch.no_grad: no graph is kept for the losses it sums."""
    model = nn.Linear(4, 2)
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append(o.requires_grad))
    utils.evaluate(model, [(torch.randn(3, 4), torch.tensor([0, 1, 0]))])
    assert seen == [False]
