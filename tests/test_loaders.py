"""utils.loaders: a seed fixes the batch order (workers included), pinned memory only on CUDA, clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

import utils
from utils import loaders
from utils.loaders import default_num_workers, make_loader


def _ds(n: int = 20) -> TensorDataset:
    return TensorDataset(torch.arange(n).float().unsqueeze(1), torch.arange(n))


class NoisyDataset(Dataset):
    """Each item draws from NumPy's global RNG, like a random augmentation (top level, so workers can pickle it)."""

    transform = "random noise"

    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int):
        return torch.tensor(np.random.rand()), i


def _order(loader) -> list[int]:
    return torch.cat([y for _, y in loader]).tolist()


def test_same_seed_gives_same_batch_order_and_other_seed_another():
    a, b = make_loader(_ds(), 4, shuffle=True, seed=1, device="cpu"), make_loader(_ds(), 4, shuffle=True, seed=1, device="cpu")
    first = _order(a)
    torch.manual_seed(123)  # the global RNG must not matter: the loader owns its generator
    assert first == _order(b)
    assert sorted(first) == list(range(20)) and first != list(range(20))
    assert first != _order(make_loader(_ds(), 4, shuffle=True, seed=2, device="cpu"))


def test_epochs_differ_but_repeat_across_runs():
    a, b = make_loader(_ds(), 5, shuffle=True, seed=0, device="cpu"), make_loader(_ds(), 5, shuffle=True, seed=0, device="cpu")
    ea = [_order(a) for _ in range(3)]
    assert ea == [_order(b) for _ in range(3)]
    assert ea[0] != ea[1]


def test_no_shuffle_keeps_dataset_order():
    assert _order(make_loader(_ds(), 6, device="cpu")) == list(range(20))


def test_cpu_loader_uses_no_workers_and_no_pinned_memory():
    loader = make_loader(_ds(), 4, device="cpu")
    assert loader.pin_memory is False and loader.num_workers == 0
    assert default_num_workers(NoisyDataset(), "cpu") == 0


def test_cuda_loader_pins_memory_and_uses_workers_for_transformed_data(monkeypatch):
    monkeypatch.setattr(loaders, "main_is_importable", lambda: True)
    assert make_loader(_ds(), 4, device="cuda").pin_memory is True  # constructing needs no GPU
    assert default_num_workers(_ds(), "cuda") == 0  # in-memory tensors: indexing beats inter-process copies
    n = default_num_workers(NoisyDataset(), "cuda")
    assert 1 <= n <= 4
    loader = make_loader(NoisyDataset(), 4, device="cuda")
    assert loader.num_workers == n and loader.persistent_workers is True


def test_no_workers_under_spawn_when_main_cannot_be_imported(monkeypatch):
    monkeypatch.setattr(loaders, "start_method", lambda: "spawn")
    monkeypatch.setattr(loaders, "main_is_importable", lambda: False)  # e.g. a notebook on macOS or Windows
    assert default_num_workers(NoisyDataset(), "cuda") == 0
    monkeypatch.setattr(loaders, "main_is_importable", lambda: True)  # a script: spawn can re-import it
    assert default_num_workers(NoisyDataset(), "cuda") > 0
    assert make_loader(NoisyDataset(), 4, device="cpu", num_workers=2).num_workers == 2  # the caller decides


def test_workers_are_seeded_so_random_augmentation_repeats():
    def values(seed):
        loader = make_loader(NoisyDataset(), 4, shuffle=True, seed=seed, device="cpu", num_workers=2)
        return [(x.tolist(), y.tolist()) for x, y in loader]

    run1 = values(0)
    assert run1 == values(0)
    assert run1 != values(1)
    noise = [v for x, _ in run1 for v in x]
    assert len(set(noise)) == 16  # two workers did not draw the same numbers


@pytest.mark.parametrize("bad, error, match", [
    (0, ValueError, r"batch_size must be an integer >= 1, got 0\."),  # out of range: ValueError
    (-3, ValueError, r"batch_size must be an integer >= 1, got -3\."),
    (2.5, TypeError, r"batch_size must be an integer, got 2\.5 \(float\)\."),  # wrong type: TypeError
    (True, TypeError, r"batch_size must be an integer, got True \(bool\)\."),
    ("8", TypeError, r"batch_size must be an integer, got '8' \(str\)\."),
    (None, TypeError, r"batch_size must be an integer, got None \(NoneType\)\.")])
def test_bad_batch_size_is_a_clear_error(bad, error, match):
    with pytest.raises(error, match=match + " Try 32, or smaller if memory runs out"):
        make_loader(_ds(), bad, device="cpu")


def test_other_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        make_loader(_ds(0), 4, device="cpu")
    with pytest.raises(ValueError, match="num_workers"):
        make_loader(_ds(), 4, device="cpu", num_workers=-1)
    with pytest.raises(ValueError, match="not both"):
        make_loader(_ds(), 4, shuffle=True, sampler=torch.utils.data.SequentialSampler(_ds()), device="cpu")
    with pytest.raises(ValueError, match="no batches"):
        make_loader(_ds(3), 4, drop_last=True, device="cpu")


# The speed options of utils.fit that go with fast loaders: on CPU they must not change the result.

def _cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 2))


def _fit_cnn(**kw) -> torch.nn.Module:
    model = _cnn()
    data = TensorDataset(torch.rand(16, 3, 8, 8), torch.arange(16) % 2)
    utils.fit(model, make_loader(data, 8, device="cpu"), epochs=2, device=torch.device("cpu"), progress=False, **kw)
    return model


def test_fit_channels_last_changes_layout_not_result():
    plain, nhwc = _fit_cnn(), _fit_cnn(channels_last=True)
    assert nhwc[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain[0].weight.is_contiguous(memory_format=torch.channels_last)
    a, b = plain.state_dict(), nhwc.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not torch.allclose(_cnn()[0].weight, plain[0].weight)  # both trained: the equality is not trivial


def test_fit_compile_trains_through_the_compiled_module(monkeypatch):
    calls = []

    def fake_compile(model):
        calls.append(model)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)  # real compilation takes too long for a unit test
    _fit_cnn(compile=True)
    assert len(calls) == 1


def test_fit_auto_channels_last_trains_nhwc_on_cpu_and_restores_the_layout(monkeypatch):
    seen = []
    real = utils.train.train_step

    def spy(model, batches, *a, **kw):
        seen.append((kw["channels_last"], model[0].weight.is_contiguous(memory_format=torch.channels_last)))
        return real(model, batches, *a, **kw)

    monkeypatch.setattr(utils.train, "train_step", spy)
    auto, plain = _fit_cnn(), _fit_cnn(channels_last=False)
    assert seen and all(s == (True, True) for s in seen[:len(seen) // 2])  # auto: NHWC while training
    assert all(s == (False, False) for s in seen[len(seen) // 2:])
    assert auto[0].weight.is_contiguous() and plain[0].weight.is_contiguous()  # handed back in its own layout
    a, b = auto.state_dict(), plain.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not torch.allclose(_cnn()[0].weight, plain[0].weight)


def test_fit_auto_channels_last_leaves_models_without_convolutions_alone(monkeypatch):
    flags = []
    real = utils.train.train_step
    monkeypatch.setattr(utils.train, "train_step", lambda *a, **kw: (flags.append(kw["channels_last"]), real(*a, **kw))[1])
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
    data = TensorDataset(torch.rand(8, 3, 2, 2), torch.arange(8) % 2)
    utils.fit(model, make_loader(data, 4, device="cpu"), epochs=1, device=torch.device("cpu"), progress=False)
    assert flags and not any(flags)


def test_fit_rejects_a_bad_channels_last():
    with pytest.raises(ValueError, match="channels_last must be"):
        _fit_cnn(channels_last="yes")


def test_fit_interrupted_still_hands_the_model_back_in_its_own_layout():
    calls = []

    def failing_loss(logits, y):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # e.g. the reader stops the cell
        return torch.nn.functional.cross_entropy(logits, y)

    model = _cnn()
    data = TensorDataset(torch.rand(16, 3, 8, 8), torch.arange(16) % 2)
    with pytest.raises(KeyboardInterrupt):
        utils.fit(model, make_loader(data, 8, device="cpu"), epochs=2, device=torch.device("cpu"), progress=False,
                  loss_fn=failing_loss)
    assert model[0].weight.is_contiguous()


def test_length_grouped_sampler_sorts_within_mega_batches_and_covers_every_example():
    from utils.loaders import LengthGroupedSampler

    lengths = list(range(40))
    sampler = LengthGroupedSampler(lengths, batch_size=5, seed=0, mega_batches=2)
    first, second = list(sampler), list(sampler)
    assert sorted(first) == sorted(second) == lengths and first != second  # every example once; a new order each epoch
    for start in range(0, 40, 10):  # mega-batches of 2 x 5
        mega = [lengths[i] for i in first[start:start + 10]]
        assert mega[1:] == sorted(mega[1:], reverse=True)  # sorted, longest first (transformers may swap the first)
    assert list(LengthGroupedSampler(lengths, 5, seed=1)) == list(LengthGroupedSampler(lengths, 5, seed=1))


def test_length_grouped_sampler_keeps_at_least_two_mega_batches():
    from utils.loaders import LengthGroupedSampler

    lengths = list(range(12))  # three batches of 4: a single sorted mega-batch would fix the batches for good
    batches = set()
    sampler = LengthGroupedSampler(lengths, batch_size=4, seed=0)
    for _ in range(5):
        order = list(sampler)
        batches |= {tuple(sorted(order[i:i + 4])) for i in range(0, 12, 4)}
    assert len(batches) > 3  # a plain shuffle: the batches' members change between epochs


def test_length_grouped_sampler_bad_input():
    from utils.loaders import LengthGroupedSampler

    with pytest.raises(ValueError, match="lengths is empty"):
        LengthGroupedSampler([], 4)
    with pytest.raises(ValueError, match="shuffle=True"):
        LengthGroupedSampler.wanted(True, shuffle=False)
    with pytest.raises(TypeError, match="True or False"):
        LengthGroupedSampler.wanted("yes", shuffle=True)
