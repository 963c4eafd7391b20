"""utils.cache: one root for every cached file, fingerprints that change with the weights, and atomic writes."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from utils import cache


def test_root_and_kinds_follow_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFER_BOOK_CACHE", str(tmp_path))
    assert cache.cache_root() == tmp_path
    assert cache.cache_dir("features") == tmp_path / "features" and (tmp_path / "features").is_dir()
    for bad in ("", "../x", ".hidden", "a/b"):
        with pytest.raises(ValueError, match="plain folder name"):
            cache.cache_dir(bad)


def test_without_the_variable_a_checkout_caches_inside_the_repository(monkeypatch):
    monkeypatch.delenv("TRANSFER_BOOK_CACHE", raising=False)
    assert cache.cache_root().name == ".cache" and (cache.cache_root().parent / "_toc.yml").exists()


def test_fingerprint_changes_with_any_weight_or_buffer_and_nothing_else():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    base = cache.fingerprint(a)
    assert cache.fingerprint(a) == base
    with torch.no_grad():
        a[0].weight[2, 2] += 1e-6
    assert cache.fingerprint(a) != base
    b = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    b.load_state_dict(a.state_dict())
    assert cache.fingerprint(b) == cache.fingerprint(a)
    b[1].running_mean += 1
    assert cache.fingerprint(b) != cache.fingerprint(a)


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with cache.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
    with cache.atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]


def test_tensors_round_trip_and_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFER_BOOK_CACHE", str(tmp_path))
    path = cache.save_tensors({"x": torch.arange(6.0).view(2, 3)}, cache.cache_dir("demo") / "t.safetensors", {"k": "1"})
    assert torch.equal(cache.load_tensors(path)["x"], torch.arange(6.0).view(2, 3))
    assert cache.clear_cache("demo") == 1 and not path.exists()


def test_hash_json_is_stable_and_order_free():
    assert cache.hash_json({"a": 1, "b": [1, 2]}) == cache.hash_json({"b": [1, 2], "a": 1})
    assert cache.hash_json({"a": 1}) != cache.hash_json({"a": 2})


def test_results_round_trip_under_their_exact_key(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFER_BOOK_CACHE", str(tmp_path))
    key = {"recipe": "fine-tune", "seed": 1, "lr": 3e-3, "rows": [3, 1, 2]}
    assert cache.load_result("runs", key) is None  # nothing saved yet
    path = cache.save_result("runs", key, {"acc": 0.75, "cpu_s": 12.5})
    assert path.parent == tmp_path / "runs"
    assert cache.load_result("runs", dict(reversed(list(key.items())))) == {"acc": 0.75, "cpu_s": 12.5}  # key order free
    assert cache.load_result("runs", {**key, "seed": 2}) is None  # another run
    assert cache.load_result("other", key) is None  # another kind
    path.write_text("{not json")
    assert cache.load_result("runs", key) is None  # a damaged file reads as "not saved", never crashes
    with pytest.raises(TypeError, match="non-empty dict"):
        cache.save_result("runs", {}, {"acc": 1.0})
    with pytest.raises(TypeError, match="dict of results"):
        cache.save_result("runs", key, 0.75)
