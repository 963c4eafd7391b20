"""utils.device: device choice, seeding, and a network probe that never hangs."""
from __future__ import annotations

import os
import socket
import time

import pytest
import torch
from torch import nn

import utils
from utils import device as dev


def test_get_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert utils.get_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert utils.get_device().type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert utils.get_device().type == "cuda"


def test_get_device_honours_an_explicit_cpu():
    assert utils.get_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present, so asking for it is not an error")
def test_get_device_cuda_without_cuda_says_what_to_do():
    with pytest.raises(RuntimeError, match=r"CUDA is not available.*get_device\(\)"):
        utils.get_device("cuda")


def test_get_device_mps_without_mps_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="MPS is not available"):
        utils.get_device("mps")


def test_amp_dtype_is_none_off_cuda():
    assert utils.amp_dtype(torch.device("cpu")) is None
    assert utils.amp_dtype(torch.device("mps")) is None


def test_amp_dtype_takes_bf16_only_where_it_is_native(monkeypatch):
    # torch.cuda.is_bf16_supported() is True on pre-Ampere GPUs too (emulated, slow): those must get float16
    for native, expected in ((True, torch.bfloat16), (False, torch.float16)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True, n=native: n or including_emulation)
        assert utils.amp_dtype(torch.device("cuda")) == expected


def _tiny_run(seed: int) -> tuple[dict, list]:
    from torch.utils.data import DataLoader, TensorDataset

    utils.seed_everything(seed)
    x, y = torch.randn(48, 4), torch.randint(0, 3, (48,))
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    h = utils.fit(model, loader, epochs=2, device=torch.device("cpu"), progress=False)
    return model.state_dict(), h["train_loss"]


@pytest.fixture
def restore_determinism():
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def test_seed_everything_makes_two_cpu_trainings_identical(restore_determinism):
    (sd1, loss1), (sd2, loss2), (sd3, loss3) = _tiny_run(0), _tiny_run(0), _tiny_run(1)
    assert loss1 == loss2
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    assert loss3 != loss1 and not torch.equal(sd1["0.weight"], sd3["0.weight"])  # the seed really matters


def test_seed_everything_seeds_python_numpy_and_returns_a_generator(restore_determinism):
    import random

    import numpy as np

    g = utils.seed_everything(3)
    a = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g).item())
    g = utils.seed_everything(3)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g).item())
    assert torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("seed, exc", [(-1, ValueError), (2**32, ValueError), (1.5, TypeError), (True, TypeError),
                                       ("0", TypeError)])
def test_seed_everything_rejects_a_seed_numpy_cannot_take(seed, exc, restore_determinism):
    with pytest.raises(exc, match="seed must be an integer"):
        utils.seed_everything(seed)


def test_model_device_is_where_the_weights_are():
    assert utils.model_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert utils.model_device(nn.Linear(2, 2, device="meta")) == torch.device("meta")
    bn = nn.BatchNorm1d(2, affine=False, device="meta")  # buffers only, no parameters
    assert utils.model_device(bn) == torch.device("meta")
    assert utils.model_device(nn.ReLU()) == torch.device("cpu")  # nothing to place: the CPU


def test_environment_names_torch_device_and_threads(monkeypatch):
    monkeypatch.setattr(dev, "get_device", lambda *a: torch.device("cpu"))
    line = utils.environment()
    assert line == f"torch {torch.__version__} | device: cpu | {torch.get_num_threads()} CPU thread(s)"


def test_is_online_respects_the_offline_env_flags(monkeypatch, clean_online_cache):
    monkeypatch.setattr(dev, "_probe", lambda *a: pytest.fail("probed the network although offline was requested"))
    monkeypatch.setenv("TRANSFER_BOOK_OFFLINE", "1")
    assert utils.is_online() is False
    clean_online_cache.cache_clear()
    monkeypatch.delenv("TRANSFER_BOOK_OFFLINE")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert utils.is_online() is False


def test_is_online_sees_a_listening_port_and_a_closed_one(monkeypatch, clean_online_cache):
    for flag in ("TRANSFER_BOOK_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(flag, raising=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert utils.is_online("127.0.0.1", port, timeout=2.0) is True
    assert utils.is_online("127.0.0.1", port, timeout=2.0) is True  # cached: one probe per (host, port) per session
    clean_online_cache.cache_clear()
    assert utils.is_online("127.0.0.1", port, timeout=2.0) is False  # nothing listens any more


def test_is_online_gives_up_after_its_timeout_even_if_the_probe_hangs(monkeypatch, clean_online_cache):
    for flag in ("TRANSFER_BOOK_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(flag, raising=False)
    monkeypatch.setattr(dev, "_probe", lambda *a: time.sleep(5))  # e.g. a DNS lookup that never returns
    start = time.monotonic()
    assert utils.is_online("hangs.invalid", 443, timeout=0.2) is False
    assert time.monotonic() - start < 3  # a bound on hanging, not a benchmark


def test_ensure_offline_flags_sets_hub_flags_when_offline(monkeypatch):
    for flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(flag, raising=False)
    monkeypatch.setattr(dev, "is_online", lambda *a, **k: False)
    assert utils.ensure_offline_flags() is False
    assert os.environ["HF_HUB_OFFLINE"] == os.environ["TRANSFORMERS_OFFLINE"] == os.environ["HF_DATASETS_OFFLINE"] == "1"


def test_ensure_offline_flags_leaves_env_alone_when_online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(dev, "is_online", lambda *a, **k: True)
    assert utils.ensure_offline_flags() is True
    assert "HF_HUB_OFFLINE" not in os.environ


def test_recorded_bench_reads_the_results_file_or_says_none(tmp_path, monkeypatch):
    from pathlib import Path

    import utils.device as device

    cl = utils.recorded_bench("bench_channels_last")  # committed with the book
    assert cl is not None and cl["script"] == "bench/bench_channels_last.py"
    assert utils.recorded_bench("no_such_bench") is None
    fake = tmp_path / "utils" / "device.py"  # a copy of the book without bench/ (Colab installs only utils)
    fake.parent.mkdir()
    monkeypatch.setattr(device, "__file__", str(fake))
    assert Path(device.__file__) == fake and utils.recorded_bench("bench_channels_last") is None
    with pytest.raises(ValueError, match="kind"):
        utils.recorded_bench("bench_channels_last", kind="gpu")
